"""Issue 8, "Right on real codes": the code a gateway posts is the service's own code.

Africa's Talking posts the channel's code as `serviceCode` (`*384*12345#` in its sandbox, or
a shared code in production). Without GUICHET_SERVICE_CODES that code is taken whole: no
shortcut inputs are cut from it, and a plain dial opens on the main menu, never on an error
hint. Shortcut inputs (`*384*12345*1#` -> `1`) come only from configured codes.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ussd.conftest import ONE_METER, SEVERAL, Phone
from ussd.gateways.base import SERVICE_CODE, BadCallback, split_dial_string

MAIN_MENU = "Eneo\n1. Acheter des unités"
HINT = "Choix invalide"


def split(app, code, configured=None):
    if configured is not None:
        app.config["SERVICE_CODES"] = configured
    with app.app_context():
        return split_dial_string(code, "serviceCode")


# -- the splitting itself --------------------------------------------------------------
@pytest.mark.parametrize(
    "code, expected",
    [
        ("*384#", ("*384#", ())),
        ("*384*12345#", ("*384*12345#", ())),  # Africa's Talking's sandbox code, whole
        ("*384*5#", ("*384*5#", ())),
        ("*711*2*5*1#", ("*711*2*5*1#", ())),
        (" *384*12345# ", ("*384*12345#", ())),
    ],
)
def test_without_configured_codes_the_posted_code_is_the_service_code_whole(app, code, expected):
    assert split(app, code) == expected


@pytest.mark.parametrize(
    "configured, code, expected",
    [
        (["*384#"], "*384#", ("*384#", ())),
        (["*384#"], "*384*5*1#", ("*384#", ("5", "1"))),
        (["*384*12345#"], "*384*12345#", ("*384*12345#", ())),
        (["*384*12345#"], "*384*12345*1#", ("*384*12345#", ("1",))),
        (["*384#", "*384*12345#"], "*384*12345*1#", ("*384*12345#", ("1",))),  # longest first
        (["*384*12345#", "*384#"], "*384*7#", ("*384#", ("7",))),
        (["*384*1234#"], "*384*12345#", ("*384*12345#", ())),  # a prefix of digits is no match
        (["*385#"], "*384*5#", ("*384*5#", ())),  # under no configured code: whole
        ("*384#", "*384*5#", ("*384#", ("5",))),  # GUICHET_SERVICE_CODES='*384#' (not JSON)
        ("*384*12345#,*384#", "*384*12345*2#", ("*384*12345#", ("2",))),
        (["384"], "*384*5#", ("*384#", ("5",))),  # written without its * and #
    ],
)
def test_shortcut_inputs_come_only_from_configured_codes(app, configured, code, expected):
    assert split(app, code, configured) == expected


@pytest.mark.parametrize("code", ["384", "*384", "*384#\n*1#", "*３８４#", "*٣٨٤#", "*384**5#", "*1234567#"])
def test_the_ascii_digit_validation_is_kept(app, code):
    with pytest.raises(BadCallback, match="serviceCode is not a USSD code like"):
        split(app, code)


# -- Africa's Talking, end to end ------------------------------------------------------
def test_sandbox_code_dial_opens_on_the_main_menu(client, customers):
    phone = Phone(client, ONE_METER, code="*384*12345#").dial()
    assert not phone.ended
    assert phone.screen.startswith(MAIN_MENU), phone.screen
    assert HINT not in phone.screen
    assert phone.send("3").screen.startswith("Mon compte:")


def test_sandbox_code_is_the_one_the_customer_is_told_to_dial_again(client, customers):
    phone = Phone(client, ONE_METER, code="*384*12345#").dial().send("x").send("x").send("x")
    assert phone.ended
    assert "Composez *384*12345# pour recommencer" in phone.screen


def test_configured_code_takes_the_shortcuts_after_it(app, client, customers):
    app.config["SERVICE_CODES"] = ["*384*12345#"]
    assert Phone(client, ONE_METER, code="*384*12345#").dial().screen.startswith(MAIN_MENU)
    assert Phone(client, SEVERAL, code="*384*12345*3*1#").dial().screen.startswith("Vos comptes:")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.from_regex(SERVICE_CODE, fullmatch=True))
def test_any_valid_code_dialled_plainly_opens_on_the_main_menu(client, customers, code):
    phone = Phone(client, ONE_METER, code=code).dial()
    assert phone.screen.startswith(MAIN_MENU), (code, phone.screen)


# -- Hubtel's initiation: ServiceCode is the service's code ------------------------------
def hubtel(client, message, service_code, session_id):
    body = {
        "SessionId": session_id,
        "Mobile": "237699000102",
        "ServiceCode": service_code,
        "Operator": "mtn",
        "Type": "Initiation",
        "Message": message,
        "Sequence": 1,
    }
    response = client.post("/ussd/hubtel", json=body)
    assert response.status_code == 200
    return response.get_json()["Message"]


@pytest.mark.parametrize(
    "service_code, message, screen",
    [
        ("384*12345", "*384*12345#", MAIN_MENU),
        ("*384*12345#", "*384*12345#", MAIN_MENU),
        ("384*12345", "*384#", MAIN_MENU),  # shorter than the code: nothing to take
        ("384*12345", "*384*1234#", MAIN_MENU),  # not under the code: no guess acted on
        ("384*12345", "*384*12345*3#", "Mon compte:"),  # extends the code: a shortcut
    ],
)
def test_hubtel_unconfigured_takes_shortcuts_only_past_its_service_code(client, customers, service_code, message, screen):
    shown = hubtel(client, message, service_code, f"hub-sc-{service_code}-{message}")
    assert shown.startswith(screen), shown
    assert HINT not in shown
