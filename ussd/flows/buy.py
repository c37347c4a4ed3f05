"""Buying prepaid units: which meter, how much, the quote; then paying (ussd.flows.pay).

dial -> 1 -> (the caller's one meter, or a list of theirs, or a number typed) -> amount,
with the meter and its holder above the prompt -> quote -> pay.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app
from transitions import EventData

from sms.gsm import gsm7_septets
from sms.receipts import money, quantity
from state.sessions import Session
from ussd.catalogue import text
from ussd.flows.pay import amount_typed, limit_hint, target_lines
from ussd.screens import Context, Option, ScreenSpec, fixed, visit_of
from utility.meters import meter_problem
from utility.orders import UNITS
from utility.vending.base import (
    AmountTooHigh,
    AmountTooLow,
    BackendUnavailable,
    MeterBlocked,
    UnknownMeter,
    VendingError,
)

if TYPE_CHECKING:
    from ussd.menu import Visit
    from utility.services import Services

ENTRY = Option("main.buy", "buy")

MAX_METERS = 3  # meters offered by number before "another one"
QUOTE_WIDTH = 110  # septets of a quote's lines, leaving room for its options and a hint
# When vending is down the purchase limits cannot be asked: these hold until it returns.
OFFLINE_MINIMUM, OFFLINE_MAXIMUM = 1_000, 200_000


# -- what the screens say -------------------------------------------------------------------
def _meter_label(lang: str, item: dict[str, Any]) -> str:
    return text(lang, "buy.item", number=item["meter"])


def _amount_prompt(session: Session, ctx: Context) -> list[str]:
    lang, data = session.lang, session.data
    prompt = text(lang, "buy.amount_prompt", minimum=money(lang, data["minimum"]), maximum=money(lang, data["maximum"]))
    return [*target_lines(session), prompt]


def _quote(session: Session, ctx: Context) -> str:
    data, lang = session.data, session.lang
    if data.get("offline"):
        return text(lang, "buy.offline", amount=money(lang, data["amount"]))
    quote = data["quote"]
    headline = text(lang, "buy.quote", amount=money(lang, data["amount"]), units=quantity(lang, quote["units"]),
                    unit=quote["unit"])
    charges = [(code, amount) for code, amount in quote["charges"] if code != "energy" and amount]
    if not charges:
        return headline
    # "Dont ...": what the amount already includes, in the words and the order of the SMS
    # receipt, the currency said once at the end.
    itemised = text(lang, "buy.quote_included", charges=", ".join(
        text(lang, "buy.quote_charge", label=text(lang, f"charge.{code}"), amount=money(lang, amount))
        for code, amount in charges))
    if (gsm7_septets("\n".join([headline, itemised])) or 0) <= QUOTE_WIDTH:
        return "\n".join([headline, itemised])
    # Too many deductions to list on one screen: their total here, the detail on the SMS receipt.
    total = text(lang, "buy.quote_charges_total", amount=money(lang, sum(amount for _, amount in charges)))
    return "\n".join([headline, total])


def _straight_from_the_menu(session: Session, services: Services) -> bool:
    # No amount is as small as 1: the option's number cannot be mistaken for an amount.
    return session.history[-1:] == ["main"] and int(session.data.get("minimum") or 0) > 1


# -- steps ----------------------------------------------------------------------------------
def load_meters(event: EventData) -> None:
    """The caller's prepaid meters: linked to the number, then recently bought for."""
    visit = visit_of(event)
    data = visit.session.data
    if "meters" in data:
        return
    services = visit.services
    meters = [a.meter_number for a in services.customers.accounts_for_phone(visit.session.phone) if a.prepaid]
    for order in services.orders.recent(visit.session.phone, count=10):
        if order.kind == UNITS and order.target not in meters:
            meters.append(order.target)
    data["meters"] = [{"meter": m} for m in meters[:MAX_METERS]]


def has_meters(event: EventData) -> bool:
    return bool(visit_of(event).session.data["meters"])


def has_one_meter(event: EventData) -> bool:
    return len(visit_of(event).session.data["meters"]) == 1


def check_only_meter(event: EventData) -> None:
    visit = visit_of(event)
    meters = visit.session.data["meters"]
    if len(meters) == 1:
        visit.refusal = check_meter(visit, meters[0]["meter"])


def check_picked_meter(event: EventData) -> None:
    visit = visit_of(event)
    visit.refusal = check_meter(visit, visit.session.data["meters"][event.kwargs["meter_index"]]["meter"])


def meter_known(event: EventData) -> bool:
    return not visit_of(event).refusal


def meter_blocked(event: EventData) -> bool:
    return bool(visit_of(event).session.data.get("blocked"))


def refused_while_down(event: EventData) -> bool:
    """Vending is down and the operator takes no payment it cannot vend at once
    (GUICHET_VENDING_DOWN=refuse): the call ends on why, instead of the offline quote."""
    visit = visit_of(event)
    offline = bool(visit.session.data.get("offline")) and not visit.refusal
    if not offline or str(current_app.config["VENDING_DOWN"]).strip().lower() != "refuse":
        return False
    visit.session.data["short_code"] = str(current_app.config.get("SMS_SHORT_CODE") or "")
    return True


def _down(session: Session, ctx: Context) -> str:
    lines = [text(session.lang, "buy.down")]
    if session.data.get("short_code"):  # where INFO tells the incident's news
        lines.append(text(session.lang, "buy.down_info", short_code=session.data["short_code"]))
    return "\n".join(lines)


