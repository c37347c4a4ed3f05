"""The menu state machine: how a customer's inputs move a session between screens.

The machine (`transitions`) is built once, at import, from the flows' edges
(ussd.flows). A hop borrows a `Visit` that is already attached to it (a small pool:
attaching binds every trigger onto the model, about 0.2 ms with ~30 triggers, so it is
paid once per pooled model, not per hop), points it at the session, restores the state by
assigning it (no callbacks run, so restoring is free of side effects), applies only the
hop's new inputs, and gives the visit back.

`0` (back), `00` (home) and resume are transitions too, generated from the forward edges,
so every move a customer makes is a transition the journal records.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from transitions import EventData, Machine, MachineError

from state.sessions import Session
from ussd.flows import EDGES, RESETTING, SCREENS
from ussd.render import current_page, offered, page_count
from ussd.screens import TOP_LEVEL
from utility.services import Services

log = logging.getLogger(__name__)
# transitions logs every callback at INFO: noise in production, and time on every hop.
logging.getLogger("transitions").setLevel(logging.WARNING)

MAX_INVALID = 3  # consecutive invalid inputs on one screen before the session ends

# Moves every screen has, whatever the flow.
NAVIGATION: list[dict[str, Any]] = [
    {"trigger": "home", "source": "*", "dest": "main"},
    {"trigger": "restart", "source": "resume", "dest": "main"},
    {"trigger": "give_up", "source": "*", "dest": "too_many_invalid"},
]
# Moves after which there is no going back: the history starts again.
CLEARS_HISTORY = frozenset({"home", "restart"}) | RESETTING


def _session(event: EventData) -> Session:
    """The session a move is about: MACHINE's models are all Visits."""
    return cast(Visit, event.model).session


def _edge(event: EventData) -> tuple[str, str]:
    """The (source, dest) of the move under way: a move's callbacks run within its
    transition, and every transition of MACHINE has a destination (none is internal)."""
    transition = event.transition
    assert transition is not None and transition.dest is not None
    return transition.source, transition.dest


def _came_from(state: str) -> Callable[[EventData], bool]:
    def condition(event: EventData) -> bool:
        history = _session(event).history
        return bool(history) and history[-1] == state

    return condition


def _resumes_to(state: str) -> Callable[[EventData], bool]:
    def condition(event: EventData) -> bool:
        return _session(event).data.get("resume", {}).get("state") == state

    return condition


def _generated() -> list[dict[str, Any]]:
    """`back` along every forward edge that does not end the call or start afresh, and
    `resume` to every screen a dropped session can be taken back to."""
    back_edges = {
        (edge["dest"], source)
        for edge in EDGES
        if SCREENS[edge["dest"]].kind != "end" and edge["trigger"] not in RESETTING
        for source in ([edge["source"]] if isinstance(edge["source"], str) else edge["source"])
    }
    back = [
        {"trigger": "back", "source": source, "dest": dest, "conditions": _came_from(dest)}
        for source, dest in sorted(back_edges)
    ]
    resume = [
        {"trigger": "resume", "source": "resume", "dest": state, "conditions": _resumes_to(state)}
        for state, spec in SCREENS.items()
        if spec.resumable
    ]
    return back + resume


TRANSITIONS = EDGES + NAVIGATION + _generated()


class Visit:
    """One hop's view of a session: the model the machine moves. The flows' steps reach
    the session and the domain services through it (``event.model``)."""

    state: str  # written by the machine

    def __init__(self, session: Session, services: Services) -> None:
        self.reset(session, services)

    def reset(self, session: Session, services: Services) -> None:
        """Point this visit at another hop's session, with nothing left of the last one."""
        self.session = session
        self.services = services
        self.moves: list[tuple[str, str, str]] = []  # (trigger, from, to) for the journal
        self.language_changed = False
        self.loaded: set[str] = set()  # what this hop read already (accounts, ...)
        self.refusal: str | None = None  # why a checked value was refused: the hint shown
        # Journal entries of the hop's domain actions, written with the session (one round trip)
        self.journal: list[dict[str, str]] = []
        self.refused: list[str] = []  # the screens an input was refused on (ussd.figures counts them)

    # -- machine-wide callbacks --------------------------------------------------------
    def before_move(self, event: EventData) -> None:
        session, trigger = self.session, event.event.name
        source, dest = _edge(event)
        if trigger == "back":
            session.history.pop()
        elif trigger in CLEARS_HISTORY:
            session.history.clear()
        elif trigger == "resume":
            point = session.data.pop("resume")
            session.history = list(point["history"])
            session.data = dict(point["data"])
        elif trigger != "give_up":
            session.history.append(source)
            session.data.setdefault("pages", {}).pop(dest, None)
        # Options pass what they mean as keyword arguments (lang=..., meter_index=...).
        session.data.update(event.kwargs)

    def after_move(self, event: EventData) -> None:
        self.session.invalid = 0
        self.session.hint = ""
        self.session.data.pop("hint_values", None)
        self.moves.append((event.event.name, *_edge(event)))


