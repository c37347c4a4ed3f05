"""Every refusal a customer can meet, by USSD and by SMS, in French and in English: each in
plain words naming the reason (the SEEG story: "meter unknown or not eligible", no reason).

By USSD the "Crédits gratuits" entry is only there while a campaign takes registrations, so
"not open", "paused" and "closed" are met by SMS (the code is a keyword while the campaign
exists); the others by both channels."""
from __future__ import annotations

import itertools

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sms import outbox
from state import keys
from state.store import get_redis
from tests.campaigns.conftest import AMINA, AMINA_METER, JEAN, JEAN_METER, definition
from tests.ussd.conftest import Phone
from utility.campaigns.service import Campaigns

_ids = itertools.count(1)
OPEN = {"starts_at": "2020-01-01T00:00", "ends_at": "2099-12-31T00:00"}

# What the customer reads, by reason and language (JEAN: prepaid, Centre).
SAID = {
    "tariff": {"fr": "Votre tarif (Prépayé) n'est pas concerné par GRATUIT.",
               "en": "Your tariff (Prepaid) is not part of GRATUIT."},
    "region": {"fr": "Votre région (Centre) n'est pas concernée par GRATUIT.",
               "en": "Your region (Centre) is not part of GRATUIT."},
    "not_listed": {"fr": f"Le compteur {JEAN_METER} n'est pas sur la liste des bénéficiaires de GRATUIT.",
                   "en": f"The meter {JEAN_METER} is not on the list of GRATUIT beneficiaries."},
    "quota": {"fr": "GRATUIT est complet: toutes les places ont été attribuées.",
              "en": "GRATUIT is full: every place has been taken."},
    "already": {"fr": "Déjà inscrit à GRATUIT le ", "en": "Already registered for GRATUIT on "},
    "not_open": {"fr": "GRATUIT n'est pas encore ouvert: inscriptions à partir du 01/01/2099 à 08:00.",
                 "en": "GRATUIT is not open yet: registration starts on 01/01/2099 at 08:00."},
    "paused": {"fr": "Les inscriptions à GRATUIT sont suspendues pour le moment. Réessayez plus tard.",
               "en": "Registration for GRATUIT is paused for now. Please try again later."},
    "closed": {"fr": "GRATUIT est clos: les inscriptions sont fermées.",
               "en": "GRATUIT is closed: registration has ended."},
}
BY_USSD = ("tariff", "region", "not_listed", "quota", "already")


def set_up(reason: str, campaigns: Campaigns) -> None:
    """A campaign that refuses JEAN's meter for ``reason``."""
    eligibility = {"tariff": {"tariffs": ["social"]}, "region": {"regions": ["Estuaire"]}}.get(reason, {})
    times = {"starts_at": "2099-01-01T08:00", "ends_at": "2099-12-31T00:00"} if reason == "not_open" else OPEN
    campaigns.create(definition(eligibility=eligibility, quota=1 if reason == "quota" else None, **times))
    if reason == "not_listed":
        campaigns.set_allowlist("GRATUIT", f"number\n{AMINA_METER}\n".encode())
    if reason == "quota":
        assert campaigns.register("GRATUIT", AMINA_METER, AMINA.phone, "sms", "fr").accepted
    if reason == "already":
        assert campaigns.register("GRATUIT", JEAN_METER, JEAN.phone, "sms", "fr").accepted
    if reason in ("paused", "closed"):
        getattr(campaigns, reason[:-1] if reason == "paused" else "close")("GRATUIT")


def speaks(app: Flask, lang: str) -> None:
    get_redis(app).hset(keys.profile(JEAN.phone), "lang", lang)


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("reason", list(SAID))
def test_by_sms(reason: str, lang: str, app: Flask, client: FlaskClient, campaigns: Campaigns) -> None:
    set_up(reason, campaigns)
    speaks(app, lang)
    message_id = f"ATXid_r{next(_ids)}"
    form = {"from": JEAN.phone, "to": "8080", "text": f"gratuit {JEAN_METER}", "date": "2026-04-20 12:00:00",
            "id": message_id, "linkId": "", "networkCode": "62401"}
    assert client.post("/sms/africastalking/inbound", data=form).status_code == 200
    reply = outbox.find(get_redis(app), f"inbound:africastalking:{message_id}")
    assert reply is not None and reply.body.startswith(SAID[reason][lang]), reply and reply.body


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("reason", BY_USSD)
def test_by_ussd(reason: str, lang: str, app: Flask, client: FlaskClient, campaigns: Campaigns) -> None:
    set_up(reason, campaigns)
    speaks(app, lang)
    phone = Phone(client, JEAN.phone).dial()
    assert phone.screen.splitlines()[4] == ("4. Crédits gratuits" if lang == "fr" else "4. Free credit")
    phone.send("4").send("1")  # one campaign: JEAN's meter is the first of his accounts
    assert phone.ended and phone.screen.startswith(SAID[reason][lang]), phone.screen


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("reason", ["not_open", "paused", "closed"])
def test_a_campaign_not_taking_registrations_is_not_offered_by_ussd(reason: str, lang: str, app: Flask,
                                                                    client: FlaskClient, campaigns: Campaigns) -> None:
    set_up(reason, campaigns)
    speaks(app, lang)
    menu = Phone(client, JEAN.phone).dial().screen.splitlines()
    assert len(menu) == 5 and menu[4] in ("4. Langue / Language", "4. Language / Langue"), menu
