"""Log lines (state.logs): one JSON object per line, personal numbers masked, a request id
that ties a request's lines together and comes back in X-Request-Id."""
from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis
import pytest
import structlog
from flask.testing import FlaskClient
from rq.job import Job

from state import logs
from state.store import get_redis
from utility.customers import Account, RedisCustomerBase, mask_phone
from utility.meters import with_check_digit

PHONE = "+237699000101"
METER = with_check_digit("1400000001")  # 11 digits, a valid DRN
TOKEN = "5044 3727 0716 2135 8017"


def record(msg: str, *args: object, exc_info: Any = None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("guichet.test", logging.INFO, __file__, 1, msg, args, exc_info)
    made.__dict__.update(extra)
    return made


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@contextmanager
def production_log() -> Iterator[Callable[[], str]]:
    """What the server logs meanwhile, as production writes it (the JSON formatter, INFO and up)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not .level =: loggers cache what is enabled
    try:
        yield stream.getvalue
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the server logs while the test runs, parsed line by line."""
    with production_log() as written:
        yield lambda: json_lines(written())


# -- one JSON object per line -------------------------------------------------------------------
def test_a_record_is_one_json_line_with_its_fields() -> None:
    text = logs.formatter("json").format(record("order %s placed in %.1f s", "HDFEN23J", 0.25))
    assert "\n" not in text
    line = json.loads(text)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info" and line["logger"] == "guichet.test"
    assert line["event"] == "order HDFEN23J placed in 0.2 s"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]  # ISO 8601, UTC


def test_extra_fields_and_bound_context_come_out_as_fields() -> None:
    logs.bind(request_id="r1", session="ATUid_1")
    try:
        line = json.loads(logs.formatter("json").format(record("vend", order="HDFEN23J", units=48.9)))
    finally:
        structlog.contextvars.clear_contextvars()
    assert {key: line[key] for key in ("request_id", "session", "order", "units")} == {
        "request_id": "r1", "session": "ATUid_1", "order": "HDFEN23J", "units": 48.9}


def test_a_multi_line_exception_stays_on_one_line_in_one_field() -> None:
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        made = record("failed on %s", "x", exc_info=sys.exc_info())
    text = logs.formatter("json").format(made)
    assert len(text.splitlines()) == 1
    line = json.loads(text)
    assert line["event"] == "failed on x"
    assert line["exception"].startswith("Traceback (most recent call last):\n")
    assert line["exception"].endswith("ValueError: bad value\nsecond line")


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_an_injected_newline_cannot_start_a_line(renderer: str) -> None:
    forged = 'Success\n{"level": "critical", "event": "FORGED"}\r\nCRITICAL utility.admin: FORGED\x1b[2J\u2028x'
    try:
        raise ValueError(forged)
    except ValueError:
        made = record("session end %s", forged, exc_info=sys.exc_info(), status=forged)
    text = logs.formatter(renderer).format(made)
    head, *rest = text.split("\n")
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text
    if renderer == "json":
        assert rest == [] and json.loads(head)["status"] == forged
    else:  # the traceback below its line, indented: none of its lines reads as a record
        assert "Success\\n" in head and rest and all(line.startswith("    ") for line in rest)


# -- masking --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "logged"),
    [
        # phone numbers: the last 3 digits
        ("hop of +237699000101", "hop of ****101"),
        ("payer +24107000103 declined", "payer ****103 declined"),
        ("to=+233201234567,", "to=****567,"),
        # meter numbers (11 or 13 digits) and account numbers: the last 4
        (f"meter {METER}", f"meter ****{METER[-4:]}"),
        ("meter 0140000001234.", "meter ****1234."),
        ("account CM-1000004 due", "account ****0004 due"),
        ("accounts GA-1000005, C-2000000003", "accounts ****0005, ****0003"),
        # STS tokens, grouped or not: never whole
        (f"Code: {TOKEN}\nCompteur", "Code: ****8017\nCompteur"),
        ("token 5044-3727-0716-2135-8017", "token ****8017"),
        ("token 50443727071621358017", "token ****8017"),
        # already masked at the call site: left as it is
        ("sms to ****0101 meter ****0012", "sms to ****0101 meter ****0012"),
    ],
)
def test_numbers_are_masked(text: str, logged: str) -> None:
    assert logs.mask_text(text) == logged


def test_call_sites_mask_a_phone_as_the_log_does() -> None:
    assert mask_phone(PHONE) == logs.mask_text(PHONE) == "****101"


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-02T10:06:26.123456Z",  # timestamps
        "listening on 127.0.0.1:8000",  # addresses and ports
        "took 0.01234567890 s, 1234567 ms",  # durations, a decimal's long fraction
        "order HDFEN23J, order 2345672A, ref AB234567",  # order references (8 base32 characters)
        "3 sent, 120 failed, 500000 FCFA",  # counts and amounts
        "sms 3f2a01400000012b0f5b3c0d1e2f3a4b queued",  # a uuid4 hex with an 11-digit run inside
        "job 5c0e0d2e-1b2c-4a8e-9f3e-014000000123",  # a uuid
        "xmlvend msg 20261202100626/123456",  # an XMLVend msgID (14 digits)
        "stream id 1764670000000-0",  # a Redis stream id
        "phone 1234567",  # too short for anything
    ],
)
def test_what_is_not_a_personal_number_is_left_alone(text: str) -> None:
    assert logs.mask_text(text) == text