MACHINE = Machine(
    model=None,
    states=list(SCREENS),
    transitions=TRANSITIONS,
    initial="main",
    auto_transitions=False,
    send_event=True,
    queued=False,
    before_state_change="before_move",
    after_state_change="after_move",
)


# -- applying one input -------------------------------------------------------------------
def _refuse(visit: Visit, hint: str) -> None:
    session = visit.session
    visit.refused.append(visit.state)
    session.invalid += 1
    session.hint = hint
    if session.invalid >= MAX_INVALID:
        visit.give_up()  # type: ignore[attr-defined]


def _explain(visit: Visit, hint: str) -> None:
    """Answer a navigation key that has nowhere to go (0 on the main menu, 98 on the last
    page): say why, and count no strike against the customer."""
    visit.session.hint = hint


def _fire(visit: Visit, trigger: str, **kwargs: Any) -> None:
    visit.refusal = None
    try:
        moved = getattr(visit, trigger)(**kwargs)
    except MachineError:
        log.exception("menu trigger %s is not defined from %s", trigger, visit.state)
        moved = False
    if not moved:
        _refuse(visit, visit.refusal or "hint.choice")


def _turn_page(visit: Visit, step: int) -> None:
    session = visit.session
    session.data.setdefault("pages", {})[visit.state] = current_page(session) + step
    session.invalid = 0
    session.hint = ""


def _as_choice(value: str, count: int) -> int | None:
    """The 0-based choice ``value`` names among ``count``, or None."""
    if value.isdigit() and value.isascii() and not value.startswith("0"):
        number = int(value)
        if 1 <= number <= count:
            return number - 1
    return None


def apply_input(visit: Visit, raw: str) -> None:
    """Move ``visit`` according to one input typed by the customer."""
    session = visit.session
    session.state = visit.state  # page_count and current_page read the session
    value = raw.strip()
    spec = SCREENS[visit.state]
    if spec.kind == "end":
        return
    if value in ("0", "00"):
        if visit.state == "resume":
            return _fire(visit, "restart")  # home is the main menu, as "start again" gives
        if visit.state in TOP_LEVEL:
            return _explain(visit, "hint.at_home")
        if value == "00":
            return _fire(visit, "home")
        if current_page(session) > 0:  # a list or a paged text: a page back before leaving
            return _turn_page(visit, -1)
        return _fire(visit, "back")
    if value == "98" and spec.kind != "input":  # on an input screen, 98 is what was typed
        if current_page(session) + 1 < page_count(session):
            return _turn_page(visit, +1)
        return _explain(visit, "hint.no_more")
    if spec.kind == "menu":
        options = offered(spec, session, visit.services)
        choice = _as_choice(value, len(options))
        if choice is None:
            return _refuse(visit, "hint.choice")
        option = options[choice]
        return _fire(visit, option.trigger, **dict(option.args))
    if spec.kind == "list":
        items = len(session.data[spec.items])
        choice = _as_choice(value, items + len(spec.extra))
        if choice is None:
            return _refuse(visit, "hint.choice")
        if choice >= items:
            return _fire(visit, spec.extra[choice - items].trigger)
        return _fire(visit, spec.pick, **{spec.choice: choice})
    if spec.kind == "input" and spec.accept is not None:
        extras = offered(spec, session, visit.services)  # e.g. "1. Another meter" under the amount prompt
        choice = _as_choice(value, len(extras))
        if choice is not None:
            return _fire(visit, extras[choice].trigger)
        hint = spec.accept(visit, value)
        if hint:
            return _refuse(visit, hint)
        return _fire(visit, spec.submit)
    _refuse(visit, "hint.choice")


@dataclass
class Outcome:
    moves: list[tuple[str, str, str]]
    language_changed: bool
    journal: list[dict[str, str]]
    refused: list[str]


# Visits attached to MACHINE and free to borrow; one per hop running at once, at most.
_free_visits: list[Visit] = []
_free_visits_lock = threading.Lock()


def _borrow(session: Session, services: Services) -> Visit:
    with _free_visits_lock:
        visit = _free_visits.pop() if _free_visits else None
    if visit is None:
        visit = Visit(session, services)
        MACHINE.add_model(visit, initial=session.state)  # once per pooled visit
        return visit
    visit.reset(session, services)
    visit.state = session.state  # what MACHINE.set_state does: assign, no callbacks
    return visit


def _give_back(visit: Visit) -> None:
    visit.reset(None, None)  # type: ignore[arg-type]  # hold on to no customer's data
    with _free_visits_lock:
        _free_visits.append(visit)


def run(session: Session, inputs: list[str], services: Services) -> Outcome:
    """Apply ``inputs`` to ``session`` (in place) through the shared machine."""
    visit = _borrow(session, services)
    try:
        for value in inputs:
            apply_input(visit, value)
            session.state = visit.state
            if SCREENS[visit.state].kind == "end":
                break
        return Outcome(visit.moves, visit.language_changed, visit.journal, visit.refused)
    finally:
        _give_back(visit)
