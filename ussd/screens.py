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
from state.sessions import Session
from ussd.catalogue import catalogue, languages, text
from utility.customers import Account, mask_tail

Kind = Literal["menu", "list", "input", "info", "end"]

NAME_WIDTH = 28  # septets of a customer name on a screen (CSV allows 60)
TITLE_WIDTH = 24  # septets of the utility's name atop the main menu
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
    extra: tuple[Option, ...] = ()  # list screens: options numbered after the items
    accept: str = ""  # input screens: the Visit method that checks the input (returns a hint)...
    submit: str = ""  # ...and the trigger fired when it is accepted
    resumable: bool = True  # offered again on the next dial if the customer drops here


def _soon(feature: str) -> Option:
    return Option(feature, "soon", (("feature", feature),))


SCREENS: dict[str, ScreenSpec] = {
    "main": ScreenSpec(
        "menu",
        title="main.title",
        options=(
            Option("main.buy", "buy"),
            Option("main.pay", "pay_bill"),
            _soon("main.campaigns"),
            _soon("main.incidents"),
            Option("main.account", "account_menu"),
            Option("main.language", "choose_language"),
        ),
        resumable=False,
    ),
    "unavailable": ScreenSpec("end", resumable=False),
    # -- buy prepaid units ----------------------------------------------------------------
    "buy_meter": ScreenSpec(
        "list", title="buy.title", items="meters", pick="pick_meter", choice="meter_index",
        extra=(Option("buy.other", "other_meter"),),
    ),
    "buy_meter_input": ScreenSpec("input", title="buy.meter_prompt", accept="accept_meter", submit="meter_entered"),
    "buy_meter_ok": ScreenSpec("menu", options=(Option("buy.continue", "ask_amount"),)),
    "buy_blocked": ScreenSpec("end", resumable=False),
    "buy_amount": ScreenSpec("input", accept="accept_amount", submit="amount_entered"),
    "buy_quote": ScreenSpec("menu", options=(Option("buy.pay", "choose_payer"),)),
    # -- pay a bill -----------------------------------------------------------------------
    "bill_account": ScreenSpec(
        "list", title="bill.title", items="bills", pick="pick_bill", choice="bill_index",
        extra=(Option("bill.other", "other_account"),),
    ),
    "bill_account_input": ScreenSpec("input", title="bill.account_prompt", accept="accept_account", submit="account_entered"),
    "bill_balance": ScreenSpec("menu", options=(
        Option("bill.all", "pay_all", when=lambda session: int(session.data.get("balance") or 0) > 0),
        Option("bill.other_amount", "ask_bill_amount"),
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
    "payments": ScreenSpec("info"),
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


def money(amount: int) -> str:
    return f"{amount:,}".replace(",", " ")


def _date(iso: str) -> str:
    return datetime.date.fromisoformat(iso).strftime("%d/%m/%Y")


def _meter_label(lang: str, item: dict[str, Any]) -> str:
    return text(lang, "buy.item", number=mask_tail(item["meter"]))


def _bill_label(lang: str, item: dict[str, Any]) -> str:
    return text(lang, "bill.item", number=mask_tail(item["number"]))


def _account_label(lang: str, item: dict[str, Any]) -> str:
    if item["meter"]:
        return text(lang, "accounts.item_prepaid", number=mask_tail(item["meter"]))
    return text(lang, "accounts.item_postpaid", number=mask_tail(item["number"]))


def _account_detail(lang: str, item: dict[str, Any]) -> str:
    name = clip(to_gsm7(item["name"]), NAME_WIDTH)
    if item["meter"]:
        return text(
            lang,
            "accounts.prepaid",
            number=mask_tail(item["meter"]),
            name=name,
            tariff=to_gsm7(item["tariff"]),
            region=clip(to_gsm7(item["region"]), NAME_WIDTH),
        )
    values = {"number": mask_tail(item["number"]), "name": name, "balance": money(item["balance"])}
    if item["balance"] <= 0:
        return text(lang, "accounts.postpaid_clear", **values)
    if item["due"]:
        return text(lang, "accounts.postpaid_due", due=_date(item["due"]), **values)
    return text(lang, "accounts.postpaid_due_undated", **values)


# -- bodies of info and end screens -----------------------------------------------------
def _current_account(session: Session, ctx: Context) -> str:
    return _account_detail(session.lang, session.data["accounts"][session.data.get("account", 0)])


def _unavailable(session: Session, ctx: Context) -> str:
    return text(session.lang, "unavailable.body", feature=text(session.lang, session.data["feature"]))


def _no_account(session: Session, ctx: Context) -> str:
    return text(session.lang, "accounts.none", phone=session.phone)


def _too_many_invalid(session: Session, ctx: Context) -> str:
    if not ctx.service_code.startswith("*"):  # a gateway's service id (Hubtel app): no code to dial
        return text(session.lang, "end.invalid_no_code")
    return text(session.lang, "end.invalid", code=ctx.service_code)


def masked_name(name: str) -> str:
    """"Jean Mbarga" -> "Je** Mb****": enough for the customer to recognise, not to learn."""
    words = to_gsm7(name).split()[:3]
    return clip(" ".join(w[:2] + "*" * max(len(w) - 2, 0) for w in words), NAME_WIDTH)


def _units(lang: str, units: str) -> str:
    """"48.90" -> "48,9" in French, "48.9" in English; whole units without decimals."""
    if "." in units:
        units = units.rstrip("0").rstrip(".")
    return units.replace(".", text(lang, "decimal_separator"))


def _meter_ok(session: Session, ctx: Context) -> str:
    data = session.data
    return text(session.lang, "buy.meter", number=mask_tail(data["meter"]), name=masked_name(data["meter_name"]))


def _amount_prompt(session: Session, ctx: Context) -> str:
    key = "buy.amount_prompt" if session.state == "buy_amount" else "bill.amount_prompt"
    return text(session.lang, key, minimum=money(session.data["minimum"]), maximum=money(session.data["maximum"]))


def _quote(session: Session, ctx: Context) -> str:
    data, lang = session.data, session.lang
    if data.get("offline"):
        return text(lang, "buy.offline", amount=money(data["amount"]))
    quote = data["quote"]
    headline = text(lang, "buy.quote", amount=money(data["amount"]), units=_units(lang, quote["units"]), unit=quote["unit"])
    charges = [(code, amount) for code, amount in quote["charges"] if code != "energy" and amount]
    if not charges:
        return headline
    # "Dont ...": what the amount already includes, in the words and the order of the SMS
    # receipt, the currency said once at the end.
    itemised = text(lang, "buy.quote_included", charges=", ".join(
        text(lang, "buy.quote_charge", label=text(lang, f"charge.{code}"), amount=money(amount))
        for code, amount in charges))
    if _septets([headline, itemised]) <= QUOTE_WIDTH:
        return "\n".join([headline, itemised])
    # Too many deductions to list on one screen: their total here, the detail on the SMS receipt.
    total = text(lang, "buy.quote_charges_total", amount=money(sum(amount for _, amount in charges)))
    return "\n".join([headline, total])


def _bill_balance(session: Session, ctx: Context) -> str:
    data, lang = session.data, session.lang
    values = {"number": mask_tail(data["account_no"]), "balance": money(data["balance"])}
    if data["balance"] <= 0:
        return text(lang, "bill.nothing_due", **values)
    if data.get("due"):
        return text(lang, "bill.balance_due", due=_date(data["due"]), **values)
    return text(lang, "bill.balance", **values)


def _confirm(session: Session, ctx: Context) -> str:
    data = session.data
    units = data["flow"] == "units"
    return text(
        session.lang,
        "confirm.units" if units else "confirm.bill",
        amount=money(data["amount"]),
        number=mask_tail(data["meter"] if units else data["account_no"]),
        payer=mask_tail(data["payer"]),
    )


def _order_placed(session: Session, ctx: Context) -> str:
    data = session.data
    key = "confirm.placed_units" if data["flow"] == "units" else "confirm.placed"
    if data["payer"] != session.phone:
        # The approval request rings another phone: say which, in full, so the customer
        # knows whom to ask (their own handset will show nothing).
        return text(session.lang, key + "_other", amount=money(data["amount"]), reference=data["order_ref"],
                    payer=data["payer"])
    return text(session.lang, key, amount=money(data["amount"]), reference=data["order_ref"])


def _payments(session: Session, ctx: Context) -> str:
    lang, orders = session.lang, session.data.get("orders", [])
    if not orders:
        return text(lang, "account_menu.no_payments")
    lines = [text(lang, "account_menu.payments_title")]
    lines += [
        text(lang, "account_menu.payment_line", reference=o["reference"], amount=money(o["amount"]),
             state=text(lang, f"order_state.{o['state']}"))
        for o in orders
    ]
    return "\n".join(lines)


def _resend_done(session: Session, ctx: Context) -> str:
    key = "account_menu.resent" if session.data.get("resent") == "sent" else "account_menu.nothing_to_resend"
    return text(session.lang, key)


def _too_many_requests(session: Session, ctx: Context) -> str:
    """A per-phone limit was reached (state.limits): when to try again, nothing done."""
    key = "limits.resend" if session.data.get("resent") == "limited" else "limits.order"
    return text(session.lang, key, minutes=session.data.get("retry_minutes", 1))


def _fixed(key: str) -> Callable[[Session, Context], str]:
    return lambda session, ctx: text(session.lang, key)


BODIES: dict[str, Callable[[Session, Context], str]] = {
    "account": _current_account,
    "unavailable": _unavailable,
    "no_account": _no_account,
    "too_many_invalid": _too_many_invalid,
    "buy_meter_ok": _meter_ok,
    "buy_blocked": _fixed("buy.blocked"),
    "buy_amount": _amount_prompt,
    "buy_quote": _quote,
    "bill_balance": _bill_balance,
    "bill_amount": _amount_prompt,
    "confirm": _confirm,
    "order_placed": _order_placed,
    "payment_down": _fixed("confirm.payment_down"),
    "cancelled": _fixed("confirm.cancelled"),
    "payments": _payments,
    "resend_done": _resend_done,
    "too_many_requests": _too_many_requests,
}


LABELS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "accounts": _account_label,
    "meters": _meter_label,
    "bills": _bill_label,
}


# -- composition ------------------------------------------------------------------------
def _septets(lines: list[str]) -> int:
    return gsm7_septets("\n".join(lines)) or 0


def _nav(session: Session) -> list[str]:
    if session.state in TOP_LEVEL:
        return []
    return [text(session.lang, "nav.back"), text(session.lang, "nav.home")]


# Catalogue keys that may stand above a screen (Session.notice); hints are all "hint.*".
NOTICES = ("language.saved",)


def _longest_head(lang: str) -> str:
    texts = catalogue(lang)
    heads = [value for key, value in texts.items() if key.startswith("hint.")]
    return max(heads + [texts[key] for key in NOTICES], key=len)


def list_pages(session: Session) -> list[list[int]]:
    """The item indexes on each page of a list screen.

    Pages are packed greedily against the worst case (a hint or notice, a "more" line), so
    they stay the same from hop to hop whatever the customer typed.
    """
    spec = SCREENS[session.state]
    lang = session.lang
    label = LABELS[spec.items]
    lines = [f"{n}. {label(lang, item)}" for n, item in enumerate(session.data[spec.items], 1)]
    fixed = [_longest_head(lang), text(lang, spec.title), text(lang, "nav.more"), *_extra_lines(session), *_nav(session)]
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
    """The options of a menu screen this session is offered, numbered in this order."""
    return tuple(option for option in spec.options if option.when is None or option.when(session))


def current_page(session: Session) -> int:
    return int(session.data.get("pages", {}).get(session.state, 0))


def _body_lines(session: Session, ctx: Context) -> list[str]:
    spec = SCREENS[session.state]
    lang = session.lang
    if spec.kind == "menu":
        lines = [_head_text(session, ctx)]
        values = {"number": mask_tail(session.phone)}  # options that name the caller's number
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
    return [_head_text(session, ctx)] + (_nav(session) if spec.kind in ("info", "input") else [])


def _head_text(session: Session, ctx: Context) -> str:
    """The text above a screen's options: its body when it has one, else its title."""
    body = BODIES.get(session.state)
    if body is not None:
        return body(session, ctx)
    return text(session.lang, SCREENS[session.state].title, utility=clip(to_gsm7(ctx.utility), TITLE_WIDTH))


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
    if not fits_screen(screen_text):
        # Worst-case data is tested to fit; this guards against data nobody foresaw.
        screen_text = clip(to_gsm7(screen_text), USSD_GSM7_LIMIT, "..")
    return Screen(screen_text, end=spec.kind == "end")
