"""The menu state machine: how a customer's inputs move a session between screens.

The machine (`transitions`) is built once, at import, from the data below. Each hop
attaches a fresh `Visit` to it with the state restored from Redis
(``MACHINE.add_model(visit, initial=...)`` runs no callbacks, so restoring is free of
side effects), applies only the hop's new inputs, and detaches it.

`0` (back) and resume are transitions too, generated from the forward edges, so every
move a customer makes is a transition the journal records.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from transitions import EventData, Machine, MachineError

from state.sessions import Session
from ussd.screens import SCREENS, TOP_LEVEL, account_item, current_page, list_pages
from utility.customers import CustomerBase

log = logging.getLogger(__name__)
# transitions logs every callback at INFO: noise in production, and time on every hop.
logging.getLogger("transitions").setLevel(logging.WARNING)

MAX_INVALID = 3  # consecutive invalid inputs on one screen before the session ends


class Services(Protocol):
    """The domain services the menu calls (see ussd.engine for the real bundle)."""

    customers: CustomerBase


# Forward moves a customer makes by choosing an option. `0` walks them back.
FORWARD: list[dict[str, Any]] = [
    {"trigger": "soon", "source": "main", "dest": "unavailable"},
    {
        "trigger": "my_accounts",
        "source": "main",
        "dest": "no_account",
        "prepare": "load_accounts",
        "conditions": "has_no_account",
    },
    {
        "trigger": "my_accounts",
        "source": "main",
        "dest": "account",
        "prepare": "load_accounts",
        "conditions": "has_one_account",
    },
    {"trigger": "my_accounts", "source": "main", "dest": "accounts", "prepare": "load_accounts"},
    {"trigger": "pick_account", "source": "accounts", "dest": "account"},
    {"trigger": "choose_language", "source": "main", "dest": "language"},
]

# Moves that reset where the customer came from.
RESETS: list[dict[str, Any]] = [
    {"trigger": "set_language", "source": "language", "dest": "main", "after": "remember_language"},
    {"trigger": "home", "source": "*", "dest": "main"},
    {"trigger": "restart", "source": "resume", "dest": "main"},
    {"trigger": "give_up", "source": "*", "dest": "too_many_invalid"},
]


def _came_from(state: str) -> Callable[[EventData], bool]:
    def condition(event: EventData) -> bool:
        history = event.model.session.history
        return bool(history) and history[-1] == state

    return condition


def _resumes_to(state: str) -> Callable[[EventData], bool]:
    def condition(event: EventData) -> bool:
        return event.model.session.data.get("resume", {}).get("state") == state

    return condition


def _generated() -> list[dict[str, Any]]:
    back_edges = {(t["dest"], t["source"]) for t in FORWARD if SCREENS[t["dest"]].kind != "end"}
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


TRANSITIONS = FORWARD + RESETS + _generated()
NON_FORWARD = {"back", "home", "restart", "set_language", "give_up", "resume"}


class Visit:
    """One hop's view of a session: the model the machine moves."""

    state: str  # written by the machine

    def __init__(self, session: Session, services: Services) -> None:
        self.session = session
        self.services = services
        self.moves: list[tuple[str, str, str]] = []  # (trigger, from, to) for the journal
        self.language_changed = False
        self._accounts_loaded = False

    # -- machine-wide callbacks --------------------------------------------------------
    def before_move(self, event: EventData) -> None:
        session, trigger = self.session, event.event.name
        if trigger == "back":
            session.history.pop()
        elif trigger in ("home", "restart", "set_language"):
            session.history.clear()
        elif trigger == "resume":
            point = session.data.pop("resume")
            session.history = list(point["history"])
            session.data = dict(point["data"])
        elif trigger != "give_up":
            session.history.append(event.transition.source)
            session.data.setdefault("pages", {}).pop(event.transition.dest, None)
        # Options pass what they mean as keyword arguments (feature=..., account=...).
        session.data.update(event.kwargs)

    def after_move(self, event: EventData) -> None:
        self.session.invalid = 0
        self.session.hint = ""
        self.moves.append((event.event.name, event.transition.source, event.transition.dest))

    # -- conditions and actions named in the transitions -------------------------------
    def load_accounts(self, event: EventData) -> None:
        if not self._accounts_loaded:
            accounts = self.services.customers.accounts_for_phone(self.session.phone)
            self.session.data["accounts"] = [account_item(a) for a in accounts]
            self.session.data["account"] = 0
            self._accounts_loaded = True

    def has_no_account(self, event: EventData) -> bool:
        return not self.session.data["accounts"]

    def has_one_account(self, event: EventData) -> bool:
        return len(self.session.data["accounts"]) == 1

    def remember_language(self, event: EventData) -> None:
        self.session.lang = event.kwargs["lang"]
        self.session.notice = "language.saved"
        self.language_changed = True


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
    session.invalid += 1
    session.hint = hint
    if session.invalid >= MAX_INVALID:
        visit.give_up()  # type: ignore[attr-defined]


def _fire(visit: Visit, trigger: str, **kwargs: Any) -> None:
    try:
        moved = getattr(visit, trigger)(**kwargs)
    except MachineError:
        log.exception("menu trigger %s is not defined from %s", trigger, visit.state)
        moved = False
    if not moved:
        _refuse(visit, "hint.choice")


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
    session.state = visit.state  # list_pages and current_page read the session
    value = raw.strip()
    spec = SCREENS[visit.state]
    if spec.kind == "end":
        return
    if visit.state not in TOP_LEVEL:
        if value == "00":
            return _fire(visit, "home")
        if value == "0":
            if spec.kind == "list" and current_page(session) > 0:
                return _turn_page(visit, -1)
            return _fire(visit, "back")
    if spec.kind == "menu":
        choice = _as_choice(value, len(spec.options))
        if choice is None:
            return _refuse(visit, "hint.choice")
        option = spec.options[choice]
        return _fire(visit, option.trigger, **dict(option.args))
    if spec.kind == "list":
        if value == "98":
            if current_page(session) + 1 < len(list_pages(session)):
                return _turn_page(visit, +1)
            return _refuse(visit, "hint.no_more")
        choice = _as_choice(value, len(session.data[spec.items]))
        if choice is None:
            return _refuse(visit, "hint.choice")
        return _fire(visit, spec.pick, **{spec.choice: choice})
    _refuse(visit, "hint.choice")


@dataclass
class Outcome:
    moves: list[tuple[str, str, str]]
    language_changed: bool


def run(session: Session, inputs: list[str], services: Services) -> Outcome:
    """Apply ``inputs`` to ``session`` (in place) through the shared machine."""
    visit = Visit(session, services)
    MACHINE.add_model(visit, initial=session.state)
    try:
        for value in inputs:
            apply_input(visit, value)
            session.state = visit.state
            if SCREENS[visit.state].kind == "end":
                break
    finally:
        MACHINE.remove_model(visit)
    return Outcome(visit.moves, visit.language_changed)
