"""What an order tells its customer, through the outbox: one message per (order, event), and
a token receipt's breakdown of charges as a second message, once, only when it was left out."""
from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest

from sms import outbox, receipts
from sms.customer_messages import SmsMessages
from state import journal
from state.store import get_redis
from utility.meters import with_check_digit
from utility.orders import BILL, UNITS, Order
from utility.vending.base import Charge, Vend

PHONE = "+237699000001"
METER = with_check_digit("014123456789")
KEY_CHANGE = ("57219604587619386104", "00418350727437620415")
TOKEN = "23716100501183194197"


def bought(tokens: tuple[str, ...] = (TOKEN,), charges: tuple[Charge, ...] | None = None) -> dict:
    vend = Vend(
        reference="ORDER001", receipt_no="1", meter=METER, name="Jean Mbarga", amount=5_000, units=Decimal("48.9"),
        unit="kWh", charges=charges if charges is not None else (Charge("fixed_fee", 429),
                                                                  Charge("municipal_tax", 111), Charge("energy", 4_460)),
        tokens=tokens, tariff="prepaid", issued_at=datetime.datetime(2026, 3, 12, 10, 30),
    )
    return json.loads(vend.to_json())


def order(kind: str = UNITS, lang: str = "fr", **receipt: object) -> Order:
    return Order("ORDER001", kind, PHONE, lang, METER if kind == UNITS else "GA-1000005", 5_000, PHONE, "demo",
                 state="fulfilled", receipt=dict(receipt))


@pytest.fixture
def app(app):
    app.config["UTILITY_NAME"] = "Eneo"  # read once, by SmsMessages(app)
    return app


def queued(app) -> list[dict[str, str]]:
    return [e for e in journal.read(get_redis(app), 1000) if e["kind"] == "sms.queued"]


def sent(app, reference: str) -> outbox.Message | None:
    return outbox.find(get_redis(app), reference)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_receipt_with_room_for_its_breakdown_is_one_message(app, lang):
    SmsMessages(app).tell(order(lang=lang, **bought()), "receipt")
    receipt = sent(app, "order:ORDER001:receipt")
    assert receipt is not None and receipt.kind == "receipt" and receipt.to == PHONE
    assert receipt.body.startswith({"fr": "Code: 2371", "en": "Token: 2371"}[lang])
    assert receipts.text(lang, "charge.fixed_fee") + " 429" in receipt.body
    assert "\nEneo\n" in receipt.body  # the app's UTILITY_NAME
    assert sent(app, "order:ORDER001:receipt_details") is None
    assert len(queued(app)) == 1


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_breakdown_left_out_follows_once_however_often_the_receipt_is_told(app, lang):
    messages = SmsMessages(app)
    key_change = order(lang=lang, **bought(tokens=(*KEY_CHANGE, TOKEN)))
    messages.tell(key_change, "receipt")
    messages.tell(key_change, "receipt")  # a retried job, a sweep: the same news again
    receipt, details = sent(app, "order:ORDER001:receipt"), sent(app, "order:ORDER001:receipt_details")
    assert receipt is not None and details is not None
    assert receipt.segments <= receipts.TOKEN_SMS_SEGMENTS
    assert receipts.text(lang, "vend.enter_each") in receipt.body  # the instructions stay
    assert receipts.text(lang, "charge.fixed_fee") not in receipt.body
    assert details.kind == "receipt_details" and details.to == PHONE
    assert details.body.endswith(receipts.text(lang, "vend.charges", charges=", ".join([
        receipts.text(lang, "charge.fixed_fee") + " 429", receipts.text(lang, "charge.municipal_tax") + " 111"])))
    assert METER in details.body and "ORDER001" in details.body
    assert [(e["reference"], e["sms_kind"]) for e in queued(app)] == [
        ("order:ORDER001:receipt", "receipt"), ("order:ORDER001:receipt_details", "receipt_details")]


def test_a_key_change_with_nothing_but_energy_has_no_second_message(app):
    SmsMessages(app).tell(order(**bought(tokens=(*KEY_CHANGE, TOKEN), charges=(Charge("energy", 5_000),))), "receipt")
    assert sent(app, "order:ORDER001:receipt") is not None
    assert sent(app, "order:ORDER001:receipt_details") is None


def test_a_bill_receipt_and_the_payment_news_name_the_account_in_full(app):
    messages = SmsMessages(app)
    paid = order(BILL, account_number="GA-1000005", amount=5_000, balance_after=7_300, receipt_no="Q-1")
    messages.tell(paid, "receipt")
    messages.tell(paid, "payment_received")
    messages.tell(paid, "fulfilment_failed")
    bodies = {what: sent(app, f"order:ORDER001:{what}") for what in ("receipt", "payment_received",
                                                                       "fulfilment_failed")}
    assert all(m is not None and "GA-1000005" in m.body and "5 000 FCFA" in m.body for m in bodies.values())
    assert bodies["receipt"].body.startswith("Paiement recu: 5 000 FCFA")  # type: ignore[union-attr]
    assert "Reste à payer: 7 300 FCFA" in bodies["receipt"].body  # type: ignore[union-attr]


def test_settings_come_from_the_apps_configuration(app):
    app.config.update(SUPPORT_CONTACT="+237222234567", TIMEZONE="Africa/Nairobi")
    messages = SmsMessages(app)
    messages.tell(order(**bought()), "receipt")
    body = sent(app, "order:ORDER001:receipt").body  # type: ignore[union-attr]
    assert "Appelez +237222234567." in body and "13:30" in body  # 10:30 UTC in Nairobi


def test_startup_names_a_setting_that_would_spoil_every_receipt(app):
    from sms.customer_messages import startup_problems

    assert startup_problems(app.config) == []
    (problem,) = startup_problems({**app.config, "SUPPORT_CONTACT": "Service client Demo Eau & Electricite"})
    assert problem.startswith("GUICHET_SUPPORT_CONTACT")
    (problem,) = startup_problems({**app.config, "TIMEZONE": "Africa/Duala"})
    assert problem.startswith("GUICHET_TIMEZONE")
