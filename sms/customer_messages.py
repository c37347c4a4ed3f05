"""What the order pipeline tells customers, as SMS through the durable outbox.

Each order event becomes one message whose outbox reference is (order, event), so a
retried job or a duplicate callback can never send the same news twice. A token receipt
whose breakdown of charges did not fit (sms.receipts.TOKEN_SMS_SEGMENTS) is followed by
that breakdown under a reference of its own, (order, "receipt_details"): once too.
"""
from __future__ import annotations

import json
import uuid
import zoneinfo
from collections.abc import Mapping
from typing import Any

from flask import Flask

from sms import DEFAULTS, outbox, receipts
from sms.gsm import clip, gsm7_septets, to_gsm7
from utility.orders import UNITS, Order
from utility.vending.base import Vend


def receipt_settings(config: Mapping[str, Any]) -> receipts.ReceiptSettings:
    """What the receipts say on the utility's behalf, parsed once per app (SmsMessages).

    UTILITY_NAME and TIMEZONE are the app's settings (app.DEFAULTS: the USSD menu reads
    them too), so a mapping without them is refused rather than given a default here. A
    SUPPORT_CONTACT longer than receipts.SUPPORT_WIDTH, or a TIMEZONE zoneinfo does not
    know, is a configuration error: a phone number cut short or a wrong hour on every
    receipt would go unnoticed."""
    support = to_gsm7(str(config.get("SUPPORT_CONTACT", DEFAULTS["SUPPORT_CONTACT"]) or "").strip()) or None
    if support is not None and (gsm7_septets(support) or 0) > receipts.SUPPORT_WIDTH:
        raise ValueError(f"SUPPORT_CONTACT {support!r} is longer than {receipts.SUPPORT_WIDTH} characters: the "
                         "token SMS has room for a phone number or a short text only")
    zone = str(config["TIMEZONE"])
    try:
        timezone = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"TIMEZONE {zone!r} is not a time zone name such as 'Africa/Douala' (or this "
                         "machine has no time zone data: install the tzdata package)") from exc
    return receipts.ReceiptSettings(
        utility=clip(to_gsm7(str(config["UTILITY_NAME"])), receipts.UTILITY_WIDTH),
        support=support,
        timezone=timezone,
    )


def startup_problems(config: Mapping[str, Any]) -> list[str]:
    """What would stop every receipt from being written (app.live_config_problems), one
    sentence per problem, naming its GUICHET_ variable; empty when all is well."""
    try:
        receipt_settings(config)
    except ValueError as exc:
        return [f"GUICHET_{exc}"]
    return []


SETTINGS_EXTENSION = "guichet.sms.receipt_settings"


def settings_of(app: Flask) -> receipts.ReceiptSettings:
    """The app's receipt settings, parsed once: for the order pipeline's messages and the
    campaigns' alike."""
    settings: receipts.ReceiptSettings | None = app.extensions.get(SETTINGS_EXTENSION)
    if settings is None:
        settings = app.extensions[SETTINGS_EXTENSION] = receipt_settings(app.config)
    return settings


class SmsMessages:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = settings_of(app)

    def tell(self, order: Order, what: str) -> None:
        body, *details = self.compose(order, what)
        outbox.send(self.app, order.phone, body, reference=f"order:{order.reference}:{what}", kind=what)
        for more in details:  # after the receipt, so it never arrives first
            outbox.send(self.app, order.phone, more, reference=f"order:{order.reference}:{what}_details",
                        kind=f"{what}_details")

    def resend(self, phone: str, lang: str, vends: list[Vend]) -> None:
        # Each request is a new message: the customer asked again, so send again.
        outbox.send(self.app, phone, receipts.token_resend(lang, vends, self.settings),
                    reference=f"resend:{uuid.uuid4().hex}", kind="token_resend")

    def compose(self, order: Order, what: str) -> list[str]:
        """The message(s) for ``what``: one, or for a token receipt perhaps two (the second
        being the breakdown of charges it had no room for)."""
        lang, ref = order.lang, order.reference
        if what == "receipt":
            if order.kind == UNITS:
                return receipts.vend_messages(lang, ref, Vend.from_json(json.dumps(order.receipt)), self.settings)
            bill = order.receipt
            return [receipts.bill_receipt(lang, ref, bill["account_number"], bill["amount"], bill["balance_after"],
                                          bill["receipt_no"], bool(bill.get("penalty_waived")))]
        if what == "payment_received":
            return [receipts.payment_received(lang, ref, order.amount, order.kind, order.target)]
        if what == "payment_failed":
            return [receipts.payment_failed(lang, ref, order.reason, order.amount, order.kind, order.target,
                                            order.payer, order.dial_code)]
        if what == "fulfilment_failed":
            return [receipts.fulfilment_failed(lang, ref, order.amount, order.kind, order.target)]
        raise ValueError(f"nothing to tell for {what!r}")
