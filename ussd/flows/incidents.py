"""Outage news: the incidents under way in the caller's region, or in a region they choose,
each with its message and expected end; and the notices of a region by SMS.

dial -> "Infos coupures" (offered while an incident is under way anywhere) -> the incidents
of the caller's regions (none: say so), or, with no account, the regions -> one region's
incidents (or none), with "get its notices by SMS" -> an incident: its title, message and
expected end, a page at a time (98 / 0).

The incidents come from the service's process copy (utility.incidents: no round trip); what
the screens show is kept in the session when it is read, so a screen reads the same from
hop to hop. None of these screens is resumable: a dropped session has nothing under way, and
the incidents it showed may be over by the next dial.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from flask import current_app
from transitions import EventData

from sms.gsm import clip, gsm7_septets, to_gsm7
from sms.receipts import MESSAGES, UTILITY_WIDTH
from state.sessions import Session
from ussd.catalogue import text
from ussd.screens import Context, Option, ScreenSpec, visit_of
from utility.customers import region_key
from utility.incidents.model import TITLE_WIDTH, Incident
from utility.incidents.service import UnknownRegion
from utility.incidents.texts import BROADCAST_SEPTETS, EVENTS_WITH_MESSAGE, LANGUAGES, broadcast_body

if TYPE_CHECKING:
    from utility.services import Services

REGION_WIDTH = 40  # septets of a region's name on a screen (as the customer base writes it)
# The list each screen of incidents shows (session.data): the caller's regions', a chosen region's.
LISTS = {"incidents": "incidents_mine", "incidents_region": "incidents_there"}


def _any_active(session: Session, services: Services) -> bool:
    return bool(services.incidents.active())  # this process's copy: no round trip


ENTRY = Option("main.incidents", "incidents", when=_any_active)


# -- what the screens say -------------------------------------------------------------------
def _incident_label(lang: str, item: dict[str, Any]) -> str:
    return clip(to_gsm7(item["title"]), TITLE_WIDTH)


def _region_label(lang: str, name: Any) -> str:  # the regions are kept as their names
    return _region(name)


def _region(name: str) -> str:
    return clip(to_gsm7(name), REGION_WIDTH)


def _none_there(session: Session, ctx: Context) -> str:
    return text(session.lang, "incidents.none_there", region=_region(session.data["incidents_region"]))


def _subscription(session: Session, ctx: Context) -> list[str]:
    data, lang = session.data, session.lang
    outcome = data["incident_subscription"]
    if outcome == "unknown":
        return [text(lang, "incidents.unknown_region")]
    lines = [text(lang, f"incidents.{outcome}", region=_region(data["incidents_region"]))]
    code = data["incidents_short_code"]
    if data.get("incidents_stopped"):  # they texted STOP: nothing comes until START
        lines.append(text(lang, "incidents.stopped", code=code) if code else text(lang, "incidents.stopped_no_code"))
    elif code:
        lines.append(text(lang, "incidents.stop", code=code))
    return lines


def incident_text(lang: str, incident: Incident, tz: datetime.tzinfo) -> str:
    """What the incident's screen says in ``lang``: its title, its message and when it is
    expected to end (or that it is over), a line each."""
    if not incident.active:
        end = text(lang, "incidents.resolved")
    elif incident.expected_end is None:
        end = text(lang, "incidents.end_unknown")
    else:
        local = incident.expected_end.astimezone(tz)  # in the utility's time, as the SMS say it
        end = text(lang, "incidents.end", date=local.strftime(MESSAGES.text(lang, "number.date")),
                   time=local.strftime(MESSAGES.text(lang, "number.time")))
    return to_gsm7("\n".join([incident.title(lang), incident.message(lang), end]))


# -- steps ----------------------------------------------------------------------------------
def _items(incidents: list[Incident], lang: str) -> list[dict[str, str]]:
    """What the session keeps of each incident listed: its id and its title in the caller's
    language (the message is read from the process copy when the incident is picked)."""
    return [{"id": incident.id, "title": incident.title(lang)} for incident in incidents]


def load_mine(event: EventData) -> None:
    visit = visit_of(event)
    session = visit.session
    if session.regions:  # the dial read them with the session: no round trip
        found = visit.services.incidents.active_for_regions(session.regions.split(","))
        session.data["incidents_mine"] = _items(found, session.lang)


def has_region(event: EventData) -> bool:
    return bool(visit_of(event).session.regions)


def none_mine(event: EventData) -> bool:
    return not visit_of(event).session.data.get("incidents_mine")


def load_regions(event: EventData) -> None:
    visit = visit_of(event)
    visit.session.data["incidents_regions"] = visit.services.incidents.regions()  # one read, names sorted


def take_region(event: EventData) -> None:
    visit = visit_of(event)
    data = visit.session.data
    region = data["incidents_regions"][event.kwargs["incidents_region_index"]]
    data["incidents_region"] = region
    data["incidents_there"] = _items(visit.services.incidents.active_for_regions([region]), visit.session.lang)


def none_there(event: EventData) -> bool:
    return not visit_of(event).session.data["incidents_there"]


def take_incident(event: EventData) -> None:
    """Keep the picked incident's text in the session: its pages stay the same from hop to hop."""
    visit = visit_of(event)
    session = visit.session
    item = session.data[LISTS[visit.state]][event.kwargs["incident_index"]]
    incident = visit.services.incidents.lookup(item["id"])  # the process copy
    if incident is None:  # gone from the store since it was listed: say what is known
        session.data["incident_text"] = to_gsm7("\n".join([item["title"], text(session.lang, "incidents.resolved")]))
        return
    session.data["incident_text"] = incident_text(session.lang, incident, visit.services.tz)


