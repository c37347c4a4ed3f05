"""The customer's SMS: receipts, payment news, token resends. Each function returns the body.

Texts come from the SMS catalogue (sms/texts/<lang>.toml, French by default); values
from elsewhere (references, receipt numbers) pass through `to_gsm7` so that one odd
character cannot switch a receipt to UCS-2. Meter and account numbers are masked but for
their last four digits: an SMS can be read over a shoulder. Tokens are written in groups
of four, numbered in the order they must be typed when there are several (key-change
tokens first).
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from sms.catalogue import Catalogue
from sms.gsm import sms_segments, to_gsm7
from utility.customers import mask_tail
from utility.vending.base import Charge, Vend

log = logging.getLogger(__name__)

MESSAGES = Catalogue(Path(__file__).parent / "texts")

CHARGE_CODES = ("fixed_fee", "debt_recovery", "municipal_tax", "vat", "service_charge", "energy")
PAYMENT_FAILURES = ("declined", "insufficient_funds", "expired", "payer_inactive", "provider_unavailable", "other")


def text(lang: str, key: str, **values: object) -> str:
    return MESSAGES.text(lang, key, **values)


def money(lang: str, amount: int) -> str:
    return f"{amount:,}".replace(",", text(lang, "number.thousands"))


def quantity(lang: str, units: Decimal) -> str:
    return format(units, "f").replace(".", text(lang, "number.decimal"))


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
    shown = [
        text(lang, "vend.charge", label=text(lang, f"charge.{c.code if c.code in CHARGE_CODES else 'other'}"),
             amount=money(lang, c.amount))
        for c in charges
        if c.amount  # a charge of 0 tells the customer nothing and costs a segment
    ]
    return text(lang, "vend.charges", charges=", ".join(shown)) if shown else ""


def vend_receipt(lang: str, order_ref: str, vend: Vend) -> str:
    """A purchase: reference, meter, amount, units, every charge, the token(s)."""
    lines = [
        text(lang, "vend.header", reference=to_gsm7(order_ref), meter=mask_tail(vend.meter)),
        text(lang, "vend.amount", amount=money(lang, vend.amount), units=quantity(lang, vend.units),
             unit=to_gsm7(vend.unit)),
        _charges(lang, vend.charges),
        *_tokens(lang, vend.tokens),
    ]
    # Thanks only when they fit in the segments already paid for: an extra segment
    # doubles what a one-segment receipt costs.
    thanked = [*lines, text(lang, "vend.thanks")]
    if sms_segments("\n".join(filter(None, thanked))) == sms_segments("\n".join(filter(None, lines))):
        lines = thanked
    return _finish("vend_receipt", lines)


def free_issue_receipt(lang: str, reference: str, vend: Vend) -> str:
    """Free units (a campaign): units, meter, reference, the token(s)."""
    return _finish("free_issue_receipt", [
        text(lang, "free_issue.header", units=quantity(lang, vend.units), unit=to_gsm7(vend.unit),
             meter=mask_tail(vend.meter), reference=to_gsm7(reference)),
        *_tokens(lang, vend.tokens),
    ])


def bill_receipt(lang: str, order_ref: str, account_number: str, amount: int, balance_after: int,
                 receipt_no: str) -> str:
    """A bill payment: amount, account, reference, the utility's receipt number, what is left."""
    return _finish("bill_receipt", [
        text(lang, "bill.paid", amount=money(lang, amount), account=mask_tail(account_number),
             reference=to_gsm7(order_ref), receipt=to_gsm7(receipt_no)),
        text(lang, "bill.balance", balance=money(lang, balance_after)) if balance_after > 0 else text(lang, "bill.clear"),
    ])


def payment_received(lang: str, order_ref: str, amount: int, what: str) -> str:
    """The money arrived; the token (or bill receipt) follows. Sent when fulfilment lags,
    so a customer never wonders whether the money vanished."""
    if what not in ("token", "bill"):
        raise ValueError(f"what must be 'token' or 'bill', not {what!r}")
    return _finish("payment_received", [
        text(lang, f"payment_received.{what}", amount=money(lang, amount), reference=to_gsm7(order_ref)),
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
        target=text(lang, f"payment_failed.{what}", number=mask_tail(target)), payer=to_gsm7(payer),
        reason=reason, retry=retry,
    )])


def fulfilment_failed(lang: str, order_ref: str, amount: int) -> str:
    """The money arrived but what it paid for cannot be delivered (a meter blocked after
    payment, an account closed): say so plainly and that a refund follows."""
    return _finish("fulfilment_failed", [
        text(lang, "fulfilment_failed.body", reference=to_gsm7(order_ref), amount=money(lang, amount)),
    ])


def token_resend(lang: str, vends: Sequence[Vend]) -> str:
    """The last tokens of a meter (newest first, as the backend's reprint gives them)."""
    if not vends:
        return _finish("token_resend", [text(lang, "resend.none")])
    lines = [text(lang, "resend.title")]
    for vend in vends:
        values = dict(date=_date(lang, vend.issued_at), meter=mask_tail(vend.meter),
                      units=quantity(lang, vend.units), unit=to_gsm7(vend.unit))
        if vend.free:
            lines.append(text(lang, "resend.free", **values))
        else:
            lines.append(text(lang, "resend.vend", amount=money(lang, vend.amount), **values))
        lines.extend(_tokens(lang, vend.tokens))
    return _finish("token_resend", lines)


def _date(lang: str, moment: datetime.datetime) -> str:
    return moment.strftime(text(lang, "number.date"))
