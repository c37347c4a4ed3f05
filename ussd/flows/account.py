"""My account: the caller's accounts (each in full, with its holder, tariff and what is
due), the last token sent again, and the caller's payments (date, what, amount, how it
went; each opens to its reference and time).
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from transitions import EventData

from sms.gsm import clip, to_gsm7
from sms.receipts import money
from state.limits import LimitReached
from state.sessions import Session
from ussd.catalogue import catalogue, text
from ussd.screens import NAME_WIDTH, Context, Option, ScreenSpec, account_item, balance_lines, holder, visit_of

if TYPE_CHECKING:
    pass

ENTRY = Option("main.account", "account_menu")

MAX_PAYMENTS = 10  # a caller's payments listed under "my payments", three or so a page


# -- what the screens say -------------------------------------------------------------------
def account_label(lang: str, item: dict[str, Any]) -> str:
    if item["meter"]:
        return text(lang, "accounts.item_prepaid", number=item["meter"])
    return text(lang, "accounts.item_postpaid", number=item["number"])


def _tariff(lang: str, code: str) -> list[str]:
    """The tariff in the customer's words; a code the catalogue does not name is not shown
    (an internal code such as "prepaid" means nothing to a customer)."""
    key = f"tariff.{code}"
    return [text(lang, "accounts.tariff", tariff=text(lang, key))] if key in catalogue(lang) else []


def _account(session: Session, ctx: Context) -> list[str]:
    lang, item = session.lang, session.data["accounts"][session.data.get("account", 0)]
    name = holder(item["name"])
    if item["meter"]:
        return [
            text(lang, "accounts.prepaid", number=item["meter"]), name,
            *_tariff(lang, item["tariff"]),
            text(lang, "accounts.region", region=clip(to_gsm7(item["region"]), NAME_WIDTH)),
        ]
    return [
        text(lang, "accounts.postpaid", number=item["number"]), name,
        *balance_lines(lang, int(item["balance"]), item["due"], ctx, _waived(item["region"], ctx)),
    ]


def _waived(region: str, ctx: Context) -> bool:
    """An incident in the region waives late-payment penalties now (a process copy: no round trip)."""
    services = ctx.services
    return services is not None and services.incidents.penalties_waived(region, services.now())


def _no_account(session: Session, ctx: Context) -> str:
    return text(session.lang, "accounts.none", phone=session.phone)


def _paid_for(lang: str, order: dict[str, Any]) -> str:
    return text(lang, "payments.units_for" if order["kind"] == "units" else "payments.bill_for", number=order["target"])


def _order_word(lang: str, order: dict[str, Any]) -> str:
    """An order's state in the customer's words: under way, delivered (or paid), failed."""
    if order["state"] in ("declined", "expired", "failed"):
        return text(lang, "payments.failed")
    if order["state"] in ("fulfilled", "receipt_sent"):
        return text(lang, "payments.delivered" if order["kind"] == "units" else "payments.paid")
    return text(lang, "payments.pending")


def _payment_label(lang: str, item: dict[str, Any]) -> str:
    # Short enough for three a page; the meter or account is on the payment's own screen.
    what = text(lang, "payments.units" if item["kind"] == "units" else "payments.bill")
    return text(lang, "payments.item", date=item["at"][:5], what=what, amount=money(lang, item["amount"]),
                state=_order_word(lang, item))


def _payment(session: Session, ctx: Context) -> str:
    lang, order = session.lang, session.data["orders"][session.data.get("payment", 0)]
    return text(lang, "payments.detail", reference=order["reference"], at=order["at"], what=_paid_for(lang, order),
                amount=money(lang, order["amount"]), state=_order_word(lang, order))


def _resend_done(session: Session, ctx: Context) -> str:
    key = "account_menu.resent" if session.data.get("resent") == "sent" else "account_menu.nothing_to_resend"
    return text(session.lang, key)


def _resend_limited(session: Session, ctx: Context) -> str:
    return text(session.lang, "limits.resend", minutes=session.data.get("retry_minutes", 1))


# -- steps ----------------------------------------------------------------------------------
def load_accounts(event: EventData) -> None:
    visit = visit_of(event)
    if "accounts" not in visit.loaded:
        accounts = visit.services.customers.accounts_for_phone(visit.session.phone)
        visit.session.data["accounts"] = [account_item(a) for a in accounts]
        visit.session.data["account"] = 0
        visit.loaded.add("accounts")


def has_no_account(event: EventData) -> bool:
    return not visit_of(event).session.data["accounts"]


def has_one_account(event: EventData) -> bool:
    return len(visit_of(event).session.data["accounts"]) == 1


def resend_last_token(event: EventData) -> None:
    visit = visit_of(event)
    data = visit.session.data
    try:
        data["resent"] = visit.services.orders.resend_last_tokens(visit.session.phone, visit.session.lang).outcome
    except LimitReached as limited:
        data.update(resent="limited", retry_minutes=limited.minutes)


def resend_limited(event: EventData) -> bool:
    return visit_of(event).session.data.get("resent") == "limited"


def load_payments(event: EventData) -> None:
    visit = visit_of(event)
    tz = visit.services.tz
    visit.session.data["orders"] = [
        {"reference": o.reference, "kind": o.kind, "target": o.target, "amount": o.amount, "state": o.state,
         "at": datetime.datetime.fromtimestamp(o.created_at, tz).strftime("%d/%m/%Y %H:%M")}
        for o in visit.services.orders.recent(visit.session.phone, count=MAX_PAYMENTS)
    ]


def has_no_payments(event: EventData) -> bool:
    return not visit_of(event).session.data["orders"]


SCREENS: dict[str, ScreenSpec] = {
    "account_menu": ScreenSpec("menu", title="account_menu.title", options=(
        Option("account_menu.accounts", "my_accounts"),
        Option("account_menu.resend", "resend_token"),
        Option("account_menu.payments", "my_payments"),
    )),
    "accounts": ScreenSpec("list", title="accounts.title", items="accounts", label=account_label,
                           pick="pick_account", choice="account"),
    "account": ScreenSpec("info", body=_account),
    "no_account": ScreenSpec("end", body=_no_account, resumable=False),
    "resend_done": ScreenSpec("end", body=_resend_done, resumable=False),
    "resend_limited": ScreenSpec("end", body=_resend_limited, resumable=False),
    "payments": ScreenSpec("list", title="payments.title", items="orders", label=_payment_label,
                           pick="pick_payment", choice="payment"),
    "no_payments": ScreenSpec("end", title="payments.none", resumable=False),
    "payment": ScreenSpec("info", body=_payment),
}

EDGES: list[dict[str, Any]] = [
    {"trigger": "account_menu", "source": "main", "dest": "account_menu"},
    {"trigger": "my_accounts", "source": "account_menu", "dest": "no_account", "prepare": load_accounts,
     "conditions": has_no_account},
    {"trigger": "my_accounts", "source": "account_menu", "dest": "account", "prepare": load_accounts,
     "conditions": has_one_account},
    {"trigger": "my_accounts", "source": "account_menu", "dest": "accounts", "prepare": load_accounts},
    {"trigger": "pick_account", "source": "accounts", "dest": "account"},
    {"trigger": "resend_token", "source": "account_menu", "dest": "resend_limited", "prepare": resend_last_token,
     "conditions": resend_limited},
    {"trigger": "resend_token", "source": "account_menu", "dest": "resend_done"},
    {"trigger": "my_payments", "source": "account_menu", "dest": "no_payments", "prepare": load_payments,
     "conditions": has_no_payments},
    {"trigger": "my_payments", "source": "account_menu", "dest": "payments"},
    {"trigger": "pick_payment", "source": "payments", "dest": "payment"},
]


def _worst_account(**changes: Any) -> dict[str, Any]:
    from ussd.flows.bill import WORST_ACCOUNT

    return {**WORST_ACCOUNT, **changes}


WORST_ORDER: dict[str, Any] = {"reference": "ABCDEFGH", "kind": "bill", "target": "ABCDEFGHIJKLMNOPQRS9",
                               "amount": 10_000_000, "state": "paid_awaiting_fulfilment", "at": "31/12/2026 23:59"}
WORST: dict[str, Any] = {
    "accounts": [_worst_account()] * 40, "account": 0,
    "orders": [WORST_ORDER] * MAX_PAYMENTS, "payment": MAX_PAYMENTS - 1,
    "resent": "sent", "retry_minutes": 1440,
}
VARIANTS: list[dict[str, Any]] = [
    {"accounts": [_worst_account(meter="0123456789012")] * 40},
    {"accounts": [_worst_account(meter="0123456789012", tariff="prepaid")] * 40},
    {"accounts": [_worst_account(due="")]},
    {"accounts": [_worst_account(balance=0)]},
    {"resent": "none"},
    {"orders": [{**WORST_ORDER, "kind": "units", "target": "0123456789012", "state": "fulfilled"}] * MAX_PAYMENTS},
]
