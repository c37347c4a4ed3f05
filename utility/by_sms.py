"""The customer's own account by SMS: "SOLDE <account>" / "BAL <account>" and "JETON" / "TOKEN".

Keywords of the inbound SMS channel (sms.keywords), answered from the domain services, so
registered from here (`register_keywords`, called by utility.services.init_app) and not
listed in sms: the import goes one way, the domain imports sms.

- SOLDE / BAL: what is due on an account linked to the sender's phone in the customer
  base (a meter or a prepaid account: that it has no bill, and how to buy). Without an
  argument, every account linked to the phone, in the one segment. A number that is not
  linked to the phone, whether or not it exists, gets the same refusal: a balance is the
  holder's business, and an SMS can be sent by anyone naming any number.
- JETON / TOKEN: the last token of each meter whose tokens this phone may have, sent again
  in one SMS (the token resend of "my account" on USSD, under the same per-phone limits:
  RESEND_LIMITS); the reply says for how many meters, or that there is none.

Replies are texts of the SMS catalogue ([self_service] in sms/texts/<lang>.toml), one
segment each in the worst case (tests/sms/test_keywords_self_service.py composes them).
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence

from flask import current_app

from sms import keywords, receipts
from sms.gsm import clip, gsm7_septets, to_gsm7
from sms.keywords import Inbound
from state import journal, limits
from utility.customers import Account
from utility.orders import Orders
from utility.services import services
from utility.vending.base import Vend

USAGE = "account"  # what follows SOLDE / BAL, as the SMS help lists it (sms/texts [inbound.usage])
NUMBER_WIDTH = 24  # characters of a typed number echoed in a refusal: the longest account number
# Meters whose last token one JETON sends again: a household's, in one SMS of two segments
# at worst when each is one token (the usual purchase; a key change's three tokens add about
# a segment per meter). More meters is a business, which has its agency.
MAX_METERS = 3


def register_keywords() -> None:
    """Make SOLDE / BAL and JETON / TOKEN keywords (idempotent: module-level handlers)."""
    keywords.register("SOLDE", balance, lang="fr", usage=USAGE)
    keywords.register("BAL", balance, lang="en", usage=USAGE)
    keywords.register("JETON", tokens, lang="fr")
    keywords.register("TOKEN", tokens, lang="en")


def text(lang: str, key: str, **values: object) -> str:
    return receipts.text(lang, f"self_service.{key}", **values)


# -- SOLDE / BAL -------------------------------------------------------------------------------
def balance(message: Inbound) -> str:
    """The balance of the account named after the keyword, or of every account of the phone."""
    customers = services().customers
    lang = message.lang
    if not message.argument:
        mine = customers.accounts_for_phone(message.phone)
        if not mine:
            return text(lang, "no_account", keyword=message.keyword)
        return _in_one_segment(lang, [_line(lang, account) for account in mine], message.keyword)
    named = _named(message.argument, message.phone)
    if not named:
        return text(lang, "not_linked", number=clip(to_gsm7(message.argument), NUMBER_WIDTH))
    if len(named) == 1 and named[0].prepaid:
        return " ".join([_line(lang, named[0]), _how_to_buy(lang)])
    return _in_one_segment(lang, [_line(lang, account) for account in named], message.keyword)


def _named(typed: str, phone: str) -> list[Account]:
    """The accounts of ``phone`` that ``typed`` names: an account number as a keypad or a bill
    writes it (CustomerBase.accounts_typed, as on USSD) or a meter number. Strangers' are
    looked up and dropped alike, so what exists is never told apart from what does not."""
    customers = services().customers
    found: list[Account | None] = list(customers.accounts_typed(typed))
    compact = "".join(typed.split())
    if compact.isascii() and compact.isdigit():
        found.append(customers.account_for_meter(compact))
    named: dict[str, Account] = {}
    for account in found:
        if account is not None and account.phone == phone:
            named.setdefault(account.account_number, account)
    return list(named.values())


def _line(lang: str, account: Account) -> str:
    """One account's sentence: a meter has no bill; an account owes, by a date or since one
    (overdue, as the USSD bill screen says: the day after its due date), or owes nothing."""
    if account.prepaid:
        return text(lang, "prepaid", meter=to_gsm7(account.meter_number))
    number = to_gsm7(account.account_number)
    due = account.balance_due
    if due < 0:  # paid more than was due, kept as a credit (BILL_OVERPAYMENT=credit)
        return text(lang, "balance_credit", account=number, credit=receipts.money(lang, -due))
    if due == 0:
        return text(lang, "balance_clear", account=number)
    amount = receipts.money(lang, due)
    if account.due_date is None:
        return text(lang, "balance_open", account=number, balance=amount)
    date = account.due_date.strftime(receipts.text(lang, "number.date"))
    late = account.due_date < services().now().date()
    return text(lang, "balance_overdue" if late else "balance_due", account=number, balance=amount, due=date)


def _how_to_buy(lang: str) -> str:
    """How to buy units: the service's USSD code when SERVICE_CODES names it."""
    codes = current_app.config.get("SERVICE_CODES") or ()
    if isinstance(codes, str):  # GUICHET_SERVICE_CODES='*384#' is not JSON, so it stays a string
        codes = codes.split(",")
    named = ["*" + str(code).strip().strip("*#") + "#" for code in codes if str(code).strip().strip("*#")]
    return text(lang, "buy_code", code=to_gsm7(named[0])) if named else text(lang, "buy")


