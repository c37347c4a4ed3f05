"""The screens: what each one shows and which inputs it accepts (as data), and rendering.

The menu machine (ussd.menu) moves a session between these screens; this module only
turns a session into the text the customer reads, in the session's language, within
one USSD screen (sms.gsm). Every text comes from the catalogue (ussd.catalogue).
"""
from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sms.gsm import USSD_GSM7_LIMIT, clip, fits_screen, gsm7_septets, to_gsm7
from sms.receipts import UTILITY_WIDTH, money, quantity
from state.sessions import Session
from ussd.catalogue import catalogue, languages, text
from utility.customers import Account

Kind = Literal["menu", "list", "input", "info", "end"]

NAME_WIDTH = 28  # septets of a customer name on a screen (CSV allows 60)
TITLE_WIDTH = UTILITY_WIDTH  # septets of the utility's name atop the main menu, as signed in the token SMS
QUOTE_WIDTH = 110  # septets of a quote's lines, leaving room for its options and a hint


@dataclass(frozen=True)
class Option:
    label: str  # catalogue key
    trigger: str  # machine trigger fired when the option is chosen
    args: tuple[tuple[str, Any], ...] = ()  # the trigger's keyword arguments
    label_lang: str = ""  # show the label in this language (each language in its own)
    # Offered only when this holds for the session: never offer what would be refused.
    when: Callable[[Session], bool] | None = None


@dataclass(frozen=True)
class ScreenSpec:
    kind: Kind  # menu: numbered options; list: paginated items; input: free text; info; end: closes
    title: str = ""  # catalogue key of the first line
    options: tuple[Option, ...] = ()
    items: str = ""  # list screens: the session.data key holding the items
    pick: str = ""  # list screens: trigger fired when an item is chosen...
    choice: str = ""  # ...with the chosen index as this keyword (kept in session.data)
    pick_hints: tuple[str, ...] = ()  # ...and what it may answer when the item is refused
    extra: tuple[Option, ...] = ()  # list screens: options numbered after the items
    accept: str = ""  # input screens: the Visit method that checks the input (returns a hint)...
    submit: str = ""  # ...and the trigger fired when it is accepted
    resumable: bool = True  # offered again on the next dial if the customer drops here


