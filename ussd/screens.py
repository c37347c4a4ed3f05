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

Kind = Literal["menu", "list", "info", "end"]

NAME_WIDTH = 28  # septets of a customer name on a screen (CSV allows 60)
TITLE_WIDTH = 24  # septets of the utility's name atop the main menu


@dataclass(frozen=True)
class Option:
    label: str  # catalogue key
    trigger: str  # machine trigger fired when the option is chosen
    args: tuple[tuple[str, Any], ...] = ()  # the trigger's keyword arguments
    label_lang: str = ""  # show the label in this language (each language in its own)


@dataclass(frozen=True)
class ScreenSpec:
    kind: Kind  # menu: numbered options; list: paginated items; info: text; end: closes
    title: str = ""  # catalogue key of the first line
    options: tuple[Option, ...] = ()
    items: str = ""  # list screens: the session.data key holding the items
    pick: str = ""  # list screens: trigger fired when an item is chosen...
    choice: str = ""  # ...with the chosen index as this keyword (kept in session.data)
    resumable: bool = True  # offered again on the next dial if the customer drops here


def _soon(feature: str) -> Option:
    return Option(feature, "soon", (("feature", feature),))


SCREENS: dict[str, ScreenSpec] = {
    "main": ScreenSpec(
        "menu",
        title="main.title",
        options=(
            _soon("main.buy"),
            _soon("main.pay"),
            _soon("main.campaigns"),
            _soon("main.incidents"),
            Option("main.account", "my_accounts"),
            Option("main.language", "choose_language"),
        ),
        resumable=False,
    ),
    "unavailable": ScreenSpec("end", resumable=False),
    "accounts": ScreenSpec(
        "list", title="accounts.title", items="accounts", pick="pick_account", choice="account"
    ),
    "account": ScreenSpec("info"),
    "no_account": ScreenSpec("end", resumable=False),
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
    def from_cache(cls, raw: str) -> "Screen":
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


def _money(amount: int) -> str:
    return f"{amount:,}".replace(",", " ")


def _date(iso: str) -> str:
    return datetime.date.fromisoformat(iso).strftime("%d/%m/%Y")


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
    values = {"number": mask_tail(item["number"]), "name": name, "balance": _money(item["balance"])}
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
    return text(session.lang, "end.invalid", code=ctx.service_code)


BODIES: dict[str, Callable[[Session, Context], str]] = {
    "account": _current_account,
    "unavailable": _unavailable,
    "no_account": _no_account,
    "too_many_invalid": _too_many_invalid,
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
    lines = [f"{n}. {_account_label(lang, item)}" for n, item in enumerate(session.data[spec.items], 1)]
    fixed = [_longest_head(lang), text(lang, spec.title), text(lang, "nav.more"), *_nav(session)]
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


def current_page(session: Session) -> int:
    return int(session.data.get("pages", {}).get(session.state, 0))


def _body_lines(session: Session, ctx: Context) -> list[str]:
    spec = SCREENS[session.state]
    lang = session.lang
    if spec.kind == "menu":
        lines = [text(lang, spec.title, utility=clip(to_gsm7(ctx.utility), TITLE_WIDTH))]
        for n, option in enumerate(spec.options, 1):
            label = text(option.label_lang or lang, option.label)
            lines.append(f"{n}. {label}")
        return lines + _nav(session)
    if spec.kind == "list":
        pages = list_pages(session)
        page = min(current_page(session), len(pages) - 1)
        items = session.data[spec.items]
        lines = [text(lang, spec.title)]
        lines += [f"{i + 1}. {_account_label(lang, items[i])}" for i in pages[page]]
        if page + 1 < len(pages):
            lines.append(text(lang, "nav.more"))
        return lines + _nav(session)
    body = BODIES[session.state](session, ctx)
    return [body] + (_nav(session) if spec.kind == "info" else [])


def render(session: Session, ctx: Context) -> Screen:
    spec = SCREENS[session.state]
    lines = _body_lines(session, ctx)
    # One line above the screen at most: why the last input was refused, else a notice.
    head = [text(session.lang, key) for key in [session.hint or session.notice] if key]
    if session.state == "main" and ctx.banner:
        room = USSD_GSM7_LIMIT - _septets(head + lines) - 1
        if room > 10:
            head.insert(0, clip(to_gsm7(ctx.banner), room, ".."))
    screen_text = "\n".join(head + lines)
    if not fits_screen(screen_text):
        # Worst-case data is tested to fit; this guards against data nobody foresaw.
        screen_text = clip(to_gsm7(screen_text), USSD_GSM7_LIMIT, "..")
    return Screen(screen_text, end=spec.kind == "end")