def test_the_event_every_field_and_the_traceback_are_masked() -> None:
    try:
        raise ValueError(f"no meter {METER}")
    except ValueError:
        made = record(
            "hop of %s for meter %s: code %s", PHONE, METER, TOKEN, exc_info=sys.exc_info(),
            detail=f"payer {PHONE}", phone="670000009", payer=237670000009, meter=int(METER),
            account="20000001", tokens=[TOKEN, "11112222333344445555"], reply={"to": PHONE, "text": f"Code: {TOKEN}"},
            order="HDFEN23J", count=12345678901,
        )
    line = json.loads(logs.formatter("json").format(made))
    assert line["event"] == f"hop of ****101 for meter ****{METER[-4:]}: code ****8017"
    assert line["detail"] == "payer ****101"
    assert line["exception"].endswith(f"ValueError: no meter ****{METER[-4:]}")
    # fields named for what they hold are masked whatever their shape
    assert (line["phone"], line["payer"], line["meter"], line["account"]) == (
        "****009", "****009", f"****{METER[-4:]}", "****0001")
    assert line["tokens"] == ["****8017", "****5555"]
    assert line["reply"] == {"to": "****101", "text": "Code: ****8017"}
    assert line["order"] == "HDFEN23J" and line["count"] == 12345678901  # not text: not a number's shape
    assert PHONE[1:] not in json.dumps(line) and TOKEN not in json.dumps(line)


def test_our_own_fields_are_never_masked() -> None:
    logs.bind(request_id="01400000012")  # a proxy's request id that happens to be 11 digits
    try:
        line = json.loads(logs.formatter("json").format(record("x")))
    finally:
        structlog.contextvars.clear_contextvars()
    assert line["request_id"] == "01400000012"


# -- the request id -------------------------------------------------------------------------------
def buy_units(client: FlaskClient, session_id: str) -> list[Any]:
    """A purchase to its confirmation: the last hop places the order and asks for payment."""
    inputs: list[str] = []
    responses = []
    for typed in ("", "1", "5000", "1", "1", "1"):
        if typed:
            inputs.append(typed)
        responses.append(client.post("/ussd/africastalking", data={
            "sessionId": session_id, "serviceCode": "*384#", "phoneNumber": PHONE, "networkCode": "62401",
            "text": "*".join(inputs)}))
    return responses


def test_a_hops_lines_share_its_request_id_which_the_response_carries(app, client, lines) -> None:
    RedisCustomerBase(get_redis(app)).upsert([Account("1000000001", METER, "Mballa Ateba Jeanne", PHONE, "Littoral",
                                                      "prepaid", 0, None)])
    responses = buy_units(client, "ATUid_logs")
    assert all(response.status_code == 200 for response in responses)
    ids = [response.headers["X-Request-Id"] for response in responses]
    assert len(set(ids)) == len(ids) and all(len(rid) == 16 for rid in ids)  # one per request
    confirmed = [line for line in lines() if line.get("request_id") == ids[-1]]
    assert len(confirmed) >= 2, lines()  # the order's move and the payment request, at least
    assert {line["session"] for line in confirmed} == {"ATUid_logs"}
    assert any(line["event"].startswith("order ") for line in confirmed)
    assert all(PHONE[1:] not in json.dumps(line) and METER not in json.dumps(line) for line in lines())
    assert logs.request_id() is None  # nothing bound is left over for the thread's next request


@pytest.mark.parametrize(
    ("given", "kept"),
    [("7f3c2a9e1b4d4c0a8e6f5d3c2b1a0f9e", True), ("req-1.2:3_x", True),
     ("bad id {\"level\": 1}", False), ("x" * 65, False), ("", False)],
)
def test_a_sane_request_id_from_the_proxy_is_kept(client, lines, given: str, kept: bool) -> None:
    response = client.post("/ussd/africastalking/events", headers={"X-Request-Id": given},
                           data={"sessionId": "s1", "phoneNumber": PHONE, "status": "Success"})
    assert response.status_code == 200
    rid = response.headers["X-Request-Id"]
    assert (rid == given) is kept and (kept or len(rid) == 16)
    [line] = [line for line in lines() if line["event"].startswith("session end")]
    assert line["request_id"] == rid


def test_a_refused_request_carries_its_request_id_too(app, client, lines) -> None:
    app.extensions["guichet.ussd.access"]["africastalking"] = type(
        "Refusing", (), {"refusal": lambda self, request: "wrong token", "open": False})()
    response = client.post("/ussd/africastalking", data={"sessionId": "s1"})
    assert response.status_code == 403
    [line] = [line for line in lines() if line["event"].startswith("refused")]
    assert line["request_id"] == response.headers["X-Request-Id"]


def test_a_background_jobs_lines_carry_its_job_id(lines) -> None:
    job = Job.create(logging.getLogger("guichet.job").info, args=("delivering %s", "HDFEN23J"),
                     connection=fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    job.perform()
    [line] = [line for line in lines() if line["event"] == "delivering HDFEN23J"]
    assert line["job_id"] == job.id


# -- configuration --------------------------------------------------------------------------------
def test_configure_leaves_a_root_logger_with_handlers_to_its_owner() -> None:
    assert logging.getLogger().handlers  # pytest's
    assert logs.configure("INFO", "json") is False


@pytest.mark.parametrize(("level", "number"), [("INFO", 20), ("debug", 10), (" Warning ", 30), (40, 40)])
def test_the_level_is_a_name_or_a_number(level: str | int, number: int) -> None:
    assert logs.level_number(level) == number


def test_bad_settings_say_which_variable() -> None:
    with pytest.raises(ValueError, match="GUICHET_LOG_LEVEL"):
        logs.configure("LOUD", "json")
    with pytest.raises(ValueError, match="GUICHET_LOG_FORMAT"):
        logs.configure("INFO", "xml")


def test_console_lines_are_readable_and_masked() -> None:
    text = logs.formatter("console").format(record("hop of %s", PHONE, meter=METER))
    assert "hop of ****101" in text and f"meter=****{METER[-4:]}" in text and "\n" not in text
