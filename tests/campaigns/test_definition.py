"""An operator's campaign definition: every bad field is named at once, so one round of
corrections is enough; a good one becomes a Campaign whose status follows the clock."""
from __future__ import annotations

import datetime
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest

from tests.campaigns.conftest import definition as campaign_definition
from utility.campaigns.model import Campaign, DefinitionError, parse_definition

DOUALA = zoneinfo.ZoneInfo("Africa/Douala")


def definition(**changes: Any) -> dict[str, Any]:
    """The conftest's GRATUIT with every optional field given too."""
    full: dict[str, Any] = {"eligibility": {"tariffs": ["social", "prepaid"], "regions": ["Estuaire"]}, "quota": 250000}
    return campaign_definition(**{**full, **changes})


def errors_of(data: object) -> dict[str, str]:
    with pytest.raises(DefinitionError) as refused:
        parse_definition(data, DOUALA)
    return refused.value.errors


def test_a_good_definition_becomes_a_campaign() -> None:
    campaign = parse_definition(definition(), DOUALA)
    assert campaign.code == "GRATUIT"
    assert campaign.name("en") == "Free electricity"
    assert campaign.starts_at == datetime.datetime(2026, 4, 14, 8, 0, tzinfo=DOUALA)  # the utility's time
    assert campaign.benefit.kind == "kwh" and campaign.benefit.amount == Decimal(50)
    assert campaign.tariffs == ("social", "prepaid") and campaign.regions == ("Estuaire",)
    assert campaign.quota == 250000 and campaign.state == "active"
    assert parse_definition(campaign.definition(), DOUALA) == campaign  # what it shows reads back the same


def test_eligibility_and_quota_may_be_left_out() -> None:
    campaign = parse_definition(definition(eligibility=..., quota=...), DOUALA)
    assert (campaign.tariffs, campaign.regions, campaign.quota) == ((), (), None)
    assert parse_definition(definition(quota=None, eligibility={}), DOUALA).quota is None


def test_a_time_with_an_offset_keeps_it() -> None:
    campaign = parse_definition(definition(starts_at="2026-04-14T07:00:00+00:00"), DOUALA)
    assert campaign.starts_at == datetime.datetime(2026, 4, 14, 8, 0, tzinfo=DOUALA)


def test_every_bad_field_is_named_at_once() -> None:
    bad = definition(
        code="gratuit!", name={"fr": "Électricité • offerte"}, starts_at="14/04/2026", ends_at=None,
        benefit={"kind": "kw", "amount": -5}, eligibility={"tariffs": "social", "zones": []}, quota=0,
        colour="blue",
    )
    assert errors_of(bad) == {
        "colour": "unknown field (the fields are code, name, starts_at, ends_at, benefit, eligibility, quota)",
        "code": "must be 3 to 12 capital letters or digits, a letter first, like GRATUIT",
        "name.fr": "'•' cannot be sent by SMS or USSD (GSM-7): write it without (c for ç, e for ê)",
        "name.en": "required: the name customers read in this language",
        "starts_at": "'14/04/2026' is not a date and time like 2026-04-14T08:00 (the utility's time) or "
                     "2026-04-14T08:00+01:00",
        "ends_at": "required: a date and time, like 2026-04-14T08:00 (the utility's time) or 2026-04-14T08:00+01:00",
        "benefit.kind": "must be one of kwh, m3, xaf",
        "benefit.amount": "must be more than 0",
        "eligibility.zones": "unknown field (the fields are tariffs, regions)",
        "eligibility.tariffs": "must be a list of non-empty strings (leave it out for all)",
        "quota": "must be a whole number from 1 to 100,000,000, or left out for no limit",
    }


@pytest.mark.parametrize("code", ["STOP", "AIDE", "SOLDE", "JETON", "HELP", "INFO", "START", "ARRET", "BAL", "TOKEN"])
def test_a_code_cannot_be_a_keyword_the_sms_channel_answers(code: str) -> None:
    assert errors_of(definition(code=code)) == {
        "code": f"{code} is a word the SMS channel answers itself: choose another code"}


