"""What the order pipeline tells customers, as SMS through the durable outbox.

Each order event becomes one message whose outbox reference is (order, event), so a
retried job or a duplicate callback can never send the same news twice.
"""
from __future__ import annotations

import json
import uuid

from flask import Flask

from sms import outbox, receipts
from utility.orders import UNITS, Order
from utility.vending.base import Vend


class SmsMessages:
    def __init__(self, app: Flask) -> None:
        self.app = app

    def tell(self, order: Order, what: str) -> None:
        outbox.send(self.app, order.phone, self.compose(order, what), reference=f"order:{order.reference}:{what}",
                    kind=what)

    def resend(self, phone: str, lang: str, vends: list[Vend]) -> None:
        # Each request is a new message: the customer asked again, so send again.
        outbox.send(self.app, phone, receipts.token_resend(lang, vends), reference=f"resend:{uuid.uuid4().hex}",
                    kind="token_resend")

    @staticmethod
    def compose(order: Order, what: str) -> str:
        lang, ref = order.lang, order.reference
        if what == "receipt":
            if order.kind == UNITS:
                return receipts.vend_receipt(lang, ref, Vend.from_json(json.dumps(order.receipt)))
            bill = order.receipt
            return receipts.bill_receipt(lang, ref, bill["account_number"], bill["amount"], bill["balance_after"],
                                         bill["receipt_no"])
        if what == "payment_received":
            return receipts.payment_received(lang, ref, order.amount, "token" if order.kind == UNITS else "bill")
        if what == "payment_failed":
            return receipts.payment_failed(lang, ref, order.reason, order.amount, order.kind, order.target,
                                           order.payer, order.dial_code)
        if what == "fulfilment_failed":
            return receipts.fulfilment_failed(lang, ref, order.amount)
        raise ValueError(f"nothing to tell for {what!r}")
