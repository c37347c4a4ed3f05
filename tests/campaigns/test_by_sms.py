"""Registering by SMS: "GRATUIT <meter or account>" to the short code; the reply says the
verdict in the same words as the USSD screen."""
from __future__ import annotations

import itertools

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sms import keywords, outbox
from state import keys, switches
from state.store import get_redis
from tests.campaigns.conftest import JEAN, JEAN_METER, SYLVIE, definition
from utility.campaigns.service import Campaigns

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch, app: Flask) -> None:
    """The keyword registry as this app left it, restored after the test."""
    monkeypatch.setattr(keywords, "RESOLVERS", list(keywords.RESOLVERS))


def texts(client: FlaskClient, app: Flask, phone: str, text: str) -> str | None:
    """The customer texts our short code through Africa's Talking; the reply we queue."""
    message_id = f"ATXid_{next(_ids)}"
    form = {"from": phone, "to": "8080", "text": text, "date": "2026-04-20 12:00:00", "id": message_id,
            "linkId": "", "networkCode": "62401"}
    assert client.post("/sms/africastalking/inbound", data=form).status_code == 200
    reply = outbox.find(get_redis(app), f"inbound:africastalking:{message_id}")
    return reply.body if reply else None


def open_now() -> dict[str, str]:
    return {"starts_at": "2020-01-01T00:00", "ends_at": "2099-12-31T00:00"}


def test_a_customer_registers_by_sms(client: FlaskClient, app: Flask, campaigns: Campaigns) -> None:
    campaigns.create(definition(**open_now()))
    reply = texts(client, app, JEAN.phone, f"  gratuit  {JEAN_METER} ")
    assert reply is not None and reply.startswith(f"Inscription GRATUIT recue pour le compteur {JEAN_METER}, réf ")
    [registration] = list(campaigns.registrations("GRATUIT"))
    assert (registration.channel, registration.phone, registration.meter) == ("sms", JEAN.phone, JEAN_METER)
    assert texts(client, app, JEAN.phone, f"GRATUIT {JEAN.account_number}") == (
        f"Déjà inscrit à GRATUIT le {registration.at.astimezone(campaigns.tz):%d/%m/%Y}, réf {registration.reference}.")


def test_the_reply_is_in_the_phones_language_and_refusals_say_why(
    client: FlaskClient, app: Flask, campaigns: Campaigns
) -> None:
    campaigns.create(definition(**open_now()))
    get_redis(app).hset(keys.profile(SYLVIE.phone), "lang", "en")
    assert texts(client, app, SYLVIE.phone, "GRATUIT GA-1000005") == "Your tariff (Postpaid) is not part of GRATUIT."
    assert texts(client, app, SYLVIE.phone, "gratuit") == (
        "To register for GRATUIT, send GRATUIT followed by your meter or account number, for example "
        "GRATUIT 01400000012.")


def test_a_closed_campaign_still_answers_and_the_help_lists_the_open_ones(
    client: FlaskClient, app: Flask, campaigns: Campaigns
) -> None:
    campaigns.create(definition(**open_now()))
    campaigns.create(definition(code="EAU", benefit={"kind": "m3", "amount": 5}, **open_now()))
    listed = texts(client, app, JEAN.phone, "aide") or ""
    assert listed.startswith("Envoyez par SMS: AIDE, ")
    assert listed.endswith(", EAU <compteur ou compte>, GRATUIT <compteur ou compte>")
    campaigns.close("EAU")
    assert texts(client, app, JEAN.phone, f"EAU {JEAN_METER}") == "EAU est clos: les inscriptions sont fermées."
    assert "EAU" not in (texts(client, app, JEAN.phone, "aide") or "")


def test_while_the_operator_has_closed_campaigns_a_code_gets_their_words_and_registers_nothing(
    client: FlaskClient, app: Flask, campaigns: Campaigns
) -> None:
    campaigns.create(definition(**open_now()))
    switches.set_service(get_redis(app), "campaigns", False, {"fr": "Inscriptions suspendues jusqu'à lundi."})
    switches.forget_services(app)  # this process sees it at once (the others within a second)
    assert texts(client, app, JEAN.phone, f"GRATUIT {JEAN_METER}") == "Inscriptions suspendues jusqu'à lundi."
    get_redis(app).hset(keys.profile(SYLVIE.phone), "lang", "en")
    assert texts(client, app, SYLVIE.phone, "GRATUIT GA-1000005") == "Inscriptions suspendues jusqu'à lundi."
    assert list(campaigns.registrations("GRATUIT")) == []
    switches.set_service(get_redis(app), "campaigns", False)  # without words: ours
    switches.forget_services(app)
    assert texts(client, app, JEAN.phone, f"GRATUIT {JEAN_METER}") == (
        "Ce service est momentanément fermé. Réessayez plus tard.")
    switches.set_service(get_redis(app), "campaigns", True)
    switches.forget_services(app)
    assert texts(client, app, JEAN.phone, f"GRATUIT {JEAN_METER}").startswith("Inscription GRATUIT recue")
