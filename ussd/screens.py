"""What a flow declares its screens with, and the helpers their texts share.

A screen is data (`ScreenSpec`): its kind, its title, its options or items, the callable
that writes its body, the one that checks what is typed on it. The flows (ussd.flows)
declare theirs; ussd.render turns a session into the text the customer reads and ussd.menu
moves sessions between screens. Every text comes from the catalogue (ussd.catalogue).
"""
from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from transitions import EventData

from sms.gsm import clip, to_gsm7
from sms.receipts import UTILITY_WIDTH, money
from state.sessions import Session
from ussd.catalogue import text
from utility.customers import Account

if TYPE_CHECKING:
    from ussd.menu import Visit
    from utility.services import Services

Kind = Literal["menu", "list", "input", "info", "end"]

NAME_WIDTH = 28  # septets of a customer name on a screen (CSV allows 60)
TITLE_WIDTH = UTILITY_WIDTH  # septets of the utility's name atop the main menu, as signed in the token SMS

Body = Callable[["Session", "Context"], "str | list[str]"]  # the lines above a screen's options
Label = Callable[[str, dict[str, Any]], str]  # (lang, item) -> one line of a list
Accept = Callable[["Visit", str], "str | None"]  # (visit, typed) -> None, or the hint saying why not


@dataclass(frozen=True)
class Option:
    label: str  # catalogue key
    trigger: str  # machine trigger fired when the option is chosen
    args: tuple[tuple[str, Any], ...] = ()  # the trigger's keyword arguments
    label_lang: str = ""  # show the label in this language (each language in its own)
    # Offered only when this holds for the session (and the domain services, to ask what
    # they know without a round trip): never offer what would be refused.
    when: Callable[[Session, Services], bool] | None = None


@dataclass(frozen=True)
class ScreenSpec:
    kind: Kind  # menu: numbered options; list: paginated items; input: free text; info; end: closes
    title: str = ""  # catalogue key of the first line (when there is no body)
    body: Body | None = None  # the lines above the options, from the session
    options: tuple[Option, ...] = ()
    items: str = ""  # list screens: the session.data key holding the items...
    label: Label | None = None  # ...and how each item reads
    pick: str = ""  # list screens: trigger fired when an item is chosen...
    choice: str = ""  # ...with the chosen index as this keyword (kept in session.data)
    pick_hints: tuple[str, ...] = ()  # ...and what it may answer when the item is refused
    extra: tuple[Option, ...] = ()  # list and input screens: options numbered after the items
    # Info screens: the session.data key of a text that may be longer than one screen, shown
    # a page at a time (`98` for more, `0` a page back), split at word boundaries by
    # ussd.render (text_pages); the text is the whole body (no title, no body callable).
    paged: str = ""
    accept: Accept | None = None  # input screens: checks what was typed (a hint when refused)...
    submit: str = ""  # ...and the trigger fired when it is accepted
    resumable: bool = True  # offered again on the next dial if the customer drops here


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
    services: Services | None = None  # what options ask when they are offered (Option.when)
    banner: str = ""  # a notice line for the main menu (incidents, later)


class Spare(str):
    """A line a screen can do without: dropped, spares first, when worst-case data (the
    longest names and numbers, a hint above) would not fit one screen otherwise."""


def holder(name: str) -> Spare:
    """A holder's name as every screen shows it: in full, as the customer base holds it
    (cut at NAME_WIDTH). It is how a customer checks a meter or an account is the one they
    mean before paying, as Mobile Money shows a payee's name. Spare: the number it goes
    with is what must be checked, and always stays."""
    return Spare(clip(to_gsm7(name), NAME_WIDTH))


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


def date_text(iso: str) -> str:
    return datetime.date.fromisoformat(iso).strftime("%d/%m/%Y")


def balance_lines(lang: str, balance: int, due: str, ctx: Context, waived: bool = False) -> list[str]:
    """What is due on an account: nothing, or how much and by when, or since when it is
    late and what that risks; ``waived``: an incident in the account's region waives the
    late-payment penalty (the operator's word, utility.incidents), so that is said instead."""
    if balance <= 0:
        return [text(lang, "bill.nothing_due")]
    lines = [text(lang, "bill.balance", balance=money(lang, balance))]
    if due:
        late = datetime.date.fromisoformat(due) < ctx.today
        key = ("bill.overdue_waived" if waived else "bill.overdue") if late else "bill.due"
        lines.append(text(lang, key, due=date_text(due)))
    return lines


def visit_of(event: EventData) -> Visit:
    """The visit a move is about: the machine's models are all Visits (ussd.menu)."""
    return cast("Visit", event.model)


def fixed(key: str) -> Body:
    """A body that is one catalogue text."""
    return lambda session, ctx: text(session.lang, key)
