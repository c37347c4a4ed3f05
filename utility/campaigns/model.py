"""What a campaign is: its definition (checked field by field), its state, a registration
and the verdict a customer gets. Pure data: no Redis here.

A definition, as an operator posts it (POST /admin/campaigns, `guichet campaign create`)::

    {"code": "GRATUIT", "name": {"fr": "Electricite offerte", "en": "Free electricity"},
     "starts_at": "2026-04-14T08:00", "ends_at": "2026-04-30T20:00",
     "benefit": {"kind": "kwh", "amount": 50},
     "eligibility": {"tariffs": ["social", "prepaid"], "regions": ["Estuaire"]},
     "quota": 250000}

`parse_definition` checks every field and names each bad one (DefinitionError.errors,
``{"benefit.amount": "must be more than 0"}``), so an operator fixes them all in one go.
"""
from __future__ import annotations

import datetime
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sms.gsm import gsm7_septets

# -- the rules ---------------------------------------------------------------------------------
# Customers type the code by SMS ("GRATUIT 01400000012"): letters and digits, a letter
# first so that it never reads as a number, short enough to type.
CODE = re.compile(r"[A-Z][A-Z0-9]{2,11}")
# Words the SMS channel answers itself, in French and English, and the opt-out/opt-in words
# carriers and Twilio act on: a campaign called STOP would unsubscribe its registrants.
RESERVED_KEYWORDS = frozenset({
    "STOP", "START", "ARRET", "AIDE", "HELP", "INFO", "SOLDE", "BAL", "BALANCE", "JETON", "TOKEN", "CODE",
    "STOPALL", "UNSTOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "YES", "OUI", "NON", "MENU",
})
KINDS = ("kwh", "m3", "xaf")  # a token of units for a prepaid meter, or money (a token's worth, or a bill credit)
UNIT_KINDS = ("kwh", "m3")
UNIT_OF = {"kwh": "kWh", "m3": "m3"}
UTILITY_OF = {"kwh": "electricity", "m3": "water"}  # what the vending backend calls a meter's utility
POSTPAID = "postpaid"
NAME_WIDTH = 24  # septets: one line of a USSD menu ("1. " + the name), and the verdicts that quote it
MAX_UNITS = Decimal("99999.9")  # what a token SMS has room for
MAX_XAF = 10_000_000
MAX_QUOTA = 100_000_000
TARIFF = re.compile(r"[a-z0-9_-]{1,20}")  # as in the customer file (utility.customer_csv)
REGION_WIDTH = 40  # as in the customer file
FIELDS = ("code", "name", "starts_at", "ends_at", "benefit", "eligibility", "quota")

# The operator's switch, and what the clock adds to it (Campaign.status).
STATES = ("active", "paused", "closed")
STATUSES = ("active", "paused", "closed", "not_open", "ended")

# Why a registration is refused: one of these, each with its own words (texts/*.toml).
REASONS = ("unknown_number", "ambiguous", "tariff", "region", "not_listed", "quota", "not_open", "closed",
           "paused", "already")
CHANNELS = ("ussd", "sms")


