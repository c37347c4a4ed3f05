"""Paying, the end of both the buy and the bill flows: which Mobile Money number pays,
the confirmation, and the order placed.

It works on the order draft the flow before it left in the session: `flow` (units or
bill), `meter` or `account_no` (with `meter_name` or `account_name`), `amount` and, for a
bill, `balance`. It adds `payer` and `order_ref`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transitions import EventData

from sms.receipts import money
from state.limits import LimitReached
from state.sessions import Session
from ussd.catalogue import text
from ussd.screens import Context, Option, ScreenSpec, holder, visit_of
from utility.orders import UNITS, ReferenceTaken, new_reference
from utility.phones import mobile_number

if TYPE_CHECKING:
    from ussd.menu import Visit
    from utility.services import Services

ENTRY = None  # reached from buy and bill, not from the main menu


# -- what the screens say -------------------------------------------------------------------
def target_lines(session: Session) -> list[str]:
    """The meter or account being paid for, in full, and its holder."""
    data, lang = session.data, session.lang
    if data["flow"] == UNITS:
        return [text(lang, "buy.meter", number=data["meter"]), holder(data["meter_name"])]
    return [text(lang, "bill.account", number=data["account_no"]), holder(data.get("account_name", ""))]


def _confirm(session: Session, ctx: Context) -> list[str]:
    data, lang = session.data, session.lang
    amount = int(data["amount"])
    if data["flow"] == UNITS:
        lines = [text(lang, "confirm.units", amount=money(lang, amount)), *target_lines(session)]
    else:
        lines = [text(lang, "confirm.bill", amount=money(lang, amount)), *target_lines(session)]
        ahead = amount - max(int(data["balance"]), 0)
        if ahead > 0:  # more than is due: the rest stays on the account (the utility's rule)
            lines.append(text(lang, "confirm.credit", credit=money(lang, ahead)))
    return [*lines, text(lang, "confirm.payer", payer=data["payer"])]


def _payments_up(session: Session, services: Services) -> bool:
    """Mobile Money takes payments now: its breaker is not open and the operator did not
    switch the built-in one off (from in-process copies: no round trip)."""
    return not services.payments_out()


def _payer_head(session: Session, ctx: Context) -> str:
    lang, data = session.lang, session.data
    if ctx.services is not None and not _payments_up(session, ctx.services):
        # A method that cannot take the money is not offered: the customer is told why
        # instead, here rather than after the confirm.
        return text(lang, "payer.down")
    # Billing down: a bill payment is still taken, and posted when billing returns (utility.orders).
    return text(lang, "payer.title_later" if data.get("flow") != UNITS and data.get("posted_later") else "payer.title")


def _order_placed(session: Session, ctx: Context) -> str:
    data, lang = session.data, session.lang
    key = "confirm.placed_units" if data["flow"] == UNITS else (
        "confirm.placed_later" if data.get("posted_later") else "confirm.placed")
    if data["payer"] != session.phone:
        # The approval request rings another phone: say which, in full, so the customer
        # knows whom to ask (their own handset will show nothing).
        return text(lang, key + "_other", amount=money(lang, data["amount"]), reference=data["order_ref"],
                    payer=data["payer"])
    return text(lang, key, amount=money(lang, data["amount"]), reference=data["order_ref"])


def _too_many_orders(session: Session, ctx: Context) -> str:
    return text(session.lang, "limits.order", minutes=session.data.get("retry_minutes", 1))


# -- steps ----------------------------------------------------------------------------------
def amount_typed(visit: Visit, value: str) -> tuple[int, str | None]:
    """The amount typed (spaces and dots as thousands separators allowed) within the
    draft's minimum and maximum, or the hint saying why not."""
    data = visit.session.data
    digits = value.replace(" ", "").replace(".", "")
    if not digits.isdigit() or not digits.isascii() or len(digits) > 12:
        return 0, "hint.amount"
    amount = int(digits)
    if amount < data["minimum"]:
        return 0, limit_hint(visit, "hint.amount_low", minimum=data["minimum"])
    if amount > data["maximum"]:
        return 0, limit_hint(visit, "hint.amount_high", maximum=data["maximum"])
    return amount, None