SCREENS: dict[str, ScreenSpec] = {
    "main": ScreenSpec(
        "menu",
        title="main.title",
        options=(
            Option("main.buy", "buy"),
            Option("main.pay", "pay_bill"),
            Option("main.account", "account_menu"),
            Option("main.language", "choose_language"),
        ),
        resumable=False,
    ),
    # -- buy prepaid units ----------------------------------------------------------------
    "buy_meter": ScreenSpec(
        "list", title="buy.title", items="meters", pick="pick_meter", choice="meter_index",
        pick_hints=("hint.meter_unknown",), extra=(Option("buy.other", "other_meter"),),
    ),
    "buy_meter_input": ScreenSpec("input", title="buy.meter_prompt", accept="accept_meter", submit="meter_entered"),
    "buy_blocked": ScreenSpec("end", resumable=False),
    # The meter and its holder stand above the amount: the customer checks them here.
    # A caller sent straight here (one meter) can still buy for another one: no amount
    # is as small as 1, so the option's number cannot be mistaken for an amount.
    "buy_amount": ScreenSpec("input", accept="accept_amount", submit="amount_entered", extra=(
        Option("buy.other", "other_meter", when=lambda session: session.history[-1:] == ["main"]
               and int(session.data.get("minimum") or 0) > 1),
    )),
    "buy_quote": ScreenSpec("menu", options=(Option("buy.pay", "choose_payer"),)),
    # -- pay a bill -----------------------------------------------------------------------
    "bill_account": ScreenSpec(
        "list", title="bill.title", items="bills", pick="pick_bill", choice="bill_index",
        extra=(Option("bill.other", "other_account"),),
    ),
    "bill_account_input": ScreenSpec("input", title="bill.account_prompt", accept="accept_account", submit="account_entered"),
    "bill_balance": ScreenSpec("menu", options=(
        Option("bill.all", "pay_all", when=lambda session: int(session.data.get("balance") or 0) > 0),
        # Paying ahead is offered only where the utility takes it as a credit.
        Option("bill.other_amount", "ask_bill_amount", when=lambda session: bool(session.data.get("can_pay_more"))
               or int(session.data.get("balance") or 0) > 0),
    )),
    "bill_amount": ScreenSpec("input", accept="accept_bill_amount", submit="bill_amount_entered"),
    # -- paying (both flows) ----------------------------------------------------------------
    "payer": ScreenSpec("menu", title="payer.title", options=(Option("payer.this", "payer_self"), Option("payer.other", "payer_other"))),
    "payer_input": ScreenSpec("input", title="payer.prompt", accept="accept_payer", submit="payer_entered"),
    "confirm": ScreenSpec("menu", options=(Option("confirm.yes", "confirm_order"), Option("confirm.no", "cancel"))),
    "order_placed": ScreenSpec("end", resumable=False),
    "payment_down": ScreenSpec("end", resumable=False),
    "cancelled": ScreenSpec("end", resumable=False),
    # -- my account -------------------------------------------------------------------------
    "account_menu": ScreenSpec(
        "menu",
        title="account_menu.title",
        options=(
            Option("account_menu.accounts", "my_accounts"),
            Option("account_menu.resend", "resend_token"),
            Option("account_menu.payments", "my_payments"),
        ),
    ),
    "accounts": ScreenSpec(
        "list", title="accounts.title", items="accounts", pick="pick_account", choice="account"
    ),
    "account": ScreenSpec("info"),
    "no_account": ScreenSpec("end", resumable=False),
    "resend_done": ScreenSpec("end", resumable=False),
    "too_many_requests": ScreenSpec("end", resumable=False),
    "payments": ScreenSpec(
        "list", title="payments.title", items="orders", pick="pick_payment", choice="payment"
    ),
    "no_payments": ScreenSpec("end", resumable=False),
    "payment": ScreenSpec("info"),
    # -- language, resume, goodbye ----------------------------------------------------------
    "language": ScreenSpec(
        "menu",
        title="language.title",
        options=tuple(
            Option("language_name", "set_language", (("lang", code),), label_lang=code)
            for code in languages()
        ),
    ),
    "resume": ScreenSpec(
        "menu",
        title="resume.title",
        options=(Option("resume.continue", "resume"), Option("resume.restart", "restart")),
        resumable=False,
    ),
    "too_many_invalid": ScreenSpec("end", resumable=False),
}

# Screens where `0` and `00` are not navigation (there is nowhere to go back to).
TOP_LEVEL = frozenset({"main", "resume"})


@dataclass(frozen=True)
class Screen:
    text: str
    end: bool

    def to_cache(self) -> str:
        return ("E" if self.end else "C") + self.text

    @classmethod
    def from_cache(cls, raw: str) -> Screen:
        return cls(raw[1:], raw[0] == "E")


@dataclass(frozen=True)
class Context:
    """What rendering needs besides the session."""

    utility: str  # the utility's name, the main menu's title
    service_code: str  # the code the customer dialled, to tell them how to come back
    today: datetime.date  # in the utility's time zone: is a bill overdue?
    banner: str = ""  # a notice line for the main menu (incidents, later)


# -- account data kept in the session -------------------------------------------------
def account_item(account: Account) -> dict[str, Any]:
    """What the session keeps of an account while the customer looks at it."""
    return {
        "number": account.account_number,
        "meter": account.meter_number,
        "name": account.name,
        "tariff": account.tariff,
        "region": account.region,
        "balance": account.balance_due,
        "due": account.due_date.isoformat() if account.due_date else "",
    }


class Spare(str):
    """A line a screen can do without: dropped, spares first, when worst-case data (the
    longest names and numbers, a hint above) would not fit one screen otherwise."""


def holder(name: str) -> Spare:
    """A holder's name as every screen shows it: in full, as the customer base holds it
    (cut at NAME_WIDTH). It is how a customer checks a meter or an account is the one they
    mean before paying, as Mobile Money shows a payee's name. Spare: the number it goes
    with is what must be checked, and always stays."""
    return Spare(clip(to_gsm7(name), NAME_WIDTH))


def _date(iso: str) -> str:
    return datetime.date.fromisoformat(iso).strftime("%d/%m/%Y")


def _overdue(due: str, ctx: Context) -> bool:
    return bool(due) and datetime.date.fromisoformat(due) < ctx.today


