"""Customers registering: accepted with a reference and when the credit comes, or refused
with one reason they can act on; one registration per meter and account."""
from __future__ import annotations

import datetime

import pytest
from flask import Flask

from state import journal
from state.store import get_redis
from tests.campaigns.conftest import (
    AFTER,
    AMINA,
    AMINA_METER,
    BEFORE,
    DOUALA,
    JEAN,
    JEAN_METER,
    OPEN,
    PAUL,
    SYLVIE,
    definition,
)
from utility.campaigns.service import Campaigns, UnknownCampaign
from utility.campaigns.texts import verdict_text

PHONE = JEAN.phone
XAF = {"kind": "xaf", "amount": 5000}


def test_a_meter_is_registered_and_told_when_its_credit_comes(campaigns: Campaigns, app: Flask) -> None:
    campaigns.create(definition())
    verdict = campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN)
    assert verdict.accepted and verdict.reason == ""
    assert len(verdict.reference) == 8 and verdict.reference.isalnum()
    assert (verdict.account, verdict.meter, verdict.within_hours) == (JEAN.account_number, JEAN_METER, 48)
    assert verdict_text("fr", verdict) == (
        f"Inscription GRATUIT recue pour le compteur {JEAN_METER}, réf {verdict.reference}. 50 kWh gratuits "
        "arrivent par SMS sous 48 h.")
    registration = campaigns.registration("GRATUIT", verdict.reference)
    assert registration is not None
    assert (registration.phone, registration.channel, registration.state) == (PHONE, "ussd", "pending")
    entry = journal.read(get_redis(app), 1)[0]
    assert (entry["kind"], entry["campaign"], entry["reference"]) == ("campaign.registered", "GRATUIT",
                                                                      verdict.reference)


def test_the_code_and_the_number_are_read_as_typed(campaigns: Campaigns) -> None:
    campaigns.create(definition(benefit=XAF))
    verdict = campaigns.register("gratuit", " 0140 0000 012 ", PHONE, "sms", "fr", now=OPEN)
    assert verdict.accepted and verdict.meter == JEAN_METER


def test_an_account_without_a_meter_gets_a_bill_credit(campaigns: Campaigns) -> None:
    campaigns.create(definition(benefit=XAF))
    verdict = campaigns.register("GRATUIT", "GA1000005", SYLVIE.phone, "ussd", "en", now=OPEN)
    assert verdict.accepted and (verdict.account, verdict.meter) == ("GA-1000005", "")
    assert verdict_text("en", verdict).endswith("5,000 FCFA will be taken off your bill within 48 h.")


def test_one_registration_per_account_and_meter_whichever_number_is_typed(campaigns: Campaigns) -> None:
    campaigns.create(definition())
    first = campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN)
    later = OPEN + datetime.timedelta(days=2)
    again = campaigns.register("GRATUIT", "1000001", "+237677000001", "sms", "fr", now=later)  # the account, elsewhere
    assert (again.reason, again.reference) == ("already", first.reference)
    assert again.registered_at == OPEN
    assert verdict_text("fr", again) == f"Déjà inscrit à GRATUIT le 20/04/2026, réf {first.reference}."
    assert campaigns.stats("GRATUIT", later)["registered"] == 1


def test_someone_already_registered_hears_so_even_once_the_campaign_is_over(campaigns: Campaigns) -> None:
    campaigns.create(definition())
    first = campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN)
    campaigns.close("GRATUIT")
    assert campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=AFTER).reference == first.reference


def test_refusals_say_why(campaigns: Campaigns) -> None:
    campaigns.create(definition(eligibility={"tariffs": ["prepaid"], "regions": ["Centre", "Littoral"]}))

    def reason(number: str, phone: str = PHONE) -> str:
        return campaigns.register("GRATUIT", number, phone, "ussd", "fr", now=OPEN).reason

    assert reason("01400000099") == "unknown_number"
    assert reason("1000005") == "ambiguous"  # GA-1000005 and CM-1000005: neither is this phone's
    assert reason(AMINA_METER) == "tariff"  # social is not in the list
    assert reason("GA-1000005", SYLVIE.phone) == "tariff"  # kWh is a token: a postpaid account cannot take it
    campaigns.create(definition(code="GABON", benefit=XAF, eligibility={"regions": ["Littoral"]}))
    verdict = campaigns.register("GABON", "1000005", SYLVIE.phone, "ussd", "fr", now=OPEN)  # the caller's own
    assert (verdict.reason, verdict.region) == ("region", "Estuaire")
    assert verdict_text("fr", verdict) == "Votre région (Estuaire) n'est pas concernée par GABON."
    tariff = campaigns.register("GRATUIT", AMINA_METER, AMINA.phone, "ussd", "en", now=OPEN)
    assert verdict_text("en", tariff) == "Your tariff (Social) is not part of GRATUIT."
    assert campaigns.stats("GRATUIT", OPEN)["refusals"] == {
        "unknown_number": 1, "ambiguous": 1, "tariff": 3, "region": 0, "not_listed": 0, "quota": 0,
        "not_open": 0, "closed": 0, "paused": 0, "already": 0}


