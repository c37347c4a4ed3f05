"""What an incident is: its definition (checked field by field) and its record. Pure data:
no Redis here (the regions the customer base knows are handed in).

A definition, as an operator posts it (POST /admin/incidents, `guichet incident create`)::

    {"title": {"fr": "Coupure Douala Nord", "en": "Outage Douala North"},
     "message": {"fr": "Travaux sur la ligne de Bonaberi.", "en": "Works on the Bonaberi line."},
     "regions": ["Littoral"], "services": ["supply"],
     "expected_end": "2026-05-12T18:00", "waive_penalties": true, "broadcast": true}

`parse_definition` checks every field and names each bad one (DefinitionError.errors,
``{"title.fr": "at most 40 characters..."}``), so an operator fixes them all in one go. An
update posts only the fields it changes: `merge` lays them over the definition, and the
whole is checked again.

The texts are checked as customers will read them: GSM-7 (one other character would switch
the SMS to UCS-2 and halve it), the title one line of at most TITLE_WIDTH (the USSD main
menu's notice), and the message short enough that the broadcast SMS, composed with this
title, this expected end and the longest utility name, keeps to BROADCAST_SEGMENTS.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sms.gsm import gsm7_septets, sms_segments
from utility.customers import region_key
from utility.incidents import texts

FIELDS = ("title", "message", "regions", "services", "expected_end", "waive_penalties", "broadcast")
SERVICES = ("payments", "vending", "billing", "supply")  # what an incident may stop
TITLE_WIDTH = 40  # septets: one line of a USSD screen, the notice on the main menu
BROADCAST_SEGMENTS = 2  # what one broadcast SMS may cost per recipient
STATUSES = ("active", "resolved")


class DefinitionError(ValueError):
    """An incident definition with bad fields: ``errors`` maps each field's path to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {why}" for path, why in errors.items()))


@dataclass(frozen=True)
class Incident:
    id: str  # "INC-4K7Q"
    titles: tuple[tuple[str, str], ...]  # (language, title): tuples, so the incident stays immutable
    messages: tuple[tuple[str, str], ...]  # (language, message)
    regions: tuple[str, ...]  # as the customer base writes them
    services: tuple[str, ...]
    expected_end: datetime.datetime | None = None  # aware
    waive_penalties: bool = False
    broadcast: bool = False
    created_at: datetime.datetime | None = None  # aware (UTC)
    updated_at: datetime.datetime | None = None
    resolved_at: datetime.datetime | None = None
    updates: int = 0  # how many updates it had: the next one's event is "update-<updates + 1>"

    @property
    def status(self) -> str:
        return "resolved" if self.resolved_at is not None else "active"

    @property
    def active(self) -> bool:
        return self.resolved_at is None

    def title(self, lang: str) -> str:
        return _in(self.titles, lang)

    def message(self, lang: str) -> str:
        return _in(self.messages, lang)

    def concerns(self, regions: set[str]) -> bool:
        """Whether any of ``regions`` (region keys: utility.customers.region_key) is the incident's."""
        return any(region_key(region) in regions for region in self.regions)

    def covers(self, region: str, at: datetime.datetime) -> bool:
        """Whether the incident was under way in ``region`` at ``at`` (its window: created to
        resolved, or on)."""
        if self.created_at is None or at < self.created_at:
            return False
        if self.resolved_at is not None and at > self.resolved_at:
            return False
        return region_key(region) in {region_key(r) for r in self.regions}

    def definition(self) -> dict[str, Any]:
        """The definition as posted (what parse_definition reads back)."""
        return {
            "title": dict(self.titles),
            "message": dict(self.messages),
            "regions": list(self.regions),
            "services": list(self.services),
            "expected_end": self.expected_end.isoformat() if self.expected_end else None,
            "waive_penalties": self.waive_penalties,
            "broadcast": self.broadcast,
        }

    def to_json(self) -> dict[str, Any]:
        """What the admin API shows: the definition and the record."""
        def moment(at: datetime.datetime | None) -> str | None:
            return at.isoformat(timespec="seconds") if at else None

        return {"id": self.id, **self.definition(), "status": self.status, "updates": self.updates,
                "created_at": moment(self.created_at), "updated_at": moment(self.updated_at),
                "resolved_at": moment(self.resolved_at)}


