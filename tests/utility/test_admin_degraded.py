"""Degraded mode, as operators steer it: the breakers around the outside systems (GET
/admin/breakers, POST /admin/breakers/<system>/reset), the customer-facing services an
operator turns off with a message (GET/POST /admin/services), and the counts of outside
calls (GET /admin/calls). Every call needs the admin key and is audited."""
from __future__ import annotations

import fakeredis
import pytest
from flask.testing import FlaskClient

from app import create_app
from state import keys, switches
from tests.conftest import ADMIN_KEY
from utility import calls
from utility.services import services

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
OFF = {"enabled": False, "message": {"fr": "Achats suspendus: maintenance jusqu'a 14h.",
                                     "en": "Purchases suspended: maintenance until 2 pm."}}


def audit_trail(redis_client: fakeredis.FakeRedis) -> list[tuple[str, str, str]]:
    return [(e["action"], e["outcome"], e["detail"]) for _id, e in redis_client.xrange(keys.audit())]


# -- breakers ------------------------------------------------------------------------------
def test_the_breakers_need_the_key_and_say_each_system_s_state(client: FlaskClient, fake_redis) -> None:
    assert client.get("/admin/breakers").status_code == 401
    answer = client.get("/admin/breakers", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json["breakers"] == [
        {"system": system, "state": "closed", "failures": 0, "opened_at": None, "next_probe": None}
        for system in ("billing", "payments:demo", "vending")]
    assert (answer.json["failures_to_open"], answer.json["reset_seconds"]) == (5, 30.0)
    assert [outcome for _action, outcome, _detail in audit_trail(fake_redis)] == ["refused", "done"]


def test_an_open_breaker_is_shown_and_an_operator_closes_it(app, client: FlaskClient, fake_redis) -> None:
    services(app)
    calls.seam(app).breaker("vending").open()  # as repeated failures would
    (vending,) = [b for b in client.get("/admin/breakers", headers=AUTH).json["breakers"] if b["system"] == "vending"]
    assert vending["state"] == "open" and vending["opened_at"] and vending["next_probe"] > vending["opened_at"]
    assert calls.states(app)["vending"] == "open"

    answer = client.post("/admin/breakers/vending/reset", headers=AUTH)
    assert answer.status_code == 200 and answer.json["state"] == "closed"
    assert calls.states(app)["vending"] == "closed"  # at once in this process
    assert client.post("/admin/breakers/sms:console/reset", headers=AUTH).status_code == 404  # SMS: no breaker
    assert client.post("/admin/breakers/vending/reset").status_code == 401
    assert audit_trail(fake_redis)[-3:] == [
        ("POST /admin/breakers/vending/reset", "done", "vending breaker closed"),
        ("POST /admin/breakers/sms:console/reset", "rejected", "sms:console: no such breaker"),
        ("POST /admin/breakers/vending/reset", "refused", "missing admin key: send Authorization: Bearer <ADMIN_KEY>"),
    ]


def test_the_calls_are_counted_by_system_and_outcome(app, client: FlaskClient) -> None:
    built = services(app)
    switches.set_down(built.vending.redis, "vending", True)  # type: ignore[attr-defined]
    before = client.get("/admin/calls", headers=AUTH).json["calls"].get("vending", {}).get("off", {"calls": 0})
    with pytest.raises(Exception, match="switched off"):
        built.vending.confirm("01400000012")
    after = client.get("/admin/calls", headers=AUTH).json["calls"]["vending"]["off"]
    assert after["calls"] == before["calls"] + 1 and after["seconds"] >= 0


# -- customer-facing services -------------------------------------------------------------------------
def test_an_operator_turns_a_service_off_with_a_message_and_back_on(app, client: FlaskClient, fake_redis) -> None:
    assert client.get("/admin/services", headers=AUTH).json["services"] == {
        name: {"enabled": True, "message": None, "at": None} for name in ("buy", "bill", "campaigns")}
    assert switches.services(app)["buy"].enabled

    answer = client.post("/admin/services/buy", json=OFF, headers=AUTH)
    assert answer.status_code == 200
    assert (answer.json["service"], answer.json["enabled"], answer.json["message"]) == ("buy", False, OFF["message"])
    buy = switches.services(app)["buy"]  # this process sees it at once
    assert not buy.enabled and buy.text("en") == OFF["message"]["en"] and buy.text("fr") == OFF["message"]["fr"]
    assert switches.services(app)["bill"].enabled
    listed = client.get("/admin/services", headers=AUTH).json["services"]
    assert listed["buy"]["enabled"] is False and listed["buy"]["at"]

    assert client.post("/admin/services/buy", json={"enabled": True}, headers=AUTH).status_code == 200
    assert switches.services(app)["buy"].enabled and switches.services(app)["buy"].text("fr") is None
    assert [(a, o, d) for a, o, d in audit_trail(fake_redis) if a.startswith("POST")] == [
        ("POST /admin/services/buy", "done", "buy off, message in fr, en"),
        ("POST /admin/services/buy", "done", "buy on"),
    ]


def test_another_process_sees_the_switch_within_a_second(fake_redis) -> None:
    config = {"TESTING": True, "REDIS_CLIENT": fake_redis, "ADMIN_KEY": ADMIN_KEY}
    here, there = create_app(config), create_app(config)
    assert switches.services(there)["campaigns"].enabled  # its copy is taken
    here.test_client().post("/admin/services/campaigns", json={"enabled": False}, headers=AUTH)
    assert switches.services(there)["campaigns"].enabled  # the copy serves for up to a second...
    there.extensions[switches.EXTENSION].copied_at -= switches.SERVICES_SECONDS
    off = switches.services(there)["campaigns"]  # ...then the switch is seen
    assert not off.enabled and off.text("fr") is None  # no message: the menu's own words


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"message": OFF["message"]}, {"enabled": "required: true or false"}),
        ({"enabled": "no"}, {"enabled": "required: true or false"}),
        ({"enabled": False, "why": "maintenance"}, {"why": "unknown field (the fields are enabled, message)"}),
        ({"enabled": False, "message": "Maintenance"},
         {"message": 'the customers\' message in each language, like {"fr": "...", "en": "..."}'}),
        ({"enabled": False, "message": {"fr": "Achats suspendus."}},
         {"message.en": "required: what customers read in this language"}),
        ({"enabled": False, "message": {**OFF["message"], "de": "Gesperrt."}},
         {"message.de": "no customer texts in this language (there are fr, en)"}),
        ({"enabled": False, "message": {**OFF["message"], "en": "Purchases suspended ✓"}},
         {"message.en": "not GSM-7 (a USSD screen cannot show '✓')"}),
        ({"enabled": False, "message": {**OFF["message"], "fr": "x" * 121}},
         {"message.fr": "121 characters: at most 120 fit the screen (€ [ ] ^ count two)"}),
        ({"enabled": False, "message": {**OFF["message"], "fr": "€" * 61}},
         {"message.fr": "122 characters: at most 120 fit the screen (€ [ ] ^ count two)"}),
        ({"enabled": True, "message": OFF["message"]},
         {"message": 'shown only while the service is off: send it with "enabled": false'}),
    ],
)
def test_a_bad_switch_is_refused_naming_each_bad_field(app, client: FlaskClient, fake_redis, body, errors) -> None:
    answer = client.post("/admin/services/buy", json=body, headers=AUTH)
    assert (answer.status_code, answer.json) == (422, {"errors": errors})
    assert switches.services(app)["buy"].enabled  # nothing changed
    (entry,) = audit_trail(fake_redis)
    assert entry[1] == "rejected" and entry[2].startswith("buy: refused: ")


def test_the_longest_message_fits_and_the_rest_is_refused(client: FlaskClient) -> None:
    longest = {"enabled": False, "message": {"fr": "x" * 120, "en": "  Sales   are\nsuspended.  "}}
    answer = client.post("/admin/services/bill", json=longest, headers=AUTH)
    assert answer.status_code == 200 and answer.json["message"]["en"] == "Sales are suspended."  # one line
    assert client.post("/admin/services/vending", json=OFF, headers=AUTH).status_code == 404  # a service, not a backend
    assert client.post("/admin/services/buy", data="off", headers=AUTH).status_code == 415
    assert client.post("/admin/services/buy", json=OFF).status_code == 401
