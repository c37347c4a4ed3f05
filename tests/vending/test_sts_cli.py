"""`guichet sts token|decode` through Flask's CLI runner."""
from __future__ import annotations

import fakeredis
import pytest
from flask.testing import FlaskCliRunner

from app import create_app

DKGA = ["--vending-key", "abababababababab", "--key-type", "2", "--sgc", "123456", "--tariff-index", "01",
        "--krn", "1", "--pan", "600727000000000009"]
VECTOR_1993 = ["--base-date", "1993-01-01", "--rnd", "5"]


@pytest.mark.parametrize(
    "args, token",
    [
        (DKGA + VECTOR_1993 + ["--issued", "2004-03-01T13:55", "--subclass", "0", "--units", "0.1"],
         "23716100501183194197"),
        (DKGA + VECTOR_1993 + ["--issued", "2004-03-01T14:05", "--subclass", "1", "--units", "0.1"],
         "42502136492215507402"),
        # STA key E7B21AA9EC929C96, printed byte-reversed as vending systems show decoder keys;
        # TID 6675056 from 1993-01-01 is 2005-09-10 10:56.
        (["--decoder-key", "969C92ECA91AB2E7"] + VECTOR_1993
         + ["--issued", "2005-09-10T10:56", "--subclass", "1", "--units", "1.0"], "63525115892327740484"),
        (["--decoder-key", "6ff35b9d1f3453e6", "--tables", "test"] + VECTOR_1993
         + ["--issued", "2004-03-01T13:55", "--units", "0.1"], "23716100501183194197"),
    ],
)
def test_token_prints_the_vector_token_alone(runner: FlaskCliRunner, args: list[str], token: str) -> None:
    result = runner.invoke(args=["sts", "token", *args])
    assert result.exit_code == 0, result.output
    assert result.stdout == token + "\n"


def test_decode_prints_one_field_per_line(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["sts", "decode", "2371 6100 5011 8319 4197", *DKGA, "--base-date", "1993-01-01"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines == {
        "token": "23716100501183194197", "token_class": "0", "subclass": "0", "kind": "electricity credit",
        "crc_valid": "yes", "data_block": "05599863000119e6", "rnd": "5", "tid": "5871715",
        "issued": "2004-03-01 13:55", "amount_field": "0000000000000001", "units": "0.1", "unit": "kWh",
        "decoder_key": "6ff35b9d1f3453e6",
    }


def test_decode_without_base_date_reads_the_tid_against_each(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["sts", "decode", "23716100501183194197", "--decoder-key", "6ff35b9d1f3453e6"])
    assert "issued_if_base_1993: 2004-03-01 13:55" in result.stdout
    assert "issued_if_base_2014: 2025-03-01 13:55" in result.stdout


def test_decode_with_the_wrong_key_says_so(runner: FlaskCliRunner) -> None:
    args = [a if a != "1" else "2" for a in DKGA]  # KRN 2: the meter's key changed
    result = runner.invoke(args=["sts", "decode", "23716100501183194197", *args])
    assert result.exit_code == 0
    assert "crc_valid: no" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("hint: CRC fails")


def test_decode_shows_key_change_fields(runner: FlaskCliRunner) -> None:
    # CTSA19 step 1: the 1st-section key-change token for KRN 1, TI 02, KEN 85.
    dkga = DKGA[:7] + ["02"] + DKGA[8:]
    result = runner.invoke(args=["sts", "decode", "31337250623187821174", *dkga])
    assert result.exit_code == 0, result.output
    assert "kind: set 1st section decoder key" in result.stdout
    assert "crc_valid: yes" in result.stdout
    assert "krn: 1" in result.stdout and "rollover: no" in result.stdout and "key_expiry_high: 5" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (DKGA + ["--issued", "2004-03-01T13:55", "--base-date", "1993-01-01", "--units", "0.1", "--rnd", "16"],
         "--rnd"),
        (DKGA + ["--issued", "2004-03-01", "--base-date", "1993-01-01", "--units", "0.1"], "--issued"),
        (DKGA + ["--issued", "2004-03-01T13:55", "--base-date", "1994-01-01", "--units", "0.1"], "base date"),
        (DKGA + ["--issued", "2004-03-01T13:55", "--base-date", "1993-01-01", "--units", "-1"], "--units"),
        (DKGA[:-1] + ["600727000000000008", "--issued", "2004-03-01T13:55", "--base-date", "1993-01-01",
                      "--units", "1"], "check digit"),
        (DKGA[:4] + ["--issued", "2004-03-01T13:55", "--base-date", "1993-01-01", "--units", "1"], "--tariff-index"),
        (DKGA + ["--decoder-key", "6ff35b9d1f3453e6", "--issued", "2004-03-01T13:55", "--base-date", "1993-01-01",
                 "--units", "1"], "not both"),
        (["--decoder-key", "6ff35b9d", "--issued", "2004-03-01T13:55", "--base-date", "1993-01-01", "--units", "1"],
         "16 hex digits"),
        (["--decoder-key", "6ff35b9d1f3453e6", "--issued", "2030-03-01T13:55", "--base-date", "1993-01-01",
          "--units", "1"], "key change"),
        (["--decoder-key", "6ff35b9d1f3453e6", "--issued", "2004-03-01T13:55", "--base-date", "1993-01-01",
          "--units", "1", "--tables", "other"], "--tables"),
    ],
)
def test_token_reports_a_bad_value_on_one_stderr_line(runner: FlaskCliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(args=["sts", "token", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr


def test_decode_reports_a_bad_token_on_one_stderr_line(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["sts", "decode", "1234", "--decoder-key", "6ff35b9d1f3453e6"])
    assert (result.exit_code, result.stderr) == (2, "Error: a token is 20 digits\n")


def test_the_cli_never_touches_redis() -> None:
    server = fakeredis.FakeServer()
    server.connected = False  # every Redis call would raise ConnectionError
    app = create_app({"TESTING": True, "REDIS_CLIENT": fakeredis.FakeRedis(server=server, decode_responses=True)})
    runner = app.test_cli_runner()
    token = runner.invoke(args=["sts", "token", *DKGA, *VECTOR_1993, "--issued", "2004-03-01T13:55", "--units", "0.1"])
    decoded = runner.invoke(args=["sts", "decode", "23716100501183194197", "--decoder-key", "6ff35b9d1f3453e6"])
    assert (token.exit_code, token.stdout) == (0, "23716100501183194197\n")
    assert decoded.exit_code == 0 and "crc_valid: yes" in decoded.stdout
