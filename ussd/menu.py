"""The menu state machine: how a customer's inputs move a session between screens.

The machine (`transitions`) is built once, at import, from the data below. A hop borrows
a `Visit` that is already attached to it (a small pool: attaching binds every trigger
onto the model, about 0.2 ms with ~30 triggers, so it is paid once per pooled model, not
per hop), points it at the session, restores the state by assigning it (no callbacks
run, so restoring is free of side effects), applies only the hop's new inputs, and
gives the visit back.

`0` (back) and resume are transitions too, generated from the forward edges, so every
move a customer makes is a transition the journal records.
"""
from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from transitions import EventData, Machine, MachineError

from sms.receipts import money
from state.limits import LimitReached
from state.sessions import Session
from ussd.screens import SCREENS, TOP_LEVEL, account_item, current_page, list_pages, offered
from utility.meters import meter_problem
from utility.orders import BILL, UNITS, ReferenceTaken, new_reference
from utility.phones import mobile_number
from utility.services import Services
from utility.vending.base import (
    AmountTooHigh,
    AmountTooLow,
    BackendUnavailable,
    MeterBlocked,
    UnknownMeter,
    VendingError,
)

log = logging.getLogger(__name__)
# transitions logs every callback at INFO: noise in production, and time on every hop.
logging.getLogger("transitions").setLevel(logging.WARNING)

MAX_INVALID = 3  # consecutive invalid inputs on one screen before the session ends
MAX_METERS = 3  # meters (or bills) offered by number before "another one"
MAX_PAYMENTS = 10  # a caller's payments listed under "my payments", three or so a page
# When vending is down the purchase limits cannot be asked: these hold until it returns.
OFFLINE_MINIMUM, OFFLINE_MAXIMUM = 1_000, 200_000