def _due_line(lang: str, balance: int, due: str, ctx: Context) -> list[str]:
    """When a balance is due: by when, or since when it is late and what that means."""
    if balance <= 0 or not due:
        return []
    key = "bill.overdue" if _overdue(due, ctx) else "bill.due"
    return [text(lang, key, due=_date(due))]


def _meter_label(lang: str, item: dict[str, Any]) -> str:
    return text(lang, "buy.item", number=item["meter"])


def _bill_label(lang: str, item: dict[str, Any]) -> str:
    return text(lang, "bill.item", number=item["number"])


def _account_label(lang: str, item: dict[str, Any]) -> str:
    if item["meter"]:
        return text(lang, "accounts.item_prepaid", number=item["meter"])
    return text(lang, "accounts.item_postpaid", number=item["number"])


def _payment_label(lang: str, item: dict[str, Any]) -> str:
    # Short enough for three a page; the meter or account is on the payment's own screen.
    what = text(lang, "payments.units" if item["kind"] == "units" else "payments.bill")
    return text(lang, "payments.item", date=item["at"][:5], what=what,
                amount=money(lang, item["amount"]), state=_order_word(lang, item))


def _tariff(lang: str, code: str) -> list[str]:
    """The tariff in the customer's words; a code the catalogue does not name is not shown
    (an internal code such as "prepaid" means nothing to a customer)."""
    key = f"tariff.{code}"
    return [text(lang, "accounts.tariff", tariff=text(lang, key))] if key in catalogue(lang) else []


def _account_detail(lang: str, item: dict[str, Any], ctx: Context) -> list[str]:
    name = holder(item["name"])
    if item["meter"]:
        return [
            text(lang, "accounts.prepaid", number=item["meter"]), name,
            *_tariff(lang, item["tariff"]),
            text(lang, "accounts.region", region=clip(to_gsm7(item["region"]), NAME_WIDTH)),
        ]
    return [
        text(lang, "accounts.postpaid", number=item["number"]), name,
        *_balance_lines(lang, int(item["balance"]), item["due"], ctx),
    ]


def _balance_lines(lang: str, balance: int, due: str, ctx: Context) -> list[str]:
    if balance <= 0:
        return [text(lang, "bill.nothing_due")]
    return [text(lang, "bill.balance", balance=money(lang, balance)), *_due_line(lang, balance, due, ctx)]


# -- bodies of info and end screens -----------------------------------------------------
def _current_account(session: Session, ctx: Context) -> list[str]:
    return _account_detail(session.lang, session.data["accounts"][session.data.get("account", 0)], ctx)


def _no_account(session: Session, ctx: Context) -> str:
    return text(session.lang, "accounts.none", phone=session.phone)


def _too_many_invalid(session: Session, ctx: Context) -> str:
    if not ctx.service_code.startswith("*"):  # a gateway's service id (Hubtel app): no code to dial
        return text(session.lang, "end.invalid_no_code")
    return text(session.lang, "end.invalid", code=ctx.service_code)


def _meter_lines(session: Session) -> list[str]:
    data = session.data
    return [text(session.lang, "buy.meter", number=data["meter"]), holder(data["meter_name"])]


def _amount_prompt(session: Session, ctx: Context) -> list[str]:
    lang, data = session.lang, session.data
    limits = {"minimum": money(lang, data["minimum"]), "maximum": money(lang, data["maximum"])}
    if session.state == "buy_amount":
        return [*_meter_lines(session), text(lang, "buy.amount_prompt", **limits)]
    balance = int(data["balance"])  # what is due, to type an amount against
    due = [text(lang, "bill.balance", balance=money(lang, balance))] if balance > 0 else []
    return [*due, text(lang, "bill.amount_prompt", **limits)]


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
    if _septets([headline, itemised]) <= QUOTE_WIDTH:
        return "\n".join([headline, itemised])
    # Too many deductions to list on one screen: their total here, the detail on the SMS receipt.
    total = text(lang, "buy.quote_charges_total", amount=money(lang, sum(amount for _, amount in charges)))
    return "\n".join([headline, total])


def _bill_holder(session: Session) -> list[str]:
    data = session.data
    return [text(session.lang, "bill.account", number=data["account_no"]), holder(data.get("account_name", ""))]


def _bill_balance(session: Session, ctx: Context) -> list[str]:
    data = session.data
    return [*_bill_holder(session), *_balance_lines(session.lang, int(data["balance"]), data.get("due", ""), ctx)]