def subscribe(event: EventData) -> None:
    """The caller gets the chosen region's notices by SMS, unless they get them already (an
    account there, or subscribed before). The service journals the subscription."""
    visit = visit_of(event)
    session = visit.session
    data, incidents = session.data, visit.services.incidents
    data["incidents_short_code"] = str(current_app.config.get("SMS_SHORT_CODE") or "")
    data["incidents_stopped"] = incidents.notices_off(session.phone)
    region = data["incidents_region"]
    if region_key(region) in incidents.regions_of(session.phone):  # the accounts' regions and subscriptions
        data["incident_subscription"] = "already"
        return
    try:
        data["incidents_region"] = incidents.subscribe(session.phone, region)
    except UnknownRegion:  # the customer base no longer has it
        data["incident_subscription"] = "unknown"
        return
    data["incident_subscription"] = "subscribed"


OTHER_REGION = Option("incidents.other_region", "other_region")
# On a chosen region's screens the region list is the screen before: "another region" goes back to it.
BACK_TO_REGIONS = Option("incidents.other_region", "back")
SUBSCRIBE = Option("incidents.subscribe", "subscribe_region")

SCREENS: dict[str, ScreenSpec] = {
    "incidents": ScreenSpec("list", title="incidents.mine", items="incidents_mine", label=_incident_label,
                            pick="pick_incident", choice="incident_index", extra=(OTHER_REGION,), resumable=False),
    "incidents_none": ScreenSpec("menu", title="incidents.none_mine", options=(OTHER_REGION,), resumable=False),
    "incident_regions": ScreenSpec("list", title="incidents.regions", items="incidents_regions", label=_region_label,
                                   pick="pick_region", choice="incidents_region_index", resumable=False),
    "incidents_region": ScreenSpec("list", title="incidents.there", items="incidents_there", label=_incident_label,
                                   pick="pick_incident", choice="incident_index", extra=(SUBSCRIBE, BACK_TO_REGIONS),
                                   resumable=False),
    "incidents_region_none": ScreenSpec("menu", body=_none_there, options=(SUBSCRIBE, BACK_TO_REGIONS),
                                        resumable=False),
    "incident": ScreenSpec("info", paged="incident_text", resumable=False),
    "incident_subscribed": ScreenSpec("end", body=_subscription, resumable=False),
}

EDGES: list[dict[str, Any]] = [
    {"trigger": "incidents", "source": "main", "dest": "incidents_none", "prepare": load_mine,
     "conditions": [has_region, none_mine]},
    {"trigger": "incidents", "source": "main", "dest": "incidents", "conditions": has_region},
    {"trigger": "incidents", "source": "main", "dest": "incident_regions", "prepare": load_regions},
    {"trigger": "other_region", "source": ["incidents", "incidents_none"], "dest": "incident_regions",
     "prepare": load_regions},
    {"trigger": "pick_region", "source": "incident_regions", "dest": "incidents_region_none", "prepare": take_region,
     "conditions": none_there},
    {"trigger": "pick_region", "source": "incident_regions", "dest": "incidents_region"},
    {"trigger": "pick_incident", "source": ["incidents", "incidents_region"], "dest": "incident",
     "prepare": take_incident},
    {"trigger": "subscribe_region", "source": ["incidents_region", "incidents_region_none"],
     "dest": "incident_subscribed", "prepare": subscribe},
]


def _longest_message() -> str:
    """A message as long as the model accepts (its broadcast within two SMS segments with
    the longest utility name, a one-letter title and no expected end: model._messages), in
    words as long as a title."""
    room = max(BROADCAST_SEPTETS - max(gsm7_septets(broadcast_body(lang, event, "X" * UTILITY_WIDTH, "T", "", None,
                                                                   datetime.UTC)) or 0
                                       for event in EVENTS_WITH_MESSAGE)
               for lang in LANGUAGES)  # the most any language accepts
    return " ".join(["M" * TITLE_WIDTH] * (room // (TITLE_WIDTH + 1) + 1))[:room]


WORST_MESSAGE = _longest_message()
WORST_INCIDENT = {"id": "INC-WXYZ", "title": "T" * TITLE_WIDTH}
WORST_REGION = "R" * REGION_WIDTH
WORST: dict[str, Any] = {
    "incidents_mine": [WORST_INCIDENT] * 20,
    "incidents_there": [WORST_INCIDENT] * 20,
    "incidents_regions": [WORST_REGION] * 40,
    "incidents_region": WORST_REGION,
    "incident_text": "\n".join(["T" * TITLE_WIDTH, WORST_MESSAGE, "E" * 60]),
    "incident_subscription": "already",
    "incidents_short_code": "+23769999999999",  # a long number where there is no short code
}
VARIANTS: list[dict[str, Any]] = [
    {"incident_subscription": "subscribed"},
    {"incident_subscription": "subscribed", "incidents_stopped": True},
    {"incident_subscription": "subscribed", "incidents_stopped": True, "incidents_short_code": ""},
    {"incident_subscription": "unknown"},
    {"incident_text": "\n".join(["T" * TITLE_WIDTH, "M" * len(WORST_MESSAGE), "E" * 60])},  # one word: cut
    {"incident_text": "\n".join(["T" * TITLE_WIDTH, "{" * len(WORST_MESSAGE), "E" * 60])},  # two septets each
    {"incident_text": "\n".join(["T" * TITLE_WIDTH, " ".join(["a"] * (len(WORST_MESSAGE) // 2)), "E" * 60])},
]