def _in_one_segment(lang: str, lines: Sequence[str], keyword: str) -> str:
    """``lines``, one under the other, as many as one segment holds; the rest counted in a
    last line that says how to ask for them one by one."""
    shown = list(lines)
    while True:
        left_out = len(lines) - len(shown)
        reply = "\n".join([*shown, text(lang, "more", count=left_out, keyword=keyword)] if left_out else shown)
        if not shown or (gsm7_septets(reply) or keywords.REPLY_SEPTETS + 1) <= keywords.REPLY_SEPTETS:
            return reply
        shown.pop()


# -- JETON / TOKEN -----------------------------------------------------------------------------
def tokens(message: Inbound) -> str:
    """Send the last tokens again (one SMS), and say for which meters."""
    orders = services().orders
    lang = message.lang
    vends = last_vends(orders, message.phone)
    if not vends:
        return text(lang, "tokens_none")
    try:
        # The same action as the USSD resend: the phone's budget is one, whichever way it asks.
        limits.take(orders.redis, message.phone, "resend", orders.limits.resends)
    except limits.LimitReached as limited:
        return text(lang, "tokens_limited", minutes=limited.minutes)
    orders.messages.resend(message.phone, lang, vends)
    journal.append(orders.redis, "order.tokens_resent", phone=message.phone,
                   reference=",".join(vend.reference for vend in vends), channel="sms")
    meters = ", ".join(to_gsm7(vend.meter) for vend in vends)
    if len(vends) == 1:
        return text(lang, "tokens_one", meters=meters)
    return text(lang, "tokens_many", count=len(vends), meters=meters)


def last_vends(orders: Orders, phone: str) -> list[Vend]:
    """The newest vend of each meter whose tokens ``phone`` may have (Orders.tokens_of, the
    rule the USSD resend follows), newest first, at most MAX_METERS."""
    newest: dict[str, Vend] = {}
    for vend in sorted(orders.tokens_of(phone), key=lambda vend: _utc(vend.issued_at), reverse=True):
        newest.setdefault(vend.meter, vend)
    return list(newest.values())[:MAX_METERS]


def _utc(moment: datetime.datetime) -> datetime.datetime:
    # The vending backends keep naive UTC (Vend.issued_at); an aware one from an adapter
    # must still sort beside them.
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