def limit_hint(visit: Visit, hint: str, **values: int) -> str:
    """``hint`` with the limit it names, in the customer's number format."""
    visit.session.data["hint_values"] = {k: money(visit.session.lang, v) for k, v in values.items()}
    return hint


def payer_is_caller(event: EventData) -> None:
    visit = visit_of(event)
    visit.session.data["payer"] = visit.session.phone


def accept_payer(visit: Visit, value: str) -> str | None:
    payer = mobile_number(value, visit.session.phone)
    if payer is None:
        return "hint.phone"
    visit.session.data["payer"] = payer
    return None


def draw_reference(event: EventData) -> None:
    """Drawn when the confirm screen is shown and saved with it, so a confirm hop retried
    after a crash places the same order, never a second one."""
    visit_of(event).session.data["order_ref"] = new_reference()


def place_order(event: EventData) -> None:
    visit = visit_of(event)
    session, data = visit.session, visit.session.data
    units = data["flow"] == UNITS
    for _attempt in range(3):
        try:
            order = visit.services.orders.place(
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


def order_limited(event: EventData) -> bool:
    return visit_of(event).session.data.get("order_state") == "limited"


def order_failed(event: EventData) -> bool:
    return visit_of(event).session.data.get("order_state") == "failed"


SCREENS: dict[str, ScreenSpec] = {
    "payer": ScreenSpec("menu", body=_payer_head, options=(
        Option("payer.this", "payer_self", when=_payments_up), Option("payer.other", "payer_other", when=_payments_up),
    )),
    "payer_input": ScreenSpec("input", title="payer.prompt", accept=accept_payer, submit="payer_entered"),
    "confirm": ScreenSpec("menu", body=_confirm,
                          options=(Option("confirm.yes", "confirm_order"), Option("confirm.no", "cancel"))),
    "order_placed": ScreenSpec("end", body=_order_placed, resumable=False),
    "payment_down": ScreenSpec("end", title="confirm.payment_down", resumable=False),
    "cancelled": ScreenSpec("end", title="confirm.cancelled", resumable=False),
    "too_many_orders": ScreenSpec("end", body=_too_many_orders, resumable=False),
}

EDGES: list[dict[str, Any]] = [
    {"trigger": "payer_self", "source": "payer", "dest": "confirm", "before": [payer_is_caller, draw_reference]},
    {"trigger": "payer_other", "source": "payer", "dest": "payer_input"},
    {"trigger": "payer_entered", "source": "payer_input", "dest": "confirm", "before": draw_reference},
    {"trigger": "confirm_order", "source": "confirm", "dest": "too_many_orders", "prepare": place_order,
     "conditions": order_limited},
    {"trigger": "confirm_order", "source": "confirm", "dest": "payment_down", "conditions": order_failed},
    {"trigger": "confirm_order", "source": "confirm", "dest": "order_placed"},
    {"trigger": "cancel", "source": "confirm", "dest": "cancelled"},
]

# Worst-case data for the fit test (tests/ussd/test_screens_fit.py), and its variants.
WORST: dict[str, Any] = {"payer": "+999999999999999", "order_ref": "ABCDEFGH", "retry_minutes": 1440}
VARIANTS: list[dict[str, Any]] = [
    {"payer": "+888888888888888"},  # another phone pays: the screens name it
    {"payer": "+888888888888888", "flow": "bill"},
    {"flow": "bill", "balance": 1},  # paying more than is due: the confirm screen says where the rest goes
    {"flow": "bill", "posted_later": True},  # billing down: posted when it returns
    {"flow": "bill", "posted_later": True, "payer": "+888888888888888"},
]
