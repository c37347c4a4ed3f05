"""Customer SMS: every text GSM-7 in every language, receipts complete and short."""
from __future__ import annotations

import datetime
import logging
import re
from decimal import Decimal

import pytest

from sms import receipts
from sms.gsm import is_gsm7, sms_segments
from utility.vending.base import Charge, Vend

LANGS = receipts.MESSAGES.languages
METER = "60072700000000009"
TOKEN = "23716100501183194197"
KEY_CHANGE_1 = "57219604587619386104"
KEY_CHANGE_2 = "00418350727437620415"


def vend(**overrides: object) -> Vend:
    values: dict[str, object] = dict(
        reference="order:ORD-2F9K3QX1", receipt_no="000123", meter=METER, name="Jean Mbarga", amount=5_000,
        units=Decimal("32.5"), unit="kWh",
        charges=(Charge("fixed_fee", 429), Charge("municipal_tax", 122), Charge("vat", 0), Charge("energy", 4_449)),
        tokens=(TOKEN,), tariff="prepaid", issued_at=datetime.datetime(2026, 3, 12, 10, 30),
    )
    values.update(overrides)
    return Vend(**values)  # type: ignore[arg-type]


# Worst cases: the largest amounts and units, every charge, three tokens, long references
# with characters outside GSM-7 (which must be spelled in GSM-7, not switch the SMS to UCS-2).
WORST_REF = "ORD-ÇÂÊÎÔÛ–«»’…-2F9K3QX1-ABCDEFGHIJ"
WORST = vend(
    amount=2_000_000, units=Decimal("99999.9"), unit="m3",
    charges=tuple(Charge(code, 999_999) for code in receipts.CHARGE_CODES) + (Charge("unknown_code", 1),),
    tokens=(KEY_CHANGE_1, KEY_CHANGE_2, TOKEN), name="Noël Ngô",
)


def every_message(lang: str) -> dict[str, str]:
    return {
        "vend": receipts.vend_receipt(lang, WORST_REF, WORST),
        "free": receipts.free_issue_receipt(lang, WORST_REF, WORST),
        "bill_due": receipts.bill_receipt(lang, WORST_REF, "CM-ÉÇ-00012345678", 99_999_999, 99_999_999, "Q–ôû-9"),
        "bill_clear": receipts.bill_receipt(lang, WORST_REF, "CM-1", 1, 0, "Q1"),
        **{f"received_{w}": receipts.payment_received(lang, WORST_REF, 2_000_000, w) for w in ("token", "bill")},
        **{f"failed_{c}": receipts.payment_failed(lang, WORST_REF, c, 2_000_000, "units", METER, "+237699999999",
                                                  "*384*12345*99#") for c in receipts.PAYMENT_FAILURES},
        "failed_bill": receipts.payment_failed(lang, WORST_REF, "insufficient_funds", 99_999_999, "bill",
                                               "CM-ÉÇ-00012345678", "+237699999999", "*384*12345*99#"),
        "failed_unknown": receipts.payment_failed(lang, WORST_REF, "new_code_from_a_provider", 1, "units", METER,
                                                  "+237699999999"),
        "resend": receipts.token_resend(lang, [WORST, vend(free=True), vend()]),
        "resend_none": receipts.token_resend(lang, []),
    }


def test_french_first_and_english_too():
    assert LANGS[0] == "fr" and "en" in LANGS


@pytest.mark.parametrize("lang", LANGS)
def test_every_text_is_gsm7(lang):
    bad = {key: value for key, value in receipts.MESSAGES.texts(lang).items() if not is_gsm7(value)}
    assert not bad


def test_every_language_has_every_text():
    keys = {lang: set(receipts.MESSAGES.texts(lang)) for lang in LANGS}
    assert all(found == keys["fr"] for found in keys.values())
    assert {f"charge.{code}" for code in receipts.CHARGE_CODES} <= keys["fr"]
    assert {f"payment_failed.{code}" for code in receipts.PAYMENT_FAILURES} <= keys["fr"]


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_with_worst_case_values_is_gsm7(lang):
    messages = every_message(lang)
    assert {name: body for name, body in messages.items() if not is_gsm7(body)} == {}
    # Nothing left unfilled, nothing private.
    for name, body in messages.items():
        assert "{" not in body and "}" not in body, name
        assert METER not in body and "Noël" not in body and "Mbarga" not in body, name


@pytest.mark.parametrize("lang", LANGS)
def test_a_typical_one_token_receipt_fits_two_segments(lang, caplog):
    caplog.set_level(logging.DEBUG, logger="sms.receipts")
    body = receipts.vend_receipt(lang, "ORD-2F9K3QX1", vend())
    assert is_gsm7(body) and sms_segments(body) <= 2
    assert "segment(s)" in caplog.text
    assert "****0009" in body
    assert "2371 6100 5011 8319 4197" in body
    assert "ORD-2F9K3QX1" in body
    assert "5 000" in body or "5,000" in body
    assert ("32,5 kWh" if lang == "fr" else "32.5 kWh") in body
    labels = [receipts.text(lang, f"charge.{c}") for c in ("fixed_fee", "municipal_tax", "energy")]
    assert all(label in body for label in labels)
    assert receipts.text(lang, "charge.vat") + " " not in body  # a charge of 0 is left out