def _in(pairs: tuple[tuple[str, str], ...], lang: str) -> str:
    found = dict(pairs)
    return found.get(lang) or next(iter(found.values()), "")


# -- parsing a definition ---------------------------------------------------------------------
def merge(current: Incident, changes: object) -> dict[str, Any]:
    """The definition an update leaves: ``changes`` (the fields posted) over ``current``'s.
    A title or message may change in one language only (``{"title": {"en": "..."}}``)."""
    merged = current.definition()
    if not isinstance(changes, Mapping):
        raise DefinitionError({"definition": "must be a JSON object with some of the fields " + ", ".join(FIELDS)})
    for name, value in changes.items():
        if name in ("title", "message") and isinstance(value, Mapping):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged


def parse_definition(
    data: object,
    known_regions: Mapping[str, str],
    tz: datetime.tzinfo,
    now: datetime.datetime,
    languages: tuple[str, ...],
    incident_id: str = "",
) -> Incident:
    """The incident ``data`` defines, or DefinitionError naming every bad field.

    ``known_regions``: region key -> name, the regions of the customer base (a region it does
    not know would reach nobody). ``tz``: the zone of times written without an offset (the
    utility's); ``now``: an expected end must come after it. ``languages``: those the SMS
    texts exist in; title and message are needed in each."""
    if not isinstance(data, Mapping):
        raise DefinitionError({"definition": "must be a JSON object with the fields " + ", ".join(FIELDS)})
    errors: dict[str, str] = {}
    for name in data:
        if name not in FIELDS:
            errors[str(name)] = f"unknown field (the fields are {', '.join(FIELDS)})"
    titles = _titles(data.get("title"), languages, errors)
    expected_end = _expected_end(data.get("expected_end"), tz, now, errors)
    messages = _messages(data.get("message"), languages, titles, expected_end, tz, errors)
    regions = _regions(data.get("regions"), known_regions, errors)
    services = _services(data.get("services"), errors)
    waive = _flag(data.get("waive_penalties"), "waive_penalties", errors)
    broadcast = _flag(data.get("broadcast"), "broadcast", errors)
    if errors:
        raise DefinitionError(errors)
    assert titles is not None and messages is not None  # each set unless an error was noted
    return Incident(incident_id, titles, messages, regions, services, expected_end, waive, broadcast)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _not_gsm7(text: str) -> str:
    odd = "".join(sorted({char for char in text if gsm7_septets(char) is None}))
    return f"{odd!r} cannot be sent by SMS or USSD (GSM-7): write it without (c for ç, e for ê, ' for ’)"


def _texts(value: object, field: str, what: str, languages: tuple[str, ...],
           errors: dict[str, str]) -> dict[str, str] | None:
    """The per-language texts of ``field``, one line each and GSM-7; None when one is bad."""
    example = ", ".join(f'"{lang}": "..."' for lang in languages)
    if not isinstance(value, Mapping):
        errors[field] = f"required: {what} in each language, like {{{example}}}"
        return None
    found: dict[str, str] = {}
    for lang in value:
        if lang not in languages:
            errors[f"{field}.{lang}"] = f"no customer texts in this language (there are {', '.join(languages)})"
    for lang in languages:
        path, text = f"{field}.{lang}", value.get(lang)
        if not isinstance(text, str) or not text.strip():
            errors[path] = f"required: {what} customers read in this language"
            continue
        text = _one_line(text)
        if gsm7_septets(text) is None:
            errors[path] = _not_gsm7(text)
        else:
            found[lang] = text
    return found if len(found) == len(languages) else None


