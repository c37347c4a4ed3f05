"""The customer's SMS: receipts, payment news, token resends. Each function returns the body.

Texts come from the SMS catalogue (sms/texts/<lang>.toml, French by default); values
from elsewhere (references, receipt numbers, names) pass through `to_gsm7` so that one
odd character cannot switch a receipt to UCS-2. Meter and account numbers are written in
full: the SMS goes to the customer's own phone, and a number one must check digit by digit
against the meter cannot hide any (masking is for logs: utility.customers.mask_tail).
Tokens are written in groups of four, numbered in the order they must be typed when there
are several (key-change tokens first).

`money` and `quantity` are the one number format of each language, for the USSD screens
too: separators from this catalogue's [number] section ("5 000" and "32,5" in French,
"5,000" and "32.5" in English).

The functions are pure: what they need from the configuration (the utility's name, whom to
call, the time zone) comes as a `ReceiptSettings`, built once per app by
sms.customer_messages.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sms.catalogue import Catalogue
from sms.gsm import sms_segments, to_gsm7
from utility.vending.base import Charge, Vend

log = logging.getLogger(__name__)

MESSAGES = Catalogue(Path(__file__).parent / "texts")

CHARGE_CODES = ("fixed_fee", "debt_recovery", "municipal_tax", "vat", "service_charge", "energy")
PAYMENT_FAILURES = ("declined", "insufficient_funds", "expired", "payer_inactive", "provider_unavailable", "other")

# The token SMS is at most two GSM-7 segments (306 septets): the second segment buys the
# instructions and the utility's name, a third would be paid for a breakdown most customers
# never read. What always goes in: the code(s), the meter, units and amount, date and time,
# the utility, the reference, how to type the code and whom to call when the meter refuses
# it. The breakdown of charges goes in too when it still fits, else in a second message of
# its own (vend_details). The worst case that must fit (tests/sms/test_receipts.py): three
# tokens, a 13-digit meter, 99999.9 units for 9 999 999 FCFA, an 8-character order
# reference, a utility name of UTILITY_WIDTH and a support contact of SUPPORT_WIDTH.
TOKEN_SMS_SEGMENTS = 2
UTILITY_WIDTH = 24  # septets of the utility's name, as atop the main menu
SUPPORT_WIDTH = 17  # septets of SUPPORT_CONTACT: "+237 222 23 45 67" or "Eneo au 8010"


@dataclass(frozen=True)
class ReceiptSettings:
    """What the token SMS says on the utility's behalf: its name (UTILITY_NAME, GSM-7, at
    most UTILITY_WIDTH), whom to call when a meter rejects a code (SUPPORT_CONTACT; None:
    the catalogue's "your local office"), and the zone of the times shown (TIMEZONE)."""

    utility: str
    support: str | None
    timezone: datetime.tzinfo


def text(lang: str, key: str, **values: object) -> str:
    return MESSAGES.text(lang, key, **values)


def money(lang: str, amount: int) -> str:
    """5000 -> "5 000" in French, "5,000" in English (no currency: the texts say it)."""
    return f"{amount:,}".replace(",", text(lang, "number.thousands"))


def quantity(lang: str, units: Decimal | str) -> str:
    """Units as customers read them: "48.90" -> "48,9" in French, "48.9" in English;
    whole units without decimals ("50.0" -> "50")."""
    digits = format(Decimal(units), "f")  # never "1E+2"
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return digits.replace(".", text(lang, "number.decimal"))


def group(token: str) -> str:
    """A token as customers type it: digits in groups of four."""
    digits = "".join(token.split())
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _finish(kind: str, lines: Sequence[str]) -> str:
    body = "\n".join(line for line in lines if line)
    log.debug("sms %s: %d characters, %d segment(s)", kind, len(body), sms_segments(body))
    return body


def _tokens(lang: str, tokens: Sequence[str]) -> list[str]:
    if len(tokens) == 1:
        return [text(lang, "vend.token", token=group(tokens[0]))]
    count = len(tokens)
    return [text(lang, "vend.tokens", count=count)] + [
        text(lang, "vend.numbered", n=n, count=count, token=group(token)) for n, token in enumerate(tokens, 1)
    ]


def _charges(lang: str, charges: Sequence[Charge]) -> str:
    """"Dont Frais fixes du mois 429, Taxe communale 122 FCFA": the fees and taxes taken from
    the amount, as on the quote screen (the rest bought the units); "" when there are none."""
    shown = [
        text(lang, "vend.charge", label=text(lang, f"charge.{c.code if c.code in CHARGE_CODES else 'other'}"),
             amount=money(lang, c.amount))
        for c in charges
        if c.amount and c.code != "energy"  # a charge of 0 tells the customer nothing and costs septets
    ]
    return text(lang, "vend.charges", charges=", ".join(shown)) if shown else ""


def _local(moment: datetime.datetime, settings: ReceiptSettings) -> datetime.datetime:
    # The vending backends keep naive UTC (utility.vending.base.Vend.issued_at).
    aware = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
    return aware.astimezone(settings.timezone)


def _date(lang: str, moment: datetime.datetime, settings: ReceiptSettings) -> str:
    return _local(moment, settings).strftime(text(lang, "number.date"))


def _issued(lang: str, reference: str, vend: Vend, settings: ReceiptSettings) -> list[str]:
    """Date and time in the utility's zone, the utility's name and the reference."""
    when = _local(vend.issued_at, settings)
    return [
        text(lang, "vend.issued", date=when.strftime(text(lang, "number.date")),
             time=when.strftime(text(lang, "number.time")), reference=to_gsm7(reference)),
        settings.utility,
    ]


def _instructions(lang: str, count: int, settings: ReceiptSettings) -> str:
    contact = settings.support or text(lang, "vend.support")
    return " ".join([text(lang, "vend.enter" if count == 1 else "vend.enter_each"),
                     text(lang, "vend.rejected", contact=contact)])


def vend_messages(lang: str, order_ref: str, vend: Vend, settings: ReceiptSettings) -> list[str]:
    """A purchase: the token SMS, then the breakdown of charges as a message of its own
    when the token SMS has no room left for it (see TOKEN_SMS_SEGMENTS)."""
    head = [
        *_tokens(lang, vend.tokens),
        text(lang, "vend.meter", meter=to_gsm7(vend.meter)),
        text(lang, "vend.bought", amount=money(lang, vend.amount), units=quantity(lang, vend.units),
             unit=to_gsm7(vend.unit)),
    ]
    tail = [*_issued(lang, order_ref, vend, settings), _instructions(lang, len(vend.tokens), settings)]
    breakdown = _charges(lang, vend.charges)
    whole = "\n".join([*head, breakdown, *tail])
    if not breakdown or sms_segments(whole) <= TOKEN_SMS_SEGMENTS:
        return [_finish("vend_receipt", [*head, breakdown, *tail])]
    receipt = _finish("vend_receipt", [*head, *tail])
    if sms_segments(receipt) > TOKEN_SMS_SEGMENTS:
        log.warning("sms vend_receipt %s: %d segments, more than the %d planned", order_ref,
                    sms_segments(receipt), TOKEN_SMS_SEGMENTS)
    return [receipt, vend_details(lang, order_ref, vend)]


def vend_receipt(lang: str, order_ref: str, vend: Vend, settings: ReceiptSettings) -> str:
    """The token SMS: the code(s) first, then the meter, units and amount, the breakdown
    when it fits, date and time, the utility, the reference, how to type the code and whom
    to call when the meter rejects it."""
    return vend_messages(lang, order_ref, vend, settings)[0]


def vend_details(lang: str, order_ref: str, vend: Vend) -> str:
    """The breakdown of a purchase's charges, sent after the token SMS when it had no room
    for it: which purchase (reference, meter, amount), then the same "Dont ..." line."""
    return _finish("vend_details", [
        text(lang, "vend.details", reference=to_gsm7(order_ref), meter=to_gsm7(vend.meter),
             amount=money(lang, vend.amount)),
        _charges(lang, vend.charges),
    ])


def free_issue_receipt(lang: str, reference: str, vend: Vend, settings: ReceiptSettings) -> str:
    """Free units (a campaign), shaped as the token SMS: the code(s) first, the meter, the
    units, date and time, the utility, the reference, the instructions."""
    return _finish("free_issue_receipt", [
        *_tokens(lang, vend.tokens),
        text(lang, "vend.meter", meter=to_gsm7(vend.meter)),
        text(lang, "free_issue.units", units=quantity(lang, vend.units), unit=to_gsm7(vend.unit)),
        *_issued(lang, reference, vend, settings),
        _instructions(lang, len(vend.tokens), settings),
    ])


def bill_receipt(lang: str, order_ref: str, account_number: str, amount: int, balance_after: int,
                 receipt_no: str, penalty_waived: bool = False) -> str:
    """A bill payment: what was paid on which account, the reference and the utility's
    receipt number, then what it leaves: a balance still due (a partial payment: "payment
    received", not "bill paid"), nothing, or a credit (paid more than was due); and, for a
    late payment during an incident that waives penalties, that none applies."""
    if balance_after > 0:
        title, rest = "bill.received", text(lang, "bill.balance", balance=money(lang, balance_after))
    elif balance_after == 0:
        title, rest = "bill.paid", text(lang, "bill.clear")
    else:
        title, rest = "bill.paid", text(lang, "bill.credit", credit=money(lang, -balance_after))
    return _finish("bill_receipt", [
        text(lang, title, amount=money(lang, amount)),
        text(lang, "bill.details", account=to_gsm7(account_number), reference=to_gsm7(order_ref),
             receipt=to_gsm7(receipt_no)),
        rest,
        text(lang, "bill.waived") if penalty_waived else "",
    ])


def _target(lang: str, what: str, number: str) -> str:
    """"le compteur 01412345674" / "le compte GA-1000005": what the money was for, in full."""
    return text(lang, f"target.{what}", number=to_gsm7(number))


def payment_received(lang: str, order_ref: str, amount: int, what: str, target: str) -> str:
    """The money arrived; the token (or bill receipt) follows. Sent when fulfilment lags,
    so a customer never wonders whether the money vanished."""
    if what not in ("units", "bill"):
        raise ValueError(f"what must be 'units' or 'bill', not {what!r}")
    return _finish("payment_received", [
        text(lang, f"payment_received.{what}", amount=money(lang, amount), reference=to_gsm7(order_ref),
             target=_target(lang, what, target)),
    ])


def payment_failed(
    lang: str, order_ref: str, reason_code: str, amount: int, what: str, target: str, payer: str, dial_code: str = ""
) -> str:
    """The payment did not go through: for what, which Mobile Money number was asked (in
    full: it may be another phone's, and that is the one to top up or check), why in the
    customer's words, and how to try again (the code they dialled)."""
    if what not in ("units", "bill"):
        raise ValueError(f"what must be 'units' or 'bill', not {what!r}")
    reason = text(lang, f"payment_failed.{reason_code if reason_code in PAYMENT_FAILURES else 'other'}")
    retry = (text(lang, "payment_failed.retry_code", code=to_gsm7(dial_code)) if dial_code
             else text(lang, "payment_failed.retry"))
    return _finish("payment_failed", [text(
        lang, "payment_failed.body", reference=to_gsm7(order_ref), amount=money(lang, amount),
        target=_target(lang, what, target), payer=to_gsm7(payer), reason=reason, retry=retry,
    )])


def fulfilment_failed(lang: str, order_ref: str, amount: int, what: str, target: str) -> str:
    """The money arrived but what it paid for cannot be delivered (a meter blocked after
    payment, an account closed): say so plainly and that a refund follows."""
    if what not in ("units", "bill"):
        raise ValueError(f"what must be 'units' or 'bill', not {what!r}")
    return _finish("fulfilment_failed", [
        text(lang, "fulfilment_failed.body", reference=to_gsm7(order_ref), amount=money(lang, amount),
             target=_target(lang, what, target)),
    ])


def token_resend(lang: str, vends: Sequence[Vend], settings: ReceiptSettings) -> str:
    """The last tokens of a meter (newest first, as the backend's reprint gives them)."""
    if not vends:
        return _finish("token_resend", [text(lang, "resend.none")])
    lines = [text(lang, "resend.title")]
    for vend in vends:
        values = dict(date=_date(lang, vend.issued_at, settings), meter=to_gsm7(vend.meter),
                      units=quantity(lang, vend.units), unit=to_gsm7(vend.unit))
        if vend.free:
            lines.append(text(lang, "resend.free", **values))
        else:
            lines.append(text(lang, "resend.vend", amount=money(lang, vend.amount), **values))
        lines.extend(_tokens(lang, vend.tokens))
    return _finish("token_resend", lines)
