"""Paying a postpaid bill: which account, what is due (and whether it is late), how much;
then paying (ussd.flows.pay).

dial -> 2 -> (the caller's accounts, or a number typed) -> balance -> all, or an amount
within the utility's rule (utility.billing.BillRules) -> pay.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transitions import EventData

from sms.receipts import money
from state.sessions import Session
from ussd.catalogue import text
from ussd.flows.pay import amount_typed, target_lines
from ussd.screens import Context, Option, ScreenSpec, account_item, balance_lines, visit_of
from utility.orders import BILL

if TYPE_CHECKING:
    from ussd.menu import Visit
    from utility.services import Services

ENTRY = Option("main.pay", "pay_bill")

MAX_BILLS = 3  # accounts offered by number before "another one"


# -- what the screens say -------------------------------------------------------------------
def _bill_label(lang: str, item: dict[str, Any]) -> str:
    return text(lang, "bill.item", number=item["number"])


def _bill_balance(session: Session, ctx: Context) -> list[str]:
    data = session.data
    return [*target_lines(session),
            *balance_lines(session.lang, int(data["balance"]), data.get("due", ""), ctx, bool(data.get("waived")))]


def _amount_prompt(session: Session, ctx: Context) -> list[str]:
    lang, data = session.lang, session.data
    balance = int(data["balance"])  # what is due, to type an amount against
    due = [text(lang, "bill.balance", balance=money(lang, balance))] if balance > 0 else []
    return [*due, text(lang, "bill.amount_prompt", minimum=money(lang, data["minimum"]),
                       maximum=money(lang, data["maximum"]))]


def _something_due(session: Session, services: Services) -> bool:
    return int(session.data.get("balance") or 0) > 0


def _some_amount_taken(session: Session, services: Services) -> bool:
    # Paying ahead is offered only where the utility takes it as a credit.
    return bool(session.data.get("can_pay_more")) or _something_due(session, services)


# -- steps ----------------------------------------------------------------------------------
def load_bills(event: EventData) -> None:
    visit = visit_of(event)
    if "bills" in visit.session.data:
        return
    accounts = visit.services.customers.accounts_for_phone(visit.session.phone)
    visit.session.data["bills"] = [account_item(a) for a in accounts if not a.prepaid][:MAX_BILLS]


def has_bills(event: EventData) -> bool:
    return bool(visit_of(event).session.data["bills"])


def take_picked_bill(event: EventData) -> None:
    visit = visit_of(event)
    _take_bill(visit, visit.session.data["bills"][event.kwargs["bill_index"]])


def _take_bill(visit: Visit, item: dict[str, Any]) -> None:
    services = visit.services
    visit.session.data.update(flow=BILL, account_no=item["number"], account_name=item["name"],
                              balance=item["balance"], due=item["due"],
                              can_pay_more=services.bill_rules.bounds(int(item["balance"])) is not None,
                              # From in-process copies: what the screens say, for no round trip.
                              waived=services.incidents.penalties_waived(item["region"], services.now()),
                              posted_later=services.billing_out())


def accept_account(visit: Visit, value: str) -> str | None:
    accounts = [a for a in visit.services.customers.accounts_typed(value) if not a.prepaid]
    if not accounts:
        return "hint.account_unknown"
    if len(accounts) > 1:
        return "hint.account_ambiguous"  # the same digits under two prefixes: type the prefix too
    _take_bill(visit, account_item(accounts[0]))
    return None


def has_balance(event: EventData) -> bool:
    return int(visit_of(event).session.data["balance"]) > 0


def take_balance(event: EventData) -> None:
    data = visit_of(event).session.data
    data["amount"] = int(data["balance"])


def bill_limits(event: EventData) -> None:
    visit = visit_of(event)
    bounds = visit.services.bill_rules.bounds(int(visit.session.data["balance"]))
    assert bounds is not None  # "another amount" is offered only when some is taken
    visit.session.data.update(minimum=bounds[0], maximum=bounds[1])


def accept_bill_amount(visit: Visit, value: str) -> str | None:
    amount, hint = amount_typed(visit, value)
    if hint:
        return hint
    visit.session.data["amount"] = amount
    return None


SCREENS: dict[str, ScreenSpec] = {
    "bill_account": ScreenSpec(
        "list", title="bill.title", items="bills", label=_bill_label, pick="pick_bill", choice="bill_index",
        extra=(Option("bill.other", "other_account"),),
    ),
    "bill_account_input": ScreenSpec("input", title="bill.account_prompt", accept=accept_account,
                                     submit="account_entered"),
    "bill_balance": ScreenSpec("menu", body=_bill_balance, options=(
        Option("bill.all", "pay_all", when=_something_due),
        Option("bill.other_amount", "ask_bill_amount", when=_some_amount_taken),
    )),
    "bill_amount": ScreenSpec("input", body=_amount_prompt, accept=accept_bill_amount, submit="bill_amount_entered"),
}

EDGES: list[dict[str, Any]] = [
    {"trigger": "pay_bill", "source": "main", "dest": "bill_account", "prepare": load_bills, "conditions": has_bills},
    {"trigger": "pay_bill", "source": "main", "dest": "bill_account_input"},
    {"trigger": "pick_bill", "source": "bill_account", "dest": "bill_balance", "before": take_picked_bill},
    {"trigger": "other_account", "source": "bill_account", "dest": "bill_account_input"},
    {"trigger": "account_entered", "source": "bill_account_input", "dest": "bill_balance"},
    {"trigger": "pay_all", "source": "bill_balance", "dest": "payer", "conditions": has_balance,
     "before": take_balance},
    {"trigger": "ask_bill_amount", "source": "bill_balance", "dest": "bill_amount", "before": bill_limits},
    {"trigger": "bill_amount_entered", "source": "bill_amount", "dest": "payer"},
]

BIG = 999_999_999  # the largest balance the customer CSV accepts
WORST_ACCOUNT: dict[str, Any] = {
    "number": "ABCDEFGHIJKLMNOPQRS9",  # 20 characters, the longest the CSV allows
    "meter": "",
    "name": "Mbarga Ondoua Ngono Jean-Baptiste Marie-Claire Epse Nkoulou"[:60] + "ôëœ",  # non-GSM: must not cut to 80
    "tariff": "t" * 20,
    "region": "R" * 40,
    "balance": BIG,
    "due": "2026-12-31",
}
WORST: dict[str, Any] = {
    "bills": [WORST_ACCOUNT] * MAX_BILLS,
    "account_no": WORST_ACCOUNT["number"], "account_name": WORST_ACCOUNT["name"], "balance": BIG, "due": "2026-12-31",
    "can_pay_more": True,
}
VARIANTS: list[dict[str, Any]] = [{"flow": "bill"}, {"due": ""}, {"balance": 0}, {"due": "2000-01-01", "waived": True}]
