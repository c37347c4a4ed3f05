"""The screens every flow starts from or ends on: the main menu (one entry per flow, in
ussd.flows.FLOWS order), the offer to resume a dropped session, the goodbye after three
invalid inputs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis
from flask import current_app
from transitions import EventData

from state import switches
from state.sessions import Session
from ussd.catalogue import text
from ussd.screens import Context, Option, ScreenSpec, visit_of

if TYPE_CHECKING:
    from utility.services import Services


def notice_line(session: Session, services: Services) -> str:
    """The main menu's first line while an incident touches the caller's regions: the
    newest one's title. The regions came with the dial's own round trip and the incidents
    from this process's copy, so the notice costs the hop nothing."""
    if session.state != "main" or not session.regions:
        return ""
    try:
        found = services.incidents.active_for_regions(session.regions.split(","))
    except redis.RedisError:
        return ""  # the menu still works without its notice
    return text(session.lang, "main.notice", title=found[0].title(session.lang)) if found else ""


def _resume(session: Session, ctx: Context) -> str:
    """What was under way when the customer dropped, so "continue" means something."""
    point = session.data["resume"]
    state, data = point["state"], point["data"]
    flow = data.get("flow") or ("units" if state.startswith("buy") else "bill" if state.startswith("bill") else "")
    number = data.get("meter") if flow == "units" else data.get("account_no")
    if not flow:
        return text(session.lang, "resume.title")
    if not number:
        return text(session.lang, f"resume.{flow}")
    return text(session.lang, f"resume.{flow}_for", number=number)


# The main-menu entries an operator can close (POST /admin/services/<name>): entry trigger -> service
CLOSABLE = {"buy": "buy", "pay_bill": "bill", "campaigns": "campaigns"}


def closed_by_operator(event: EventData) -> bool:
    """Whether the operator closed the service this entry opens; its words are kept for the
    screen. From the process's copy of the switches (at most a second old): no round trip."""
    visit = visit_of(event)
    switch = switches.services(current_app)[CLOSABLE[event.event.name]]
    if switch.enabled:
        return False
    lang = visit.session.lang
    visit.session.data["closed_text"] = switch.text(lang) or text(lang, "closed.default")
    return True


def _closed(session: Session, ctx: Context) -> str:
    return str(session.data["closed_text"])


def _too_many_invalid(session: Session, ctx: Context) -> str:
    if not ctx.service_code.startswith("*"):  # a gateway's service id (Hubtel app): no code to dial
        return text(session.lang, "end.invalid_no_code")
    return text(session.lang, "end.invalid", code=ctx.service_code)


def screens(entries: tuple[Option, ...]) -> dict[str, ScreenSpec]:
    return {
        "main": ScreenSpec("menu", title="main.title", options=entries, resumable=False),
        "resume": ScreenSpec("menu", body=_resume, resumable=False, options=(
            Option("resume.continue", "resume"), Option("resume.restart", "restart"),
        )),
        "too_many_invalid": ScreenSpec("end", body=_too_many_invalid, resumable=False),
        "service_closed": ScreenSpec("end", body=_closed, resumable=False),
    }


# Before every flow's own: an operator's switch overrides whatever the flow would do.
EDGES: list[dict[str, Any]] = [
    {"trigger": trigger, "source": "main", "dest": "service_closed", "conditions": closed_by_operator}
    for trigger in CLOSABLE
]


WORST: dict[str, Any] = {
    "resume": {"state": "confirm", "history": [], "data": {"flow": "units", "meter": "0123456789012"}},
    "closed_text": "C" * switches.MESSAGE_MAX,  # the longest message the admin API takes
}
VARIANTS: list[dict[str, Any]] = [
    {"resume": {"state": "bill_account_input", "history": [], "data": {}}},
    {"resume": {"state": "confirm", "history": [], "data": {"flow": "bill", "account_no": "ABCDEFGHIJKLMNOPQRS9"}}},
    {"resume": {"state": "account_menu", "history": [], "data": {}}},
]