def _confirm(session: Session, ctx: Context) -> list[str]:
    data, lang = session.data, session.lang
    amount = int(data["amount"])
    if data["flow"] == "units":
        lines = [text(lang, "confirm.units", amount=money(lang, amount)), *_meter_lines(session)]
    else:
        lines = [text(lang, "confirm.bill", amount=money(lang, amount)), *_bill_holder(session)]
        ahead = amount - max(int(data["balance"]), 0)
        if ahead > 0:  # more than is due: the rest stays on the account (the utility's rule)
            lines.append(text(lang, "confirm.credit", credit=money(lang, ahead)))
    return [*lines, text(lang, "confirm.payer", payer=data["payer"])]


def _order_placed(session: Session, ctx: Context) -> str:
    data, lang = session.data, session.lang
    key = "confirm.placed_units" if data["flow"] == "units" else "confirm.placed"
    if data["payer"] != session.phone:
        # The approval request rings another phone: say which, in full, so the customer
        # knows whom to ask (their own handset will show nothing).
        return text(lang, key + "_other", amount=money(lang, data["amount"]), reference=data["order_ref"],
                    payer=data["payer"])
    return text(lang, key, amount=money(lang, data["amount"]), reference=data["order_ref"])


def _paid_for(lang: str, order: dict[str, Any]) -> str:
    return text(lang, "payments.units_for" if order["kind"] == "units" else "payments.bill_for", number=order["target"])


def _order_word(lang: str, order: dict[str, Any]) -> str:
    """An order's state in the customer's words: under way, delivered (or paid), failed."""
    if order["state"] in ("declined", "expired", "failed"):
        return text(lang, "payments.failed")
    if order["state"] in ("fulfilled", "receipt_sent"):
        return text(lang, "payments.delivered" if order["kind"] == "units" else "payments.paid")
    return text(lang, "payments.pending")


def _payment(session: Session, ctx: Context) -> str:
    lang, order = session.lang, session.data["orders"][session.data.get("payment", 0)]
    return text(lang, "payments.detail", reference=order["reference"], at=order["at"], what=_paid_for(lang, order),
                amount=money(lang, order["amount"]), state=_order_word(lang, order))


def _resend_done(session: Session, ctx: Context) -> str:
    key = "account_menu.resent" if session.data.get("resent") == "sent" else "account_menu.nothing_to_resend"
    return text(session.lang, key)


def _too_many_requests(session: Session, ctx: Context) -> str:
    """A per-phone limit was reached (state.limits): when to try again, nothing done."""
    key = "limits.resend" if session.data.get("resent") == "limited" else "limits.order"
    return text(session.lang, key, minutes=session.data.get("retry_minutes", 1))


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


def _fixed(key: str) -> Callable[[Session, Context], str]:
    return lambda session, ctx: text(session.lang, key)


BODIES: dict[str, Callable[[Session, Context], str | list[str]]] = {
    "account": _current_account,
    "no_account": _no_account,
    "too_many_invalid": _too_many_invalid,
    "buy_blocked": _fixed("buy.blocked"),
    "buy_amount": _amount_prompt,
    "buy_quote": _quote,
    "bill_balance": _bill_balance,
    "bill_amount": _amount_prompt,
    "confirm": _confirm,
    "order_placed": _order_placed,
    "payment_down": _fixed("confirm.payment_down"),
    "cancelled": _fixed("confirm.cancelled"),
    "no_payments": _fixed("payments.none"),
    "payment": _payment,
    "resend_done": _resend_done,
    "too_many_requests": _too_many_requests,
    "resume": _resume,
}


LABELS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "accounts": _account_label,
    "meters": _meter_label,
    "bills": _bill_label,
    "orders": _payment_label,
}


# -- composition ------------------------------------------------------------------------
def _septets(lines: list[str]) -> int:
    return gsm7_septets("\n".join(lines)) or 0


def _nav(session: Session) -> list[str]:
    if session.state in TOP_LEVEL:
        return []
    return [text(session.lang, "nav.back"), text(session.lang, "nav.home")]


# What may stand above any list: a refused choice, no further page; each list adds its
# pick_hints (the fit test renders every list with each of them).
LIST_HINTS = ("hint.choice", "hint.no_more", "hint.at_home")


def _longest_head(lang: str, spec: ScreenSpec) -> str:
    return max((text(lang, key) for key in LIST_HINTS + spec.pick_hints), key=len)


