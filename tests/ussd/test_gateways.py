"""Callbacks as the aggregators send them; malformed ones get a 400 with a reason."""
from __future__ import annotations

import json

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
    assert response.get_data(as_text=True).startswith("CON Guichet\n")


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


def hubtel(client, **fields):
    body = {"SessionId": "hub-1", "Mobile": "237699000102", "ServiceCode": "*384#", "Operator": "mtn", **fields}
    response = client.post("/ussd/hubtel", json=body)
    return response.status_code, response.get_json() if response.is_json else response.get_data(as_text=True)


def test_hubtel_sends_only_the_latest_input_and_the_session_holds_the_path(client, customers):
    status, answer = hubtel(client, Type="Initiation", Message="*384#", Sequence=1)
    assert status == 200 and answer["Type"] == "Response"
    assert answer["Message"].startswith("Guichet\n1.")
    _, answer = hubtel(client, Type="Response", Message="5", Sequence=2)
    assert answer["Message"].startswith("Mon compte:")
    _, answer = hubtel(client, Type="Response", Message="1", Sequence=3)
    assert answer["Message"].startswith("Vos comptes:")
    _, answer = hubtel(client, Type="Response", Message="3", Sequence=4)
    assert answer["Message"].startswith("Compte ****0003")
    again = hubtel(client, Type="Response", Message="3", Sequence=4)[1]  # a retry: same answer
    assert again == answer
    _, answer = hubtel(client, Type="Response", Message="0", Sequence=5)
    assert answer["Message"].startswith("Vos comptes:")


def test_hubtel_initiation_with_a_shortcut_and_release(client, customers):
    _, answer = hubtel(client, Type="Initiation", Message="*384*3#", Sequence=1)
    assert answer["Type"] == "Release"
    assert "disponible prochainement" in answer["Message"]


@pytest.mark.parametrize(
    "body, reason",
    [
        ("not json", "expected a JSON object body"),
        (json.dumps({"Type": "Initiation", "Mobile": "237699000102"}), "missing field: SessionId"),
        (json.dumps({"Type": "Nope", "SessionId": "s", "Mobile": "237699000102"}), "Type must be one of"),
        (json.dumps({"Type": "Response", "SessionId": "s", "Mobile": "12", "ServiceCode": "*384#"}), "Mobile is not an E.164 number"),
    ],
)
def test_malformed_hubtel_callbacks_get_400(client, body, reason):
    response = client.post("/ussd/hubtel", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith(reason)


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