def test_french_receipt_reads_right():
    body = receipts.vend_receipt("fr", "ORD-2F9K3QX1", vend())
    assert body.splitlines()[:5] == [
        "Achat ORD-2F9K3QX1",
        "Compteur ****0009",
        "Payé 5 000 FCFA = 32,5 kWh",
        "Dont Frais fixes du mois 429, Taxe communale 122, Energie 4 449 FCFA",
        "Code: 2371 6100 5011 8319 4197",
    ]


@pytest.mark.parametrize("lang", LANGS)
def test_three_tokens_are_numbered_in_the_order_to_type(lang):
    body = receipts.vend_receipt(lang, "ORD-2F9K3QX1", vend(tokens=(KEY_CHANGE_1, KEY_CHANGE_2, TOKEN)))
    assert is_gsm7(body)
    assert receipts.text(lang, "vend.tokens", count=3) in body
    numbered = re.findall(r"^(\d)/3: ([\d ]+)$", body, flags=re.M)
    assert numbered == [
        ("1", "5721 9604 5876 1938 6104"), ("2", "0041 8350 7274 3762 0415"), ("3", "2371 6100 5011 8319 4197")
    ]


def test_free_issue_receipt():
    body = receipts.free_issue_receipt("fr", "camp:rentree:CM-1", vend(free=True, amount=0, units=Decimal("10.0")))
    assert "Crédit gratuit 10,0 kWh" in body and "****0009" in body and "camp:rentree:CM-1" in body
    assert "Code: 2371 6100 5011 8319 4197" in body


def test_bill_receipt_balance_or_clear():
    due = receipts.bill_receipt("fr", "ORD-9", "C-0004567", 20_000, 7_300, "Q-000123")
    assert "Facture payée: 20 000 FCFA" in due and "****4567" in due and "C-0004567" not in due
    assert "Quittance Q-000123" in due and "Reste à payer: 7 300 FCFA" in due
    clear = receipts.bill_receipt("en", "ORD-9", "C-0004567", 27_300, 0, "Q-1")
    assert "Bill paid: 27,300 XAF" in clear and "Nothing left to pay" in clear


def test_payment_received_says_what_follows():
    assert "code suit" in receipts.payment_received("fr", "ORD-1", 5_000, "token")
    assert "quittance suit" in receipts.payment_received("fr", "ORD-1", 5_000, "bill")
    assert "token follows" in receipts.payment_received("en", "ORD-1", 5_000, "token")
    with pytest.raises(ValueError):
        receipts.payment_received("fr", "ORD-1", 5_000, "airtime")


def failed(lang: str, code: str, **kw: object) -> str:
    values: dict = {"amount": 5_000, "what": "units", "target": METER, "payer": "+237670000009",
                    "dial_code": "*384*12345#", **kw}
    return receipts.payment_failed(lang, "ORD-1", code, **values)


def test_payment_failed_reasons_are_distinct():
    bodies = {code: failed("fr", code) for code in receipts.PAYMENT_FAILURES}
    assert len(set(bodies.values())) == len(bodies)
    assert "solde insuffisant" in bodies["insufficient_funds"]
    assert failed("fr", "???") == bodies["other"]


def test_a_declined_payment_says_which_number_lacked_funds_for_what_and_how_to_try_again():
    assert failed("fr", "insufficient_funds") == (
        "Paiement ORD-1 de 5 000 FCFA pour le compteur ****0009 non abouti. "
        "Mobile Money +237670000009: solde insuffisant. Pour réessayer, composez *384*12345#.")
    assert failed("en", "insufficient_funds", what="bill", target="GA-1000005", amount=12_500) == (
        "Payment ORD-1 of 12,500 XAF for account ****0005 did not go through. "
        "Mobile Money +237670000009: insufficient balance. To try again, dial *384*12345#.")
    assert failed("fr", "declined", dial_code="").endswith("refusé. Vous pouvez réessayer.")
    with pytest.raises(ValueError):
        failed("fr", "declined", what="airtime")


@pytest.mark.parametrize("lang", LANGS)
def test_a_declined_payment_sms_fits_two_segments(lang):
    body = failed(lang, "payer_inactive", amount=2_000_000, payer="+237699999999", dial_code="*384*12345*99#")
    assert is_gsm7(body) and sms_segments(body) <= 2


def test_token_resend_lists_the_last_tokens_newest_first():
    older = vend(issued_at=datetime.datetime(2026, 2, 1, 8, 0), tokens=("11112222333344445555",), amount=2_000)
    body = receipts.token_resend("fr", [vend(), older])
    lines = body.splitlines()
    assert lines[0] == "Vos derniers codes:"
    assert lines[1].startswith("12/03/2026 compteur ****0009, 5 000 FCFA")
    assert lines[2] == "Code: 2371 6100 5011 8319 4197"
    assert lines[3].startswith("01/02/2026") and lines[4] == "Code: 1111 2222 3333 4444 5555"
    assert receipts.token_resend("en", []) == "No recent purchase for this meter."


def test_unknown_language_falls_back_to_french():
    assert receipts.vend_receipt("xx", "ORD-1", vend()) == receipts.vend_receipt("fr", "ORD-1", vend())