def test_the_clock_and_the_operator_open_and_close_registrations(campaigns: Campaigns) -> None:
    campaigns.create(definition())

    def verdict(now: datetime.datetime, number: str = JEAN_METER) -> tuple[str, str]:
        found = campaigns.register("GRATUIT", number, PHONE, "ussd", "fr", now=now)
        return found.reason, verdict_text("fr", found)

    assert verdict(BEFORE) == ("not_open", "GRATUIT n'est pas encore ouvert: inscriptions à partir du 14/04/2026 "
                                           "à 08:00.")
    assert verdict(BEFORE, "00000000000")[0] == "not_open"  # no use fixing the number before it opens
    campaigns.pause("GRATUIT")
    assert verdict(OPEN)[0] == "paused"
    campaigns.resume("GRATUIT")
    assert verdict(AFTER) == ("closed", "GRATUIT est terminé depuis le 30/04/2026: les inscriptions sont closes.")
    campaigns.close("GRATUIT")
    assert verdict(OPEN) == ("closed", "GRATUIT est clos: les inscriptions sont fermées.")
    assert campaigns.stats("GRATUIT", OPEN)["refusals"]["closed"] == 2


def test_the_quota_turns_away_the_one_too_many(campaigns: Campaigns) -> None:
    campaigns.create(definition(quota=1))
    assert campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN).accepted
    full = campaigns.register("GRATUIT", "CM-1000006", "+237699000006", "ussd", "fr", now=OPEN)
    assert full.reason == "quota"
    assert verdict_text("fr", full) == "GRATUIT est complet: toutes les places ont été attribuées."
    assert campaigns.stats("GRATUIT", OPEN)["remaining_quota"] == 0


def test_an_allowlist_admits_its_numbers_only(campaigns: Campaigns) -> None:
    campaigns.create(definition(eligibility={"tariffs": ["prepaid", "social"]}))
    assert campaigns.set_allowlist("GRATUIT", f"number\n{AMINA.account_number}\n".encode()) == 1
    refused = campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN)
    assert refused.reason == "not_listed"
    assert verdict_text("fr", refused) == (f"Le compteur {JEAN_METER} n'est pas sur la liste des bénéficiaires de "
                                           "GRATUIT.")
    assert campaigns.register("GRATUIT", AMINA_METER, AMINA.phone, "ussd", "fr", now=OPEN).accepted  # by its account
    campaigns.set_allowlist("GRATUIT", b"number\n")  # a header alone lifts the list
    assert campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN).accepted


def test_registrations_and_refusals_are_counted_per_minute(campaigns: Campaigns) -> None:
    campaigns.create(definition(eligibility={"tariffs": ["prepaid", "water"]}))
    campaigns.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN)
    campaigns.register("GRATUIT", "CM-1000006", "+237699000006", "sms", "fr", now=OPEN + datetime.timedelta(minutes=2))
    stats = campaigns.stats("GRATUIT", OPEN + datetime.timedelta(minutes=2, seconds=30))
    assert stats["registered"] == 2 and stats["remaining_quota"] is None
    per_minute = stats["registrations_per_minute"]
    assert len(per_minute) == 15
    assert per_minute[-3:] == [{"minute": "2026-04-20T12:00+01:00", "registrations": 1},
                               {"minute": "2026-04-20T12:01+01:00", "registrations": 0},
                               {"minute": "2026-04-20T12:02+01:00", "registrations": 1}]


def test_the_menu_asks_for_active_campaigns_without_a_round_trip_each_hop(app: Flask, base: object) -> None:
    # Two processes' Campaigns on one Redis, each with its own copy and a clock we move.
    ticks = [0.0]
    here = Campaigns(get_redis(app), base, DOUALA, clock=lambda: ticks[0])  # type: ignore[arg-type]
    there = Campaigns(get_redis(app), base, DOUALA, clock=lambda: ticks[0])  # type: ignore[arg-type]
    there.create(definition())
    there.create(definition(code="EAU", benefit={"kind": "m3", "amount": 5}, starts_at="2026-05-01T08:00",
                            ends_at="2026-05-31T20:00"))
    assert [c.code for c in here.active(OPEN)] == ["GRATUIT"]  # EAU opens in May

    calls = []
    real_all = here.all
    here.all = lambda: calls.append(1) or real_all()  # type: ignore[method-assign]
    for _ in range(100):
        here.active(OPEN)
    assert calls == []  # served from the copy

    there.pause("GRATUIT")
    assert [c.code for c in here.active(OPEN)] == ["GRATUIT"]  # this process learns within seconds...
    assert here.register("GRATUIT", JEAN_METER, PHONE, "ussd", "fr", now=OPEN).reason == "paused"  # ...Redis at once
    ticks[0] += 5
    assert here.active(OPEN) == [] and len(calls) == 1


def test_an_unknown_campaign_is_an_error_not_a_verdict(campaigns: Campaigns) -> None:
    with pytest.raises(UnknownCampaign):
        campaigns.register("NOPE", JEAN_METER, PHONE, "sms", "fr", now=OPEN)
    campaigns.create(definition())
    with pytest.raises(ValueError):  # the gateway's number, always E.164: a bug upstream, not a customer's fault
        campaigns.register("GRATUIT", JEAN_METER, "699000001", "sms", "fr", now=OPEN)


def test_an_ambiguous_number_is_the_callers_own_when_one_of_them_is(campaigns: Campaigns) -> None:
    campaigns.create(definition(benefit=XAF))
    assert campaigns.register("GRATUIT", "1000005", PAUL.phone, "ussd", "fr", now=OPEN).account == "CM-1000005"
