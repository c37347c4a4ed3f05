"""The Hubtel gateway: callbacks as Hubtel documents them (ServiceCode `711*2` or a service
id, only the latest input in Message), and what a customer sees when one cannot be used."""
from __future__ import annotations

import json

import pytest

from sms.gsm import fits_screen
from ussd.gateways import hubtel
from ussd.gateways.base import BadCallback

SERVICE_ID = "6a3d2a2e6a0e4a2d9c1a5f0b8e7d3c21"  # 32 hex digits, as in Hubtel's own sample
BAD_CODE = "ServiceCode is not a USSD code like 711*2 or a service id"
DOWN = "Service momentanément indisponible. Merci de réessayer plus tard."
BASE = {"SessionId": "hub-1", "Mobile": "237699000102", "ServiceCode": "*384#", "Operator": "mtn"}


def post(client, **fields):
    response = client.post("/ussd/hubtel", json={**BASE, **fields})
    return response.status_code, response.get_json() if response.is_json else response.get_data(as_text=True)


def parse(app, **fields):
    """The adapter's own reading of a callback, without the view."""
    body = {**BASE, **fields}
    with app.test_request_context("/ussd/hubtel", method="POST", json=body) as ctx:
        return hubtel.GATEWAY.parse(ctx.request)


# -- a session, hop by hop --------------------------------------------------------------
def test_hubtel_sends_only_the_latest_input_and_the_session_holds_the_path(client, customers):
    status, answer = post(client, Type="Initiation", Message="*384#", Sequence=1)
    assert status == 200 and answer["Type"] == "Response"
    assert answer["Message"].startswith("Eneo\n1.")
    _, answer = post(client, Type="Response", Message="3", Sequence=2)
    assert answer["Message"].startswith("Mon compte:")
    _, answer = post(client, Type="Response", Message="1", Sequence=3)
    assert answer["Message"].startswith("Vos comptes:")
    _, answer = post(client, Type="Response", Message="3", Sequence=4)
    assert answer["Message"].startswith("Compte C-2000000003")
    again = post(client, Type="Response", Message="3", Sequence=4)[1]  # a retry: same answer
    assert again == answer
    _, answer = post(client, Type="Response", Message="0", Sequence=5)
    assert answer["Message"].startswith("Vos comptes:")


def test_hubtel_initiation_with_a_shortcut_and_release(client, customers):
    _, answer = post(client, Type="Initiation", Message="*384*3*2#", Sequence=1)  # my account, resend my code
    assert answer["Type"] == "Release"
    assert "code de recharge" in answer["Message"]


def test_hubtel_documented_service_code_keeps_the_session_alive(client, customers):
    """ServiceCode `711*2`, as Hubtel documents it: every hop is answered, none is a 400."""
    code = {"ServiceCode": "711*2"}
    status, answer = post(client, Type="Initiation", Message="*711*2#", Sequence=1, **code)
    assert status == 200, answer
    assert answer["Type"] == "Response" and answer["Message"].startswith("Eneo\n1.")  # `2` is no shortcut
    status, answer = post(client, Type="Response", Message="3", Sequence=2, **code)
    assert status == 200, answer
    assert answer["Message"].startswith("Mon compte:")
    status, answer = post(client, Type="Response", Message="1", Sequence=3, **code)
    assert status == 200 and answer["Message"].startswith("Vos comptes:")


def test_hubtel_shortcut_after_the_documented_service_code(client, customers):
    _, answer = post(client, Type="Initiation", Message="*711*2*3*2#", ServiceCode="711*2", Sequence=1)
    assert answer["Type"] == "Release" and "code de recharge" in answer["Message"]


def test_hubtel_service_id_from_the_hubtel_app(client, customers):
    """A session started in the Hubtel app: blank Message, the service's id as ServiceCode."""
    ids = {"ServiceCode": SERVICE_ID, "Operator": "Hubtel-Android"}
    status, answer = post(client, Type="initiation", Message="", Sequence="1", ClientState="", **ids)
    assert status == 200 and answer["Message"].startswith("Eneo\n1."), answer
    status, answer = post(client, Type="response", Message="3", Sequence="2", ClientState="", **ids)
    assert status == 200 and answer["Message"].startswith("Mon compte:"), answer


