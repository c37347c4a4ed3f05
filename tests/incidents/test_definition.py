"""An operator's definition is checked whole before anything is written: each bad field is
named with why, and the texts are checked as customers will read them (GSM-7, a title that
is one USSD line, a message that keeps the broadcast SMS to two segments)."""
from __future__ import annotations

import datetime
import zoneinfo

import pytest
from flask.testing import FlaskClient

from sms.gsm import sms_segments
from tests.conftest import ADMIN_KEY
from tests.incidents.conftest import definition
from utility.incidents import texts
from utility.incidents.model import DefinitionError, merge, parse_definition
from utility.incidents.service import Incidents

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
DOUALA = zoneinfo.ZoneInfo("Africa/Douala")
NOW = datetime.datetime(2026, 5, 10, 9, 0, tzinfo=DOUALA)
KNOWN = {"littoral": "Littoral", "centre": "Centre", "extreme-nord": "Extreme-Nord"}


def parse(**changes: object) -> object:
    return parse_definition(definition(**changes), KNOWN, DOUALA, NOW, ("fr", "en"))


def errors_of(**changes: object) -> dict[str, str]:
    with pytest.raises(DefinitionError) as refused:
        parse(**changes)
    return refused.value.errors


def test_a_bad_definition_is_refused_with_a_422_naming_each_field(client: FlaskClient, incidents: Incidents) -> None:
    response = client.post("/admin/incidents", headers=AUTH, json=definition(
        title={"fr": "Coupure générale sur tout le réseau de Douala et environs", "en": "Outage"},
        message={"fr": "Coupure à cause d’un orage", "en": "Storm"},
        regions=["Littoral", "Atlantis"], services=["water"], expected_end="2020-01-01T00:00",
        broadcast="yes", colour="red"))
    assert response.status_code == 422
    errors = response.json["errors"]  # type: ignore[index]
    assert set(errors) == {"title.fr", "message.fr", "regions", "services", "expected_end", "broadcast", "colour"}
    assert errors["title.fr"] == ("at most 40 characters: it is the one-line notice of the USSD menu "
                                  "(this one has 57)")
    assert errors["message.fr"].startswith("'’' cannot be sent by SMS or USSD (GSM-7)")
    assert errors["regions"].startswith("not a region of the customer base: Atlantis (the regions: Centre, Littoral)")
    assert errors["services"] == "'water': the services are payments, vending, billing, supply"
    assert errors["expected_end"] == "must be in the future (leave it out when the end is not known)"
    assert incidents.all() == []
    assert client.post("/admin/incidents", headers=AUTH, data="{", content_type="text/plain").status_code == 415


def test_every_field_is_required_but_the_end_and_the_flags() -> None:
    assert set(errors_of(title=..., message=..., regions=..., services=...)) == {
        "title", "message", "regions", "services"}
    assert set(errors_of(title={"fr": "Coupure"}, message={"fr": "x", "en": " ", "sw": "y"})) == {
        "title.en", "message.en", "message.sw"}
    incident = parse(expected_end=..., waive_penalties=..., broadcast=...)
    assert (incident.expected_end, incident.waive_penalties, incident.broadcast) == (None, False, False)


def test_regions_are_matched_as_the_customer_base_writes_them() -> None:
    incident = parse(regions=["  LITTORAL ", "Extrême-Nord", "littoral"])
    assert incident.regions == ("Littoral", "Extreme-Nord")


def test_a_time_without_zone_is_the_utilitys() -> None:
    assert parse().expected_end == datetime.datetime(2099, 5, 12, 18, 0, tzinfo=DOUALA)


def test_the_message_keeps_the_broadcast_to_two_segments_with_the_longest_utility_name() -> None:
    title = "T" * 40
    ok = parse(title={"fr": title, "en": title}, message={"fr": "m", "en": "m"})
    room = 306 - len(texts.broadcast_body("fr", "update-1", texts.LONGEST_UTILITY, title, "", ok.expected_end, DOUALA))
    fits = parse(title={"fr": title, "en": "Outage"}, message={"fr": "a" * room, "en": "Works"})
    body = texts.broadcast_body("fr", "update-1", texts.LONGEST_UTILITY, title, fits.message("fr"), fits.expected_end,
                                DOUALA)
    assert sms_segments(body) == 2 and len(body) == 306  # the update's SMS is the longest: it says "mise à jour"
    errors = errors_of(title={"fr": title, "en": "Outage"}, message={"fr": "a" * (room + 1), "en": "Works"})
    assert errors == {"message.fr": f"at most {room} characters with this title and expected end, so that the SMS "
                                    f"keeps to 2 segments (this one has {room + 1})"}
    without_end = parse(title={"fr": title, "en": "Outage"}, message={"fr": "a" * (room + 1), "en": "Works"},
                        expected_end=None)  # no end to announce: more room for the message
    assert without_end.message("fr") == "a" * (room + 1)


def test_texts_are_one_line() -> None:
    incident = parse(title={"fr": "Coupure\nDouala", "en": "Outage  Douala"})
    assert (incident.title("fr"), incident.title("en")) == ("Coupure Douala", "Outage Douala")


def test_an_update_is_laid_over_the_definition_and_checked_whole() -> None:
    incident = parse()
    changed = merge(incident, {"title": {"en": "Outage Bonaberi"}, "broadcast": False})
    again = parse_definition(changed, KNOWN, DOUALA, NOW, ("fr", "en"))
    assert (again.title("fr"), again.title("en"), again.broadcast) == ("Coupure Douala Nord", "Outage Bonaberi", False)
    with pytest.raises(DefinitionError) as refused:
        parse_definition(merge(incident, {"regions": []}), KNOWN, DOUALA, NOW, ("fr", "en"))
    assert set(refused.value.errors) == {"regions"}
    with pytest.raises(DefinitionError):
        merge(incident, ["not", "an", "object"])
