"""Free credits by USSD, as the customer dials it: the entry appears while a campaign is
open, the caller picks one of their meters or types a number, and the verdict ends the call
in the words the SMS reply uses: a reference and when the credit comes, or why not."""
from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from tests.ussd.conftest import NOBODY, ONE_METER, POSTPAID_ONLY, SEVERAL
from utility.meters import with_check_digit
from utility.services import services

MY_METER = with_check_digit("1000000001")  # ONE_METER's
NOW = datetime.datetime.now(datetime.UTC)


def open_campaign(app, code: str = "GRATUIT", **changes: Any) -> None:
    definition: dict[str, Any] = {
        "code": code,
        "name": {"fr": "Electricite offerte", "en": "Free electricity"},
        "starts_at": (NOW - datetime.timedelta(hours=1)).isoformat(),
        "ends_at": (NOW + datetime.timedelta(days=7)).isoformat(),
        "benefit": {"kind": "kwh", "amount": 50},
        "eligibility": {"tariffs": ["prepaid", "social"]},
    }
    definition.update(changes)
    services(app).campaigns.create(definition)


def test_without_an_open_campaign_there_is_no_entry(dial):
    assert "Crédits gratuits" not in dial().screen


def test_register_my_meter_by_picking_it(app, dial):
    open_campaign(app)
    phone = dial(ONE_METER)
    assert phone.screen.splitlines()[1:] == ["1. Acheter des unités", "2. Payer une facture", "3. Mon compte",
                                             "4. Crédits gratuits", "5. Langue / Language"]
    phone.send("4")  # one campaign open: straight to which meter
    assert phone.screen.splitlines()[:3] == ["Pour quel compteur ou compte?", f"1. Compteur {MY_METER}",
                                             "2. Autre compteur ou compte"]
    phone.send("1")
    assert phone.ended
    assert phone.screen.startswith(f"Inscription GRATUIT recue pour le compteur {MY_METER}, réf "), phone.screen
    assert "50 kWh" in phone.screen
    assert services(app).campaigns.stats("GRATUIT")["registered"] == 1


def test_each_verdict_is_journaled_with_the_hop_that_gave_it(app, dial, redis_client):
    from state import journal

    open_campaign(app)
    first = dial(ONE_METER).send("4").send("1").screen
    dial(ONE_METER).send("4").send("1")  # again: refused
    dial(NOBODY).send("4").send("123")  # a number nobody has: asked again, refused all the same
    verdicts = [entry for entry in journal.read(redis_client) if entry["kind"].startswith("campaign.r")]
    assert [(entry["kind"], entry.get("reason", "")) for entry in verdicts] == [
        ("campaign.registered", ""), ("campaign.refused", "already"), ("campaign.refused", "unknown_number")]
    assert verdicts[0]["reference"] in first and verdicts[0]["channel"] == "ussd"


def test_registering_twice_says_when_and_under_which_reference(app, dial):
    open_campaign(app)
    first = dial(ONE_METER).send("4").send("1").screen
    reference = re.search(r"réf (\w+)", first).group(1)
    again = dial(ONE_METER).send("4").send("1")
    assert again.ended and again.screen.startswith("Déjà inscrit à GRATUIT le "), again.screen
    assert f"réf {reference}" in again.screen
    assert services(app).campaigns.stats("GRATUIT")["registered"] == 1


def test_a_tariff_the_campaign_leaves_out_is_told_plainly(app, dial):
    open_campaign(app)
    phone = dial(POSTPAID_ONLY).send("4").send("1")
    assert phone.ended and "n'est pas concerné par GRATUIT" in phone.screen, phone.screen


def test_a_number_typed_wrong_is_asked_again_then_registered(app, dial):
    open_campaign(app)
    phone = dial(NOBODY).send("4")  # no account linked to this phone: type the number
    assert phone.screen.startswith("Numéro du compteur ou du compte:")
    phone.send("123")
    assert not phone.ended and phone.screen.startswith("Numéro inconnu, vérifiez-le.\nNuméro du compteur"), phone.screen
    phone.send(MY_METER)
    assert phone.ended and phone.screen.startswith(f"Inscription GRATUIT recue pour le compteur {MY_METER}")


def test_another_meter_from_the_list(app, dial):
    open_campaign(app)
    other = with_check_digit("2000000002")  # SEVERAL's second meter, registered from ONE_METER's phone
    phone = dial(ONE_METER).send("4").send("2").send(other)
    assert phone.ended and f"compteur {other}" in phone.screen


def test_quota_reached(app, dial):
    open_campaign(app, quota=1)
    assert "recue" in dial(ONE_METER).send("4").send("1").screen
    phone = dial(SEVERAL).send("4").send("1")
    assert phone.ended and phone.screen == "GRATUIT est complet: toutes les places ont été attribuées."


def test_in_english(app, dial):
    open_campaign(app)
    phone = dial(ONE_METER).send("5").send("2")  # Language is 5 while a campaign is open
    assert "4. Free credit" in phone.screen.splitlines()
    phone.send("4")
    assert phone.screen.splitlines()[:2] == ["For which meter or account?", f"1. Meter {MY_METER}"]
    assert phone.send("1").ended


def test_two_campaigns_are_listed_by_name(app, dial):
    open_campaign(app)
    open_campaign(app, code="EAU2026", name={"fr": "Eau offerte", "en": "Free water"})
    phone = dial(ONE_METER).send("4")
    lines = phone.screen.splitlines()
    assert lines[0] == "Crédits gratuits:" and sorted(lines[1:3]) == ["1. Eau offerte", "2. Electricite offerte"]
    phone.send(next(line[0] for line in lines[1:3] if line.endswith("Eau offerte"))).send("1")
    assert phone.ended and "EAU2026" in phone.screen


@pytest.mark.parametrize("action", ["pause", "close"])
def test_a_paused_or_closed_campaign_leaves_the_menu(app, dial, action):
    open_campaign(app)
    getattr(services(app).campaigns, action)("GRATUIT")
    assert "Crédits gratuits" not in dial(ONE_METER).screen