def test_hubtel_answer_carries_the_fields_of_hubtels_response(client, customers):
    _, answer = post(client, Type="Initiation", Message="*384#", Sequence=1)
    assert answer == {
        "Type": "Response",
        "Message": answer["Message"],
        "Label": "Eneo",
        "ClientState": "",
        "DataType": "input",
        "FieldType": "text",
    }
    _, answer = post(client, SessionId="hub-2", Type="Initiation", Message="*384*3*2#", Sequence=1)
    assert (answer["Type"], answer["DataType"]) == ("Release", "display")


# -- ServiceCode and the dial string, read by the adapter --------------------------------
@pytest.mark.parametrize(
    "service_code, message, code, shortcuts",
    [
        ("711*2", "*711*2#", "*711*2#", ()),
        ("*711*2#", "*711*2#", "*711*2#", ()),
        ("711*2", "*711*2*5*1#", "*711*2#", ("5", "1")),
        ("711*2", "711*2*5", "*711*2#", ("5",)),  # a dial string without its * and # too
        ("711", "*711*2#", "*711#", ("2",)),  # a dedicated code: 2 is the customer's shortcut
        ("713*20", "*713*20*4#", "*713*20#", ("4",)),  # a shared code's extension is the code
        ("711*2", "", "*711*2#", ()),
        ("711*2", "*712*5#", "*711*2#", ()),  # not under the code: no guess acted on
        ("711*2", "hello", "*711*2#", ()),
        (SERVICE_ID, "", SERVICE_ID, ()),
        (SERVICE_ID.upper(), "", SERVICE_ID.upper(), ()),
        (SERVICE_ID, "*711*2*5#", SERVICE_ID, ()),  # an id says nothing of where the code ends
        (f" {SERVICE_ID} ", "", SERVICE_ID, ()),
    ],
)
def test_service_code_forms_give_the_same_code_on_every_hop(app, service_code, message, code, shortcuts):
    first = parse(app, Type="Initiation", Message=message, ServiceCode=service_code, Sequence=1)
    assert (first.service_code, first.dial_inputs, first.inputs) == (code, shortcuts, ())
    later = parse(app, Type="Response", Message="4", ServiceCode=service_code, Sequence=2)
    assert (later.service_code, later.dial_inputs, later.inputs) == (code, (), ("4",))


def test_a_configured_service_code_wins(app):
    app.config["SERVICE_CODES"] = ["*711*2#"]
    first = parse(app, Type="Initiation", Message="*711*2*5#", ServiceCode="711*2*5", Sequence=1)
    assert (first.service_code, first.dial_inputs) == ("*711*2#", ("5",))
    later = parse(app, Type="Response", Message="1", ServiceCode="711*2*5", Sequence=2)
    assert later.service_code == "*711*2#"


@pytest.mark.parametrize(
    "service_code",
    [
        "71a",
        "*711*2##",
        "**711#",
        "711**2",
        "٧١١*٢",  # Arabic-Indic digits: not what a handset dials
        "７１１",  # full-width digits
        "1234567",  # seven digits: no USSD code is that long
        SERVICE_ID[:-1],
        SERVICE_ID + "0",
        "n383he9jioe923232347423",  # the placeholder on Hubtel's page is no id
    ],
)
def test_unusable_service_codes_are_refused(app, service_code):
    with pytest.raises(hubtel.Refusal) as caught:
        parse(app, Type="Response", Message="1", ServiceCode=service_code, Sequence=2)
    assert str(caught.value) == BAD_CODE


# -- what a refused callback gets --------------------------------------------------------
HUBTEL_SHAPED_BUT_UNUSABLE = [
    ({"Type": None}, "missing field: Type"),
    ({"Type": "AddToCart"}, "Type must be one of"),
    ({"SessionId": None}, "missing field: SessionId"),
    ({"Mobile": None}, "missing field: Mobile"),
    ({"Mobile": "12"}, "Mobile is not an E.164 number"),
    ({"ServiceCode": None}, "missing field: ServiceCode"),
    ({"ServiceCode": "abc"}, BAD_CODE),
    ({"Message": "1" * 1001}, "Message over 1000 characters"),
]


