from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest
from flask.testing import FlaskCliRunner

from app import create_app
from utility.customer_csv import COLUMNS
from utility.customers import RedisCustomerBase
from utility.demo import DEMO_PHONES, PHONE_SEVERAL_ACCOUNTS

HEADER = ",".join(COLUMNS)
JEAN = "CM-1000001,01400000012,Jean Mbarga,+237699000001,Centre,prepaid,0,"
SYLVIE = "GA-1000005,,Sylvie Nze,+24107000003,Estuaire,postpaid,27300,2025-07-01"


@pytest.fixture
def customers_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(f"{HEADER}\n{JEAN}\n{SYLVIE}\n", encoding="utf-8")
    return path


@pytest.fixture
def embedded_runner(monkeypatch: pytest.MonkeyPatch) -> FlaskCliRunner:
    """A CLI with no REDIS_URL: what an operator gets on a machine with no Redis set up."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("GUICHET_REDIS_URL", raising=False)
    return create_app({"TESTING": True}).test_cli_runner()


def test_the_operator_imports_the_customer_file(
    runner: FlaskCliRunner, fake_redis: fakeredis.FakeRedis, customers_file: Path
) -> None:
    result = runner.invoke(args=["customers", "import", str(customers_file)])
    assert (result.exit_code, result.stdout) == (0, "imported 2, updated 0\n")
    assert RedisCustomerBase(fake_redis).account("GA-1000005").balance_due == 27_300  # type: ignore[union-attr]

    again = runner.invoke(args=["customers", "import", str(customers_file)])
    assert again.stdout == "imported 0, updated 2\n"


def test_a_file_can_come_from_standard_input(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["customers", "import", "-"], input=f"{HEADER}\n{JEAN}\n")
    assert (result.exit_code, result.stdout) == (0, "imported 1, updated 0\n")


def test_a_bad_file_lists_its_bad_lines_and_imports_nothing(
    runner: FlaskCliRunner, fake_redis: fakeredis.FakeRedis, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    paul = "CM-2,,Paul Fotso,0677000007,Ouest,postpaid,0,"
    jean_bill = "CM-1000001,,Jean Mbarga,+237699000001,Centre,postpaid,18450,2025-06-30"
    path.write_text(f"{HEADER}\n{JEAN}\n{paul}\n{SYLVIE}\n{jean_bill}\n")
    result = runner.invoke(args=["customers", "import", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 3: phone '0677000007' must be in international form, like +237699000001",
        "line 5: account_number 'CM-1000001' is also on line 2",
        f"{path}: refused, nothing was imported",
    ]
    assert RedisCustomerBase(fake_redis).account("CM-1000001") is None


def test_a_file_not_in_utf8_is_refused(runner: FlaskCliRunner, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(f"{HEADER}\n{JEAN.replace('Jean', 'Jérôme')}\n".encode("cp1252"))
    result = runner.invoke(args=["customers", "import", str(path)])
    assert result.exit_code == 1
    assert "line 2: this line is not UTF-8 text" in result.stderr


def test_importing_into_the_embedded_store_is_refused(embedded_runner: FlaskCliRunner, customers_file: Path) -> None:
    result = embedded_runner.invoke(args=["customers", "import", str(customers_file)])
    assert result.exit_code == 2
    assert "REDIS_URL" in result.stderr and "POST /admin/customers" in result.stderr


def test_seeding_the_demo_into_the_embedded_store_is_refused(embedded_runner: FlaskCliRunner) -> None:
    result = embedded_runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 2
    assert "REDIS_URL" in result.stderr


def test_the_demo_seed_prints_the_phones_to_dial_with(runner: FlaskCliRunner, fake_redis: fakeredis.FakeRedis) -> None:
    result = runner.invoke(args=["demo", "seed", "--customers", "40"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "imported 40, updated 0"
    for phone in DEMO_PHONES:
        assert phone in result.stdout
    assert len(RedisCustomerBase(fake_redis).accounts_for_phone(PHONE_SEVERAL_ACCOUNTS)) >= 3


def test_the_demo_seeds_500_customers_unless_told(runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["demo", "seed"]).stdout.startswith("imported 500, updated 0\n")


def test_the_demo_needs_its_fixed_customers(runner: FlaskCliRunner) -> None:
    assert runner.invoke(args=["demo", "seed", "--customers", "2"]).exit_code == 2