def list_pages(session: Session) -> list[list[int]]:
    """The item indexes on each page of a list screen.

    Pages are packed greedily against the worst case (a hint or notice, a "more" line), so
    they stay the same from hop to hop whatever the customer typed.
    """
    spec = SCREENS[session.state]
    lang = session.lang
    label = LABELS[spec.items]
    lines = [f"{n}. {label(lang, item)}" for n, item in enumerate(session.data[spec.items], 1)]
    fixed = [_longest_head(lang, spec), text(lang, spec.title), text(lang, "nav.more"), *_extra_lines(session), *_nav(session)]
    budget = USSD_GSM7_LIMIT - _septets(fixed) - 1  # -1: the newline before the items
    pages: list[list[int]] = [[]]
    used = 0
    for index, line in enumerate(lines):
        cost = _septets([line]) + 1
        if pages[-1] and used + cost > budget:
            pages.append([])
            used = 0
        pages[-1].append(index)
        used += cost
    return pages


def _extra_lines(session: Session) -> list[str]:
    spec = SCREENS[session.state]
    first = len(session.data[spec.items]) + 1
    return [f"{first + n}. {text(session.lang, option.label)}" for n, option in enumerate(spec.extra)]


def offered(spec: ScreenSpec, session: Session) -> tuple[Option, ...]:
    """The options of a menu screen (or the extras of an input screen) this session is
    offered, numbered in this order."""
    options = spec.extra if spec.kind == "input" else spec.options
    return tuple(option for option in options if option.when is None or option.when(session))


def current_page(session: Session) -> int:
    return int(session.data.get("pages", {}).get(session.state, 0))


def _body_lines(session: Session, ctx: Context) -> list[str]:
    spec = SCREENS[session.state]
    lang = session.lang
    if spec.kind == "menu":
        lines = _head_lines(session, ctx)
        values = {"number": session.phone}  # options that name the caller's number
        for n, option in enumerate(offered(spec, session), 1):
            lines.append(f"{n}. {text(option.label_lang or lang, option.label, **values)}")
        return lines + _nav(session)
    if spec.kind == "list":
        pages = list_pages(session)
        page = min(current_page(session), len(pages) - 1)
        items = session.data[spec.items]
        label = LABELS[spec.items]
        lines = [text(lang, spec.title)]
        lines += [f"{i + 1}. {label(lang, items[i])}" for i in pages[page]]
        if page + 1 < len(pages):
            lines.append(text(lang, "nav.more"))
        else:
            lines += _extra_lines(session)  # "another meter" comes after the last item
        return lines + _nav(session)
    lines = _head_lines(session, ctx)
    if spec.kind == "input":
        lines += [f"{n}. {text(lang, option.label)}" for n, option in enumerate(offered(spec, session), 1)]
    return lines + (_nav(session) if spec.kind in ("info", "input") else [])


def _head_lines(session: Session, ctx: Context) -> list[str]:
    """The lines above a screen's options: its body when it has one, else its title."""
    body = BODIES.get(session.state)
    if body is not None:
        lines = body(session, ctx)
        return [lines] if isinstance(lines, str) else lines
    return [text(session.lang, SCREENS[session.state].title, utility=clip(to_gsm7(ctx.utility), TITLE_WIDTH))]


def render(session: Session, ctx: Context) -> Screen:
    spec = SCREENS[session.state]
    lines = _body_lines(session, ctx)
    # One line above the screen at most: why the last input was refused, else a notice.
    hint_values = session.data.get("hint_values", {})
    head = [text(session.lang, key, **hint_values) for key in [session.hint or session.notice] if key]
    if session.state == "main" and ctx.banner:
        room = USSD_GSM7_LIMIT - _septets(head + lines) - 1
        if room > 10:
            head.insert(0, clip(to_gsm7(ctx.banner), room, ".."))
    screen_text = "\n".join(head + lines)
    while not fits_screen(screen_text) and any(isinstance(line, Spare) for line in lines):
        lines.remove(next(line for line in lines if isinstance(line, Spare)))
        screen_text = "\n".join(head + lines)
    if not fits_screen(screen_text):
        # Worst-case data is tested to fit; this guards against data nobody foresaw.
        screen_text = clip(to_gsm7(screen_text), USSD_GSM7_LIMIT, "..")
    return Screen(screen_text, end=spec.kind == "end")