# Forward moves a customer makes by choosing an option. `0` walks them back.
FORWARD: list[dict[str, Any]] = [
    # -- buy prepaid units --------------------------------------------------------------
    # One meter: straight to the amount (the meter and its holder shown there).
    {"trigger": "buy", "source": "main", "dest": "buy_blocked", "prepare": ["load_meters", "check_only_meter"],
     "conditions": ["has_one_meter", "meter_blocked"]},
    {"trigger": "buy", "source": "main", "dest": "buy_amount", "conditions": ["has_one_meter", "meter_known"]},
    {"trigger": "buy", "source": "main", "dest": "buy_meter", "conditions": "has_meters"},
    {"trigger": "buy", "source": "main", "dest": "buy_meter_input"},
    {"trigger": "pick_meter", "source": "buy_meter", "dest": "buy_blocked", "prepare": "check_picked_meter",
     "conditions": "meter_blocked"},
    {"trigger": "pick_meter", "source": "buy_meter", "dest": "buy_amount", "conditions": "meter_known"},
    {"trigger": "other_meter", "source": ["buy_meter", "buy_amount"], "dest": "buy_meter_input"},
    {"trigger": "meter_entered", "source": "buy_meter_input", "dest": "buy_blocked", "conditions": "meter_blocked"},
    {"trigger": "meter_entered", "source": "buy_meter_input", "dest": "buy_amount"},
    {"trigger": "amount_entered", "source": "buy_amount", "dest": "buy_quote"},
    {"trigger": "choose_payer", "source": "buy_quote", "dest": "payer"},
    # -- pay a bill -----------------------------------------------------------------------
    {"trigger": "pay_bill", "source": "main", "dest": "bill_account", "prepare": "load_bills", "conditions": "has_bills"},
    {"trigger": "pay_bill", "source": "main", "dest": "bill_account_input"},
    {"trigger": "pick_bill", "source": "bill_account", "dest": "bill_balance", "before": "take_picked_bill"},
    {"trigger": "other_account", "source": "bill_account", "dest": "bill_account_input"},
    {"trigger": "account_entered", "source": "bill_account_input", "dest": "bill_balance"},
    {"trigger": "pay_all", "source": "bill_balance", "dest": "payer", "conditions": "has_balance", "before": "take_balance"},
    {"trigger": "ask_bill_amount", "source": "bill_balance", "dest": "bill_amount", "before": "bill_limits"},
    {"trigger": "bill_amount_entered", "source": "bill_amount", "dest": "payer"},
    # -- paying (both flows) --------------------------------------------------------------
    {"trigger": "payer_self", "source": "payer", "dest": "confirm", "before": "payer_is_caller"},
    {"trigger": "payer_other", "source": "payer", "dest": "payer_input"},
    {"trigger": "payer_entered", "source": "payer_input", "dest": "confirm"},
    {"trigger": "confirm_order", "source": "confirm", "dest": "too_many_requests", "prepare": "place_order",
     "conditions": "order_limited"},
    {"trigger": "confirm_order", "source": "confirm", "dest": "payment_down", "conditions": "order_failed"},
    {"trigger": "confirm_order", "source": "confirm", "dest": "order_placed"},
    {"trigger": "cancel", "source": "confirm", "dest": "cancelled"},
    # -- my account -------------------------------------------------------------------------
    {"trigger": "account_menu", "source": "main", "dest": "account_menu"},
    {"trigger": "my_accounts", "source": "account_menu", "dest": "no_account", "prepare": "load_accounts",
     "conditions": "has_no_account"},
    {"trigger": "my_accounts", "source": "account_menu", "dest": "account", "prepare": "load_accounts",
     "conditions": "has_one_account"},
    {"trigger": "my_accounts", "source": "account_menu", "dest": "accounts", "prepare": "load_accounts"},
    {"trigger": "pick_account", "source": "accounts", "dest": "account"},
    {"trigger": "resend_token", "source": "account_menu", "dest": "too_many_requests", "prepare": "resend_last_token",
     "conditions": "resend_limited"},
    {"trigger": "resend_token", "source": "account_menu", "dest": "resend_done"},
    {"trigger": "my_payments", "source": "account_menu", "dest": "no_payments", "prepare": "load_payments",
     "conditions": "has_no_payments"},
    {"trigger": "my_payments", "source": "account_menu", "dest": "payments"},
    {"trigger": "pick_payment", "source": "payments", "dest": "payment"},
    {"trigger": "choose_language", "source": "main", "dest": "language"},
]

# Moves that reset where the customer came from.
RESETS: list[dict[str, Any]] = [
    {"trigger": "set_language", "source": "language", "dest": "main", "after": "remember_language"},
    {"trigger": "home", "source": "*", "dest": "main"},
    {"trigger": "restart", "source": "resume", "dest": "main"},
    {"trigger": "give_up", "source": "*", "dest": "too_many_invalid"},
]


def _session(event: EventData) -> Session:
    """The session a move is about: MACHINE's models are all Visits."""
    return cast(Visit, event.model).session


def _edge(event: EventData) -> tuple[str, str]:
    """The (source, dest) of the move under way: a move's callbacks run within its
    transition, and every transition of MACHINE has a destination (none is internal)."""
    transition = event.transition
    assert transition is not None and transition.dest is not None
    return transition.source, transition.dest


