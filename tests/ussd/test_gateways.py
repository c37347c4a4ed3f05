"""Callbacks as the aggregators send them; malformed ones get a 400 with a reason."""
from __future__ import annotations

import pytest

from tests.ussd.conftest import ONE_METER, SEVERAL

GOOD = {
    "sessionId": "ATUid_1",
    "serviceCode": "*384#",
    "phoneNumber": ONE_METER,
    "networkCode": "62401",
    "text": "",
}


def post(client, **changes):
    form = {**GOOD, **changes}
    form = {k: v for k, v in form.items() if v is not None}
    return client.post("/ussd/africastalking", data=form)


def test_africastalking_answer_is_plain_text_con(client, customers):
    response = post(client)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("CON Eneo\n")


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"sessionId": None}, "missing field: sessionId"),
        ({"serviceCode": None}, "missing field: serviceCode"),
        ({"phoneNumber": None}, "missing field: phoneNumber"),
        ({"text": None}, "missing field: text"),
        ({"phoneNumber": "0699000001"}, "phoneNumber is not an E.164 number"),
        ({"phoneNumber": "+2376990000011234567"}, "phoneNumber is not an E.164 number"),
        ({"phoneNumber": "+23769900000a"}, "phoneNumber is not an E.164 number"),
        ({"serviceCode": "384"}, "serviceCode is not a USSD code like *384#"),
        ({"text": "1" * 1001}, "text over 1000 characters"),
    ],
)
def test_malformed_africastalking_callbacks_get_400_with_a_reason(client, changes, reason):
    response = post(client, **changes)
    assert response.status_code == 400
    assert response.get_data(as_text=True).strip() == reason


def test_body_over_4kb_is_refused(client):
    response = post(client, networkCode="9" * 5000)
    assert response.status_code == 400
    assert response.get_data(as_text=True).strip() == "body over 4096 bytes"


def test_json_to_the_form_gateway_is_refused(client):
    response = client.post("/ussd/africastalking", json=GOOD)
    assert response.status_code == 400
    assert "x-www-form-urlencoded" in response.get_data(as_text=True)


def test_unknown_gateway_is_404(client):
    assert client.post("/ussd/nosuch", data=GOOD).status_code == 404


def test_session_end_notification_is_acknowledged_and_journaled(app, client):
    from state import journal
    from state.store import get_redis

    response = client.post(
        "/ussd/africastalking/events",
        data={"sessionId": "ATUid_9", "phoneNumber": SEVERAL, "status": "Incomplete", "hopsCount": "3"},
    )
    assert response.status_code == 200
    (entry,) = [e for e in journal.read(get_redis(app)) if e["kind"] == "ussd.session_end"]
    assert entry["status"] == "Incomplete" and entry["session"] == "ATUid_9"


def test_redis_down_gives_an_end_screen_not_a_500(app, client, fake_redis):
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    response = post(client)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "END Service momentanément indisponible. Merci de réessayer plus tard."