def _titles(value: object, languages: tuple[str, ...], errors: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    found = _texts(value, "title", "the title", languages, errors)
    if found is None:
        return None
    for lang, title in found.items():
        septets = gsm7_septets(title) or 0
        if septets > TITLE_WIDTH:
            errors[f"title.{lang}"] = (f"at most {TITLE_WIDTH} characters: it is the one-line notice of the USSD "
                                       f"menu (this one has {septets})")
    return tuple(found.items()) if not any(f"title.{lang}" in errors for lang in found) else None


def _messages(
    value: object, languages: tuple[str, ...], titles: tuple[tuple[str, str], ...] | None,
    expected_end: datetime.datetime | None, tz: datetime.tzinfo, errors: dict[str, str],
) -> tuple[tuple[str, str], ...] | None:
    found = _texts(value, "message", "the message", languages, errors)
    if found is None:
        return None
    if titles is None:
        return tuple(found.items())  # the title is wrong already: the room left is not known yet
    title_of = dict(titles)
    for lang, message in found.items():
        # The longest SMS the message goes out in, with the longest utility name the
        # configuration allows: a later change of GUICHET_UTILITY_NAME cannot break it.
        longest = max((texts.broadcast_body(lang, event, texts.LONGEST_UTILITY, title_of[lang], message,
                                            expected_end, tz) for event in texts.EVENTS_WITH_MESSAGE),
                      key=lambda body: gsm7_septets(body) or 0)
        if sms_segments(longest) > BROADCAST_SEGMENTS:
            septets = gsm7_septets(message) or 0
            room = septets - ((gsm7_septets(longest) or 0) - texts.BROADCAST_SEPTETS)
            errors[f"message.{lang}"] = (
                f"at most {max(room, 0)} characters with this title and expected end, so that the SMS keeps to "
                f"{BROADCAST_SEGMENTS} segments (this one has {septets})")
    return tuple(found.items())


def _expected_end(value: object, tz: datetime.tzinfo, now: datetime.datetime,
                  errors: dict[str, str]) -> datetime.datetime | None:
    if value is None:
        return None
    example = "like 2026-05-12T18:00 (the utility's time) or 2026-05-12T18:00+01:00, or null"
    if not isinstance(value, str):
        errors["expected_end"] = f"must be a date and time, {example}"
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        errors["expected_end"] = f"{value!r} is not a date and time {example}"
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    if moment <= now:
        errors["expected_end"] = "must be in the future (leave it out when the end is not known)"
        return None
    return moment


def _regions(value: object, known: Mapping[str, str], errors: dict[str, str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item.strip() for item in value):
        errors["regions"] = 'required: a list of the regions concerned, like ["Littoral"]'
        return ()
    found: dict[str, str] = {}
    unknown: list[str] = []
    for item in value:
        key = region_key(item)
        if key in known:
            found[key] = known[key]  # as the customer base writes it
        else:
            unknown.append(item.strip()[:40])
    if unknown:
        listed = ", ".join(sorted(known.values())[:20]) or "none yet: import the customer file first"
        errors["regions"] = f"not a region of the customer base: {', '.join(unknown)} (the regions: {listed})"
    return tuple(found.values())


def _services(value: object, errors: dict[str, str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        errors["services"] = f"required: a list of what is affected, among {', '.join(SERVICES)}"
        return ()
    wrong = [item for item in value if item not in SERVICES]
    if wrong:
        errors["services"] = f"{', '.join(repr(item[:20]) for item in wrong)}: the services are {', '.join(SERVICES)}"
        return ()
    return tuple(dict.fromkeys(value))


def _flag(value: object, path: str, errors: dict[str, str]) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        errors[path] = "must be true or false"
        return False
    return value


def stored(incident_id: str, fields: Mapping[str, str]) -> Incident:
    """An incident as Redis keeps it (keys.incident): its definition read back as it was
    accepted, without checking it again by rules that may have changed since."""
    data = json.loads(fields["definition"])

    def moment(name: str) -> datetime.datetime | None:
        value = fields.get(name)
        return datetime.datetime.fromisoformat(value) if value else None

    end = data.get("expected_end")
    return Incident(
        id=incident_id,
        titles=tuple(data["title"].items()),
        messages=tuple(data["message"].items()),
        regions=tuple(data["regions"]),
        services=tuple(data["services"]),
        expected_end=datetime.datetime.fromisoformat(end) if end else None,
        waive_penalties=bool(data.get("waive_penalties")),
        broadcast=bool(data.get("broadcast")),
        created_at=moment("created_at"),
        updated_at=moment("updated_at"),
        resolved_at=moment("resolved_at"),
        updates=int(fields.get("updates") or 0),
    )