def _limit(error: VendingError, name: str, data: dict[str, Any]) -> int:
    """The limit a refused amount broke: as the backend quoted it, else the one we knew
    (an XMLVend fault may name no amount: its ``minimum`` is None then)."""
    quoted = error.details.get(name)
    return quoted if isinstance(quoted, int) else int(data[name])


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
    back_edges = {
        (t["dest"], source)
        for t in FORWARD
        if SCREENS[t["dest"]].kind != "end"
        for source in ([t["source"]] if isinstance(t["source"], str) else t["source"])
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


TRANSITIONS = FORWARD + RESETS + _generated()
NON_FORWARD = {"back", "home", "restart", "set_language", "give_up", "resume"}


class Visit:
    """One hop's view of a session: the model the machine moves."""

    state: str  # written by the machine

    def __init__(self, session: Session, services: Services) -> None:
        self.reset(session, services)

    def reset(self, session: Session, services: Services) -> None:
        """Point this visit at another hop's session, with nothing left of the last one."""
        self.session = session
        self.services = services
        self.moves: list[tuple[str, str, str]] = []  # (trigger, from, to) for the journal
        self.language_changed = False
        self._accounts_loaded = False
        self._hint: str | None = None  # why a checked value was refused, for apply_input

    # -- machine-wide callbacks --------------------------------------------------------
    def before_move(self, event: EventData) -> None:
        session, trigger = self.session, event.event.name
        source, dest = _edge(event)
        if trigger == "back":
            session.history.pop()
        elif trigger in ("home", "restart", "set_language"):
            session.history.clear()
        elif trigger == "resume":
            point = session.data.pop("resume")
            session.history = list(point["history"])
            session.data = dict(point["data"])
        elif trigger != "give_up":
            session.history.append(source)
            session.data.setdefault("pages", {}).pop(dest, None)
        if dest == "confirm":
            # Drawn when the confirm screen is shown and saved with it, so a confirm hop
            # retried after a crash places the same order, never a second one.
            session.data["order_ref"] = new_reference()
        # Options pass what they mean as keyword arguments (feature=..., account=...).
        session.data.update(event.kwargs)

    def after_move(self, event: EventData) -> None:
        self.session.invalid = 0
        self.session.hint = ""
        self.session.data.pop("hint_values", None)
        self.moves.append((event.event.name, *_edge(event)))

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

    # -- buying units ----------------------------------------------------------------------
    def load_meters(self, event: EventData) -> None:
        """The caller's prepaid meters: linked to the number, then recently bought for."""
        if "meters" in self.session.data:
            return
        meters = [a.meter_number for a in self.services.customers.accounts_for_phone(self.session.phone) if a.prepaid]
        for order in self.services.orders.recent(self.session.phone, count=10):
            if order.kind == UNITS and order.target not in meters:
                meters.append(order.target)
        self.session.data["meters"] = [{"meter": m} for m in meters[:MAX_METERS]]

    def has_meters(self, event: EventData) -> bool:
        return bool(self.session.data["meters"])

    def has_one_meter(self, event: EventData) -> bool:
        return len(self.session.data["meters"]) == 1

    def check_only_meter(self, event: EventData) -> None:
        meters = self.session.data["meters"]
        if len(meters) == 1:
            self._hint = self._check_meter(meters[0]["meter"])

    def check_picked_meter(self, event: EventData) -> None:
        meter = self.session.data["meters"][event.kwargs["meter_index"]]["meter"]
        self._hint = self._check_meter(meter)

    def meter_known(self, event: EventData) -> bool:
        return not self._hint

    def meter_blocked(self, event: EventData) -> bool:
        return bool(self.session.data.get("blocked"))

    def accept_meter(self, value: str) -> str | None:
        value = value.replace(" ", "")
        problem = meter_problem(value)
        if problem:
            return "hint.meter_check" if "check digit" in problem else "hint.meter_digits"
        return self._check_meter(value)

    def _check_meter(self, meter: str) -> str | None:
        """Who the meter belongs to, from the vending system, or from our own customer base
        when vending is down (money can still be taken: the token follows)."""
        data = self.session.data
        data.update(meter=meter, flow=UNITS, blocked=False, offline=False)
        try:
            info = self.services.vending.confirm(meter)
        except UnknownMeter:
            return "hint.meter_unknown"
        except MeterBlocked:
            data["blocked"] = True
            return None
        except BackendUnavailable:
            account = self.services.customers.account_for_meter(meter)
            if account is None:
                return "hint.meter_unknown"
            data.update(meter_name=account.name, offline=True, minimum=OFFLINE_MINIMUM, maximum=OFFLINE_MAXIMUM)
            return None
        data.update(meter_name=info.name, blocked=not info.can_vend, minimum=info.min_amount, maximum=info.max_amount)
        return None

    def accept_amount(self, value: str) -> str | None:
        data = self.session.data
        amount, hint = self._amount(value)
        if hint:
            return hint
        data["amount"] = amount
        if data.get("offline"):
            return None
        try:
            quote = self.services.vending.quote(data["meter"], amount)
        except AmountTooLow as low:
            return self._limit_hint("hint.amount_low", minimum=_limit(low, "minimum", data))
        except AmountTooHigh as high:
            return self._limit_hint("hint.amount_high", maximum=_limit(high, "maximum", data))
        except BackendUnavailable:
            data["offline"] = True
            return None
        except VendingError:
            return "hint.meter_unknown"
        data["quote"] = {
            "units": str(quote.units),
            "unit": quote.unit,
            "charges": [[c.code, c.amount] for c in quote.charges],
        }
        return None

    def _amount(self, value: str) -> tuple[int, str | None]:
        data = self.session.data
        digits = value.replace(" ", "").replace(".", "")
        if not digits.isdigit() or not digits.isascii() or len(digits) > 12:
            return 0, "hint.amount"
        amount = int(digits)
        if amount < data["minimum"]:
            return 0, self._limit_hint("hint.amount_low", minimum=data["minimum"])
        if amount > data["maximum"]:
            return 0, self._limit_hint("hint.amount_high", maximum=data["maximum"])
        return amount, None

    def _limit_hint(self, hint: str, **values: int) -> str:
        self.session.data["hint_values"] = {k: money(self.session.lang, v) for k, v in values.items()}
        return hint

    # -- paying a bill ----------------------------------------------------------------------
    def load_bills(self, event: EventData) -> None:
        if "bills" in self.session.data:
            return
        accounts = self.services.customers.accounts_for_phone(self.session.phone)
        self.session.data["bills"] = [account_item(a) for a in accounts if not a.prepaid][:MAX_METERS]

    def has_bills(self, event: EventData) -> bool:
        return bool(self.session.data["bills"])

    def take_picked_bill(self, event: EventData) -> None:
        self._take_bill(self.session.data["bills"][event.kwargs["bill_index"]])

    def _take_bill(self, item: dict[str, Any]) -> None:
        rules = self.services.bill_rules
        self.session.data.update(flow=BILL, account_no=item["number"], account_name=item["name"],
                                 balance=item["balance"], due=item["due"],
                                 can_pay_more=rules.bounds(int(item["balance"])) is not None)

    def accept_account(self, value: str) -> str | None:
        accounts = [a for a in self.services.customers.accounts_typed(value) if not a.prepaid]
        if not accounts:
            return "hint.account_unknown"
        if len(accounts) > 1:
            return "hint.account_ambiguous"  # the same digits under two prefixes: type the prefix too
        self._take_bill(account_item(accounts[0]))
        return None

    def has_balance(self, event: EventData) -> bool:
        return int(self.session.data["balance"]) > 0

    def take_balance(self, event: EventData) -> None:
        self.session.data["amount"] = int(self.session.data["balance"])

    def bill_limits(self, event: EventData) -> None:
        bounds = self.services.bill_rules.bounds(int(self.session.data["balance"]))
        assert bounds is not None  # "another amount" is offered only when some is taken
        self.session.data.update(minimum=bounds[0], maximum=bounds[1])

    def accept_bill_amount(self, value: str) -> str | None:
        amount, hint = self._amount(value)
        if hint:
            return hint
        self.session.data["amount"] = amount
        return None

    # -- paying -----------------------------------------------------------------------------
    def payer_is_caller(self, event: EventData) -> None:
        self.session.data["payer"] = self.session.phone

    def accept_payer(self, value: str) -> str | None:
        payer = mobile_number(value, self.session.phone)
        if payer is None:
            return "hint.phone"
        self.session.data["payer"] = payer
        return None

    def place_order(self, event: EventData) -> None:
        session, data = self.session, self.session.data
        units = data["flow"] == UNITS
        for _attempt in range(3):
            try:
                order = self.services.orders.place(
                    kind=data["flow"],
                    phone=session.phone,
                    lang=session.lang,
                    target=data["meter"] if units else data["account_no"],
                    amount=int(data["amount"]),
                    payer=data["payer"],
                    reference=data.get("order_ref") or new_reference(),
                    dial_code=session.service_code,
                )
            except ReferenceTaken:
                data["order_ref"] = new_reference()  # 40 random bits collided: draw again
                continue
            except LimitReached as limited:
                data.update(order_state="limited", retry_minutes=limited.minutes)
                return
            data.update(order_ref=order.reference, order_state=order.state)
            return
        data["order_state"] = "failed"

    def order_limited(self, event: EventData) -> bool:
        return self.session.data.get("order_state") == "limited"

    def order_failed(self, event: EventData) -> bool:
        return self.session.data.get("order_state") == "failed"

    # -- my account -------------------------------------------------------------------------
    def resend_last_token(self, event: EventData) -> None:
        data = self.session.data
        try:
            data["resent"] = self.services.orders.resend_last_tokens(self.session.phone, self.session.lang).outcome
        except LimitReached as limited:
            data.update(resent="limited", retry_minutes=limited.minutes)

    def resend_limited(self, event: EventData) -> bool:
        return self.session.data.get("resent") == "limited"

    def load_payments(self, event: EventData) -> None:
        tz = self.services.tz
        self.session.data["orders"] = [
            {"reference": o.reference, "kind": o.kind, "target": o.target, "amount": o.amount, "state": o.state,
             "at": datetime.datetime.fromtimestamp(o.created_at, tz).strftime("%d/%m/%Y %H:%M")}
            for o in self.services.orders.recent(self.session.phone, count=MAX_PAYMENTS)
        ]

    def has_no_payments(self, event: EventData) -> bool:
        return not self.session.data["orders"]

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


def _explain(visit: Visit, hint: str) -> None:
    """Answer a navigation key that has nowhere to go (0 on the main menu, 98 on the last
    page): say why, and count no strike against the customer."""
    visit.session.hint = hint


def _fire(visit: Visit, trigger: str, **kwargs: Any) -> None:
    visit._hint = None
    try:
        moved = getattr(visit, trigger)(**kwargs)
    except MachineError:
        log.exception("menu trigger %s is not defined from %s", trigger, visit.state)
        moved = False
    if not moved:
        _refuse(visit, visit._hint or "hint.choice")


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
    if value in ("0", "00"):
        if visit.state == "resume":
            return _fire(visit, "restart")  # home is the main menu, as "start again" gives
        if visit.state in TOP_LEVEL:
            return _explain(visit, "hint.at_home")
        if value == "00":
            return _fire(visit, "home")
        if spec.kind == "list" and current_page(session) > 0:
            return _turn_page(visit, -1)
        return _fire(visit, "back")
    if value == "98" and spec.kind != "input":  # on an input screen, 98 is what was typed
        if spec.kind == "list" and current_page(session) + 1 < len(list_pages(session)):
            return _turn_page(visit, +1)
        return _explain(visit, "hint.no_more")
    if spec.kind == "menu":
        options = offered(spec, session)
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
    if spec.kind == "input":
        extras = offered(spec, session)  # e.g. "1. Another meter" under the amount prompt
        choice = _as_choice(value, len(extras))
        if choice is not None:
            return _fire(visit, extras[choice].trigger)
        hint = getattr(visit, spec.accept)(value)
        if hint:
            return _refuse(visit, hint)
        return _fire(visit, spec.submit)
    _refuse(visit, "hint.choice")


@dataclass
class Outcome:
    moves: list[tuple[str, str, str]]
    language_changed: bool


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
        return Outcome(visit.moves, visit.language_changed)
    finally:
        _give_back(visit)
