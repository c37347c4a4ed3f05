"""What callers from outside send that no customer types: digits of other scripts, control
characters meant for our logs. Each gets a clear answer and changes nothing."""
from __future__ import annotations

import json
import logging

import pytest

from state import logs
from tests.test_logs import production_log
from tests.ussd.conftest import ONE_METER
from utility.services import services

HOP = {"sessionId": "ATUid_bad", "serviceCode": "*384#", "phoneNumber": ONE_METER, "networkCode": "62401",
       "text": ""}


@pytest.mark.parametrize(
    "field, value",
    [
        ("phoneNumber", "+2３７６９９０００００１"),  # fullwidth digits: \d matched them
        ("phoneNumber", "+237٦٩٩٠٠٠٠٠١"),  # Arabic-Indic digits
        ("serviceCode", "*３８４#"),
        ("serviceCode", "*384#\n*1#"),
    ],
)
def test_digits_of_other_scripts_are_refused_with_a_reason(client, field, value):
    response = client.post("/ussd/africastalking", data={**HOP, field: value})
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith(f"{field} is not")


def test_a_payer_typed_in_other_digits_gets_a_retry_and_no_order(app, dial):
    """The probe: such a payer passed, the payment request raised at confirm, the caller saw
    "service unavailable" and an order stayed `created` forever."""
    phone = dial(ONE_METER).send("1").send("5000").send("1").send("2")
    phone.send("６７００００００１")
    assert phone.screen.startswith("Numéro invalide, réessayez.")
    assert services(app).orders.recent(ONE_METER) == []


# -- log injection --------------------------------------------------------------------------------
@pytest.fixture
def log_lines():
    """The server log as the production formatter writes it, one string per line."""
    with production_log() as written:
        yield lambda: written().splitlines()


def test_a_newline_in_a_session_end_status_forges_no_log_line(client, log_lines):
    forged = "Success\nCRITICAL utility.admin: FORGED"
    response = client.post("/ussd/africastalking/events",
                           data={"sessionId": "s", "phoneNumber": ONE_METER, "status": forged})
    assert response.status_code == 200
    assert not [line for line in log_lines() if line.startswith("CRITICAL")]
    assert any("Success\\nCRITICAL" in line for line in log_lines())


def test_a_newline_in_a_delivery_report_id_forges_no_log_line(client, log_lines):
    response = client.post("/sms/africastalking/delivery",
                           data={"id": "ATXid_1\r\nCRITICAL utility.admin: FORGED", "status": "Success"})
    assert response.status_code == 200
    assert not [line for line in log_lines() if line.startswith("CRITICAL")]


def test_tracebacks_stay_readable_and_cannot_forge_lines():
    formatter = logs.formatter("json")
    try:
        raise ValueError("bad value\nCRITICAL utility.admin: FORGED")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed on %s", ("a\x1b[2Jb",), None)
        import sys

        record.exc_info = sys.exc_info()
    [line] = formatter.format(record).splitlines()  # the traceback is a field of its one line
    assert json.loads(line)["event"] == "failed on a\x1b[2Jb" and "\\u001b" in line
    assert json.loads(line)["exception"].endswith("ValueError: bad value\nCRITICAL utility.admin: FORGED")