@pytest.mark.parametrize("changes, reason", HUBTEL_SHAPED_BUT_UNUSABLE)
def test_hubtel_shaped_callback_with_a_bad_field_is_answered_with_a_release(app, changes, reason):
    fields = {"Type": "Response", "Message": "1", "Sequence": 2, **changes}
    with pytest.raises(hubtel.Refusal) as caught:
        parse(app, **fields)
    assert str(caught.value).startswith(reason)
    with app.test_request_context():
        response = hubtel.GATEWAY.refuse(caught.value)
    assert response is not None and response.status_code == 200
    assert response.mimetype == "application/json"
    answer = json.loads(response.get_data(as_text=True))
    assert answer == {
        "Type": "Release",
        "Message": DOWN,
        "Label": DOWN,
        "ClientState": "",
        "DataType": "display",
        "FieldType": "text",
    }
    assert fits_screen(answer["Message"])


def test_refusal_speaks_the_configured_language(app):
    app.config["DEFAULT_LANGUAGE"] = "en"
    with app.test_request_context():
        response = hubtel.GATEWAY.refuse(hubtel.Refusal("missing field: SessionId"))
    assert response.get_json()["Message"] == "Service temporarily unavailable. Please try again later."


def test_a_refusal_is_still_a_bad_callback(app):
    """Until a view knows `refuse`, a Refusal gets the 400 every BadCallback gets."""
    assert issubclass(hubtel.Refusal, BadCallback)


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", '"a string"', "", json.dumps(BASE)[:-1]],
)
def test_a_body_that_is_no_json_object_is_not_hubtels_and_gets_a_400(client, app, body):
    response = client.post("/ussd/hubtel", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_data(as_text=True).strip() == "expected a JSON object body"
    with app.test_request_context("/ussd/hubtel", method="POST", data=body, content_type="application/json") as ctx:
        with pytest.raises(BadCallback) as caught:
            hubtel.GATEWAY.parse(ctx.request)
    assert not isinstance(caught.value, hubtel.Refusal)
    with app.test_request_context():
        assert hubtel.GATEWAY.refuse(caught.value) is None  # the view's 400 applies


def test_an_oversized_body_is_not_hubtels_and_gets_a_400(client, app):
    response = client.post("/ussd/hubtel", json={**BASE, "Type": "Response", "ClientState": "x" * 5000})
    assert response.status_code == 400
    assert response.get_data(as_text=True).strip() == "body over 4096 bytes"
    with app.test_request_context():
        assert hubtel.GATEWAY.refuse(BadCallback("body over 4096 bytes")) is None


def test_a_json_body_without_its_content_type_is_still_read(client, customers):
    response = client.post("/ussd/hubtel", data=json.dumps({**BASE, "Type": "Initiation", "Message": "*384#"}))
    assert response.status_code == 200
    assert response.get_json()["Message"].startswith("Eneo\n1.")


def test_hubtel_bad_field_gets_a_release_not_a_400_through_the_view(client):
    response = client.post("/ussd/hubtel", json={**BASE, "Type": "Response", "Message": "1", "ServiceCode": "abc"})
    assert response.status_code == 200 and response.get_json()["Type"] == "Release"


def test_three_invalid_tries_from_the_hubtel_app_do_not_ask_to_dial_a_service_id(client, customers):
    service_id = "6a3d2a2e6a0e4a2d9c1a5f0b8e7d3c21"
    first = {**BASE, "SessionId": "hub-id-3", "ServiceCode": service_id}
    client.post("/ussd/hubtel", json={**first, "Type": "Initiation", "Message": "", "Sequence": 1})
    for n in range(3):
        answer = client.post("/ussd/hubtel", json={**first, "Type": "Response", "Message": "9", "Sequence": n + 2})
    body = answer.get_json()
    assert body["Type"] == "Release" and service_id not in body["Message"]
    assert body["Message"] == "Trop d'essais invalides. Merci de recommencer. Au revoir!"