def accept_meter(visit: Visit, value: str) -> str | None:
    value = value.replace(" ", "")
    problem = meter_problem(value)
    if problem:
        return "hint.meter_check" if "check digit" in problem else "hint.meter_digits"
    return check_meter(visit, value)


def check_meter(visit: Visit, meter: str) -> str | None:
    """Who the meter belongs to, from the vending system, or from our own customer base
    when vending is down (money can still be taken: the token follows)."""
    data = visit.session.data
    data.update(meter=meter, flow=UNITS, blocked=False, offline=False)
    try:
        info = visit.services.vending.confirm(meter)
    except UnknownMeter:
        return "hint.meter_unknown"
    except MeterBlocked:
        data["blocked"] = True
        return None
    except BackendUnavailable:
        account = visit.services.customers.account_for_meter(meter)
        if account is None:
            return "hint.meter_unknown"
        data.update(meter_name=account.name, offline=True, minimum=OFFLINE_MINIMUM, maximum=OFFLINE_MAXIMUM)
        return None
    data.update(meter_name=info.name, blocked=not info.can_vend, minimum=info.min_amount, maximum=info.max_amount)
    return None


def accept_amount(visit: Visit, value: str) -> str | None:
    data = visit.session.data
    amount, hint = amount_typed(visit, value)
    if hint:
        return hint
    data["amount"] = amount
    if data.get("offline"):
        return None
    try:
        quote = visit.services.vending.quote(data["meter"], amount)
    except AmountTooLow as low:
        return limit_hint(visit, "hint.amount_low", minimum=_limit(low, "minimum", data))
    except AmountTooHigh as high:
        return limit_hint(visit, "hint.amount_high", maximum=_limit(high, "maximum", data))
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


def _limit(error: VendingError, name: str, data: dict[str, Any]) -> int:
    """The limit a refused amount broke: as the backend quoted it, else the one we knew
    (an XMLVend fault may name no amount: its ``minimum`` is None then)."""
    quoted = error.details.get(name)
    return quoted if isinstance(quoted, int) else int(data[name])


SCREENS: dict[str, ScreenSpec] = {
    "buy_meter": ScreenSpec(
        "list", title="buy.title", items="meters", label=_meter_label, pick="pick_meter", choice="meter_index",
        pick_hints=("hint.meter_unknown",), extra=(Option("buy.other", "other_meter"),),
    ),
    "buy_meter_input": ScreenSpec("input", title="buy.meter_prompt", accept=accept_meter, submit="meter_entered"),
    "buy_blocked": ScreenSpec("end", body=fixed("buy.blocked"), resumable=False),
    # The meter and its holder stand above the amount: the customer checks them here. A
    # caller sent straight here (one meter) can still buy for another one.
    "buy_amount": ScreenSpec("input", body=_amount_prompt, accept=accept_amount, submit="amount_entered",
                             extra=(Option("buy.other", "other_meter", when=_straight_from_the_menu),)),
    "buy_quote": ScreenSpec("menu", body=_quote, options=(Option("buy.pay", "choose_payer"),)),
    "buy_down": ScreenSpec("end", body=_down, resumable=False),
}

EDGES: list[dict[str, Any]] = [
    # One meter: straight to the amount (the meter and its holder shown there).
    {"trigger": "buy", "source": "main", "dest": "buy_blocked", "prepare": [load_meters, check_only_meter],
     "conditions": [has_one_meter, meter_blocked]},
    {"trigger": "buy", "source": "main", "dest": "buy_down", "conditions": [has_one_meter, refused_while_down]},
    {"trigger": "buy", "source": "main", "dest": "buy_amount", "conditions": [has_one_meter, meter_known]},
    {"trigger": "buy", "source": "main", "dest": "buy_meter", "conditions": has_meters},
    {"trigger": "buy", "source": "main", "dest": "buy_meter_input"},
    {"trigger": "pick_meter", "source": "buy_meter", "dest": "buy_blocked", "prepare": check_picked_meter,
     "conditions": meter_blocked},
    {"trigger": "pick_meter", "source": "buy_meter", "dest": "buy_down", "conditions": refused_while_down},
    {"trigger": "pick_meter", "source": "buy_meter", "dest": "buy_amount", "conditions": meter_known},
    {"trigger": "other_meter", "source": ["buy_meter", "buy_amount"], "dest": "buy_meter_input"},
    {"trigger": "meter_entered", "source": "buy_meter_input", "dest": "buy_blocked", "conditions": meter_blocked},
    {"trigger": "meter_entered", "source": "buy_meter_input", "dest": "buy_down", "conditions": refused_while_down},
    {"trigger": "meter_entered", "source": "buy_meter_input", "dest": "buy_amount"},
    {"trigger": "amount_entered", "source": "buy_amount", "dest": "buy_down", "conditions": refused_while_down},
    {"trigger": "amount_entered", "source": "buy_amount", "dest": "buy_quote"},
    {"trigger": "choose_payer", "source": "buy_quote", "dest": "payer"},
]

ORDER_MAX = 10_000_000  # the largest order amount (bills; purchases are capped lower by tariffs)
WORST: dict[str, Any] = {
    "meters": [{"meter": "0123456789012"}] * MAX_METERS,
    "meter": "0123456789012", "minimum": ORDER_MAX, "maximum": ORDER_MAX, "amount": ORDER_MAX, "offline": False,
    "flow": "units", "short_code": "123456789012",
    "quote": {"units": "99999.9", "unit": "kWh", "charges": [
        [code, ORDER_MAX] for code in ("fixed_fee", "debt_recovery", "municipal_tax", "vat", "service_charge", "energy")
    ]},
}
VARIANTS: list[dict[str, Any]] = [{"offline": True}]