@pytest.mark.parametrize("code", ["AB", "ABCDEFGHIJKLM", "12345", "GRA TUIT", 12345, None])
def test_a_code_is_3_to_12_capitals_or_digits_starting_with_a_letter(code: object) -> None:
    assert "code" in errors_of(definition(code=code))


def test_a_name_must_fit_a_screen_line() -> None:
    errors = errors_of(definition(name={"fr": "Electricite offerte a tous les foyers", "en": "Free", "de": "Frei"}))
    assert errors == {"name.fr": "at most 24 characters, to fit a screen line (this one has 37)",
                      "name.de": "no customer texts in this language (there are fr, en)"}


def test_the_campaign_must_end_after_it_starts() -> None:
    assert errors_of(definition(ends_at="2026-04-14T08:00")) == {"ends_at": "must be after starts_at"}


def test_a_token_of_units_cannot_go_to_postpaid_accounts() -> None:
    errors = errors_of(definition(eligibility={"tariffs": ["prepaid", "postpaid"]}))
    assert errors == {"eligibility.tariffs": "a kwh benefit is a token for a prepaid meter: postpaid accounts "
                                             "cannot receive it (give xaf, or drop postpaid)"}
    money = parse_definition(definition(benefit={"kind": "xaf", "amount": 5000},
                                        eligibility={"tariffs": ["postpaid"]}), DOUALA)
    assert money.tariffs == ("postpaid",)


@pytest.mark.parametrize(
    ("benefit", "field"),
    [
        ({"kind": "xaf", "amount": 2500.5}, "benefit.amount"),  # money is whole XAF
        ({"kind": "kwh", "amount": 12.25}, "benefit.amount"),  # a token carries tenths
        ({"kind": "m3", "amount": 100000}, "benefit.amount"),  # more than a token SMS shows
        ({"kind": "kwh", "amount": True}, "benefit.amount"),
        ({"kind": "kwh", "amount": "fifty"}, "benefit.amount"),
        ({"kind": "kwh"}, "benefit.amount"),
        ({"kind": "kwh", "amount": 5, "unit": "kWh"}, "benefit.unit"),
        ("50 kWh", "benefit"),
    ],
)
def test_a_benefit_is_checked(benefit: object, field: str) -> None:
    assert field in errors_of(definition(benefit=benefit))


def test_not_an_object_at_all() -> None:
    assert errors_of(["GRATUIT"]) == {
        "definition": "must be a JSON object with the fields code, name, starts_at, ends_at, benefit, "
                      "eligibility, quota"}


def test_status_follows_the_clock_and_the_operator() -> None:
    campaign = parse_definition(definition(), DOUALA)
    before = datetime.datetime(2026, 4, 14, 7, 59, tzinfo=DOUALA)
    during = datetime.datetime(2026, 4, 20, 12, 0, tzinfo=DOUALA)
    after = datetime.datetime(2026, 4, 30, 20, 0, tzinfo=DOUALA)
    assert [campaign.status(moment) for moment in (before, during, after)] == ["not_open", "active", "ended"]
    paused = Campaign(**{**vars(campaign), "state": "paused"})
    closed = Campaign(**{**vars(campaign), "state": "closed"})
    assert (paused.status(during), closed.status(during), closed.status(before)) == ("paused", "closed", "closed")
    assert campaign.is_open(during) and not paused.is_open(during)


def test_regions_compare_without_case_or_accents() -> None:
    campaign = parse_definition(definition(eligibility={"regions": ["Extrême-Nord"]}), DOUALA)
    assert campaign.eligibility_refusal("prepaid", "extreme-nord", prepaid=True) == ""
    assert campaign.eligibility_refusal("prepaid", "Nord", prepaid=True) == "region"
    assert campaign.eligibility_refusal("postpaid", "Extreme-Nord", prepaid=False) == "tariff"  # kWh needs a meter