class DefinitionError(ValueError):
    """A campaign definition with bad fields: ``errors`` maps each field's path to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {why}" for path, why in errors.items()))


# -- the campaign ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Benefit:
    kind: str  # kwh | m3 | xaf
    amount: Decimal  # units with one decimal (kwh, m3) or whole XAF

    @property
    def units(self) -> bool:
        """A quantity of units (a token only a prepaid meter can take), not money."""
        return self.kind in UNIT_KINDS

    def to_json(self) -> dict[str, Any]:
        whole = self.amount == self.amount.to_integral_value()
        return {"kind": self.kind, "amount": int(self.amount) if whole else float(self.amount)}


@dataclass(frozen=True)
class Campaign:
    code: str
    names: tuple[tuple[str, str], ...]  # (language, name): a tuple, so the campaign stays immutable
    starts_at: datetime.datetime  # aware
    ends_at: datetime.datetime  # aware, after starts_at
    benefit: Benefit
    tariffs: tuple[str, ...] = ()  # () : every tariff
    regions: tuple[str, ...] = ()  # () : every region
    quota: int | None = None  # None: as many as register
    state: str = "active"  # the operator's: active | paused | closed
    created_at: datetime.datetime | None = None
    allowlist: int = 0  # numbers on its allow-list; 0: no list

    def name(self, lang: str) -> str:
        names = dict(self.names)
        return names.get(lang) or next(iter(names.values()), self.code)

    def status(self, now: datetime.datetime) -> str:
        """active (customers may register now), paused, closed (by the operator), not_open
        (not yet), or ended (its time is over)."""
        if self.state == "closed":
            return "closed"
        if now >= self.ends_at:
            return "ended"
        if self.state == "paused":
            return "paused"
        if now < self.starts_at:
            return "not_open"
        return "active"

    def is_open(self, now: datetime.datetime) -> bool:
        return self.status(now) == "active"

    def refusal_by_time(self, now: datetime.datetime) -> str:
        """"not_open", "ended", or "" while the clock lets customers register."""
        if now >= self.ends_at:
            return "ended"
        if now < self.starts_at:
            return "not_open"
        return ""

    def eligibility_refusal(self, tariff: str, region: str, prepaid: bool) -> str:
        """"tariff" or "region" when an account with these cannot have the benefit, else ""."""
        if self.benefit.units and not prepaid:
            return "tariff"  # units are a token: an account without a meter cannot key it in
        if self.tariffs and tariff not in self.tariffs:
            return "tariff"
        if self.regions and fold(region) not in {fold(r) for r in self.regions}:
            return "region"
        return ""

    def definition(self) -> dict[str, Any]:
        """The definition as posted (what parse_definition reads back)."""
        eligibility: dict[str, list[str]] = {}
        if self.tariffs:
            eligibility["tariffs"] = list(self.tariffs)
        if self.regions:
            eligibility["regions"] = list(self.regions)
        return {
            "code": self.code,
            "name": dict(self.names),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "benefit": self.benefit.to_json(),
            "eligibility": eligibility,
            "quota": self.quota,
        }

    def to_json(self, now: datetime.datetime | None = None) -> dict[str, Any]:
        """What the admin API shows: the definition, the operator's state and, given the
        time, the status customers meet."""
        shown = {**self.definition(), "state": self.state, "allowlist": self.allowlist,
                 "created_at": self.created_at.isoformat() if self.created_at else None}
        if now is not None:
            shown["status"] = self.status(now)
        return shown


def fold(text: str) -> str:
    """A region as compared: case, accents and surrounding spaces ignored
    ("Extrême-Nord" is the customer file's "Extreme-Nord")."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


# -- parsing a definition ---------------------------------------------------------------------
def parse_definition(
    data: object, tz: datetime.tzinfo = datetime.UTC, languages: tuple[str, ...] = ("fr", "en")
) -> Campaign:
    """The campaign ``data`` defines, or DefinitionError naming every bad field.

    ``tz``: the zone of times written without an offset (the utility's). ``languages``:
    those the customer texts exist in; the campaign needs a name in each."""
    if not isinstance(data, Mapping):
        raise DefinitionError({"definition": "must be a JSON object with the fields " + ", ".join(FIELDS)})
    errors: dict[str, str] = {}
    for name in data:
        if name not in FIELDS:
            errors[str(name)] = f"unknown field (the fields are {', '.join(FIELDS)})"
    code = _code(data.get("code"), errors)
    names = _names(data.get("name"), languages, errors)
    starts_at = _moment(data.get("starts_at"), "starts_at", tz, errors)
    ends_at = _moment(data.get("ends_at"), "ends_at", tz, errors)
    if starts_at and ends_at and ends_at <= starts_at:
        errors["ends_at"] = "must be after starts_at"
    benefit = _benefit(data.get("benefit"), errors)
    tariffs, regions = _eligibility(data.get("eligibility"), benefit, errors)
    quota = _quota(data.get("quota"), errors)
    if errors:
        raise DefinitionError(errors)
    assert code and names and starts_at and ends_at and benefit  # each set unless an error was noted
    return Campaign(code, names, starts_at, ends_at, benefit, tariffs, regions, quota)


def _code(value: object, errors: dict[str, str]) -> str | None:
    rule = "3 to 12 capital letters or digits, a letter first, like GRATUIT"
    if not isinstance(value, str) or not CODE.fullmatch(value):
        errors["code"] = f"required: {rule}" if value is None else f"must be {rule}"
        return None
    if value in RESERVED_KEYWORDS:
        errors["code"] = f"{value} is a word the SMS channel answers itself: choose another code"
        return None
    return value


def _names(value: object, languages: tuple[str, ...], errors: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    example = ", ".join(f'"{lang}": "..."' for lang in languages)
    if not isinstance(value, Mapping):
        errors["name"] = f"required: the campaign's name in each language, like {{{example}}}"
        return None
    names: list[tuple[str, str]] = []
    for lang in value:
        if lang not in languages:
            errors[f"name.{lang}"] = f"no customer texts in this language (there are {', '.join(languages)})"
    for lang in languages:
        path, name = f"name.{lang}", value.get(lang)
        if not isinstance(name, str) or not name.strip():
            errors[path] = "required: the name customers read in this language"
            continue
        name = " ".join(name.split())  # one line: no newline can break a screen
        septets = gsm7_septets(name)
        if septets is None:
            odd = "".join(sorted({char for char in name if gsm7_septets(char) is None}))
            errors[path] = f"{odd!r} cannot be sent by SMS or USSD (GSM-7): write it without (c for ç, e for ê)"
        elif septets > NAME_WIDTH:
            errors[path] = f"at most {NAME_WIDTH} characters, to fit a screen line (this one has {septets})"
        else:
            names.append((lang, name))
    return tuple(names) if len(names) == len(languages) else None


def _moment(value: object, path: str, tz: datetime.tzinfo, errors: dict[str, str]) -> datetime.datetime | None:
    example = "like 2026-04-14T08:00 (the utility's time) or 2026-04-14T08:00+01:00"
    if not isinstance(value, str):
        errors[path] = f"required: a date and time, {example}"
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        errors[path] = f"{value!r} is not a date and time {example}"
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _benefit(value: object, errors: dict[str, str]) -> Benefit | None:
    if not isinstance(value, Mapping):
        errors["benefit"] = 'required: what each registrant gets, like {"kind": "kwh", "amount": 50}'
        return None
    for name in value:
        if name not in ("kind", "amount"):
            errors[f"benefit.{name}"] = "unknown field (the fields are kind, amount)"
    kind = value.get("kind")
    if kind not in KINDS:
        errors["benefit.kind"] = f"must be one of {', '.join(KINDS)}"
        kind = None
    amount = _number(value.get("amount"))
    if amount is None:
        errors["benefit.amount"] = "required: a number, like 50"
        return None
    if amount <= 0:
        errors["benefit.amount"] = "must be more than 0"
    elif kind == "xaf" and (amount != amount.to_integral_value() or amount > MAX_XAF):
        errors["benefit.amount"] = f"must be a whole number of XAF, at most {MAX_XAF:,}"
    elif kind in UNIT_KINDS and (amount != amount.quantize(Decimal("0.1")) or amount > MAX_UNITS):
        errors["benefit.amount"] = f"must be at most {MAX_UNITS} with one decimal at most (a token's resolution)"
    if kind is None or "benefit.amount" in errors:
        return None
    return Benefit(str(kind), amount.quantize(Decimal(1)) if kind == "xaf" else amount.quantize(Decimal("0.1")))


def _eligibility(value: object, benefit: Benefit | None, errors: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        errors["eligibility"] = 'must be an object like {"tariffs": ["social"], "regions": ["Estuaire"]}'
        return (), ()
    for name in value:
        if name not in ("tariffs", "regions"):
            errors[f"eligibility.{name}"] = "unknown field (the fields are tariffs, regions)"
    tariffs = _strings(value.get("tariffs"), "eligibility.tariffs", errors)
    for tariff in tariffs:
        if not TARIFF.fullmatch(tariff):
            errors["eligibility.tariffs"] = f"{tariff!r} is not a tariff code (1 to 20 of a-z, 0-9, _ and -)"
    if benefit is not None and benefit.units and POSTPAID in tariffs:
        errors["eligibility.tariffs"] = (f"a {benefit.kind} benefit is a token for a prepaid meter: "
                                         f"{POSTPAID} accounts cannot receive it (give xaf, or drop {POSTPAID})")
    regions = _strings(value.get("regions"), "eligibility.regions", errors)
    for region in regions:
        if len(region) > REGION_WIDTH:
            errors["eligibility.regions"] = f"{region[:20]!r}... is longer than {REGION_WIDTH} characters"
    return tariffs, regions


def _strings(value: object, path: str, errors: dict[str, str]) -> tuple[str, ...]:
    """A list of non-empty strings, each once, in the order given; () when absent or empty."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        errors[path] = "must be a list of non-empty strings (leave it out for all)"
        return ()
    return tuple(dict.fromkeys(item.strip() for item in value))


def _quota(value: object, errors: dict[str, str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUOTA:
        errors["quota"] = f"must be a whole number from 1 to {MAX_QUOTA:,}, or left out for no limit"
        return None
    return value


def stored(fields: Mapping[str, str]) -> Campaign:
    """A campaign as Redis keeps it (keys.campaign): its definition read back as it was
    accepted, without checking it again by rules that may have changed since."""
    data = json.loads(fields["definition"])
    eligibility = data.get("eligibility") or {}
    benefit = data["benefit"]
    created = fields.get("created_at")
    return Campaign(
        code=data["code"],
        names=tuple((lang, name) for lang, name in data["name"].items()),
        starts_at=datetime.datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.datetime.fromisoformat(data["ends_at"]),
        benefit=Benefit(benefit["kind"], Decimal(str(benefit["amount"]))),
        tariffs=tuple(eligibility.get("tariffs", ())),
        regions=tuple(eligibility.get("regions", ())),
        quota=data.get("quota"),
        state=fields.get("state") or "active",
        created_at=datetime.datetime.fromisoformat(created) if created else None,
        allowlist=int(fields.get("allowlist") or 0),
    )


# -- registrations and verdicts ---------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    """One accepted registration, as kept (keys.campaign_records) and exported."""

    reference: str
    account: str
    meter: str  # "" for an account without a meter (a bill credit)
    phone: str  # who registered: the SMS go there
    channel: str  # ussd | sms
    lang: str
    at: datetime.datetime  # UTC
    state: str = "pending"  # pending | fulfilled | failed (keys.campaign_states)
    reason: str = ""  # why it failed

    def to_json(self) -> str:
        return json.dumps({"reference": self.reference, "account": self.account, "meter": self.meter,
                           "phone": self.phone, "channel": self.channel, "lang": self.lang,
                           "at": self.at.isoformat(timespec="seconds")}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str, state: str | None = None) -> Registration:
        record = json.loads(raw)
        state, _, reason = (state or "pending").partition(":")
        return cls(record["reference"], record["account"], record["meter"], record["phone"], record["channel"],
                   record["lang"], datetime.datetime.fromisoformat(record["at"]), state, reason)


@dataclass(frozen=True)
class Verdict:
    """What a registration attempt came to, with everything its text says (texts.verdict_text).
    Times are in the utility's zone."""

    code: str  # the campaign's
    reason: str = ""  # "" when accepted, else one of REASONS
    reference: str = ""  # accepted: the new registration's; already: the first one's
    registered_at: datetime.datetime | None = None  # accepted: now; already: the first registration's
    number: str = ""  # what the customer typed (unknown_number, ambiguous)
    account: str = ""  # the account it found
    meter: str = ""  # its meter, "" for an account without one
    tariff: str = ""  # tariff: the account's
    region: str = ""  # region: the account's
    benefit: Benefit | None = None  # accepted: what comes
    within_hours: int = 0  # accepted: when it comes at the latest
    opens_at: datetime.datetime | None = None  # not_open
    ended_at: datetime.datetime | None = None  # closed because its time is over (None: closed by the operator)

    @property
    def accepted(self) -> bool:
        return not self.reason

    @property
    def outcome(self) -> str:
        return "accepted" if self.accepted else "refused"
