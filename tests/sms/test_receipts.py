"""Customer SMS, read as the customer reads them: every text GSM-7 in every language, the
token SMS leading with the code and complete in two segments, numbers in full, one money
format per language, the currency as customers say it."""
from __future__ import annotations

import datetime
import logging
import re
import zoneinfo
from decimal import Decimal

import pytest

from sms import receipts
from sms.customer_messages import receipt_settings
from sms.gsm import is_gsm7, sms_segments
from utility.meters import with_check_digit
from utility.vending.base import Charge, Vend

LANGS = receipts.MESSAGES.languages
METER = with_check_digit("0141234567")  # 11 digits
LONG_METER = with_check_digit("014123456789")  # 13 digits, the longest STS meter number
TOKEN = "23716100501183194197"
KEY_CHANGE_1 = "57219604587619386104"
KEY_CHANGE_2 = "00418350727437620415"
DOUALA = zoneinfo.ZoneInfo("Africa/Douala")
SETTINGS = receipts.ReceiptSettings(utility="Demo Eau & Electricite", support=None, timezone=DOUALA)
CODE_LINE = {"fr": "Code: 2371 6100 5011 8319 4197", "en": "Token: 2371 6100 5011 8319 4197"}


def vend(**overrides: object) -> Vend:
    values: dict[str, object] = dict(
        reference="order:ORDER001", receipt_no="000123", meter=METER, name="Jean Mbarga", amount=5_000,
        units=Decimal("48.90"), unit="kWh",
        charges=(Charge("fixed_fee", 429), Charge("municipal_tax", 111), Charge("vat", 0), Charge("energy", 4_460)),
        tokens=(TOKEN,), tariff="prepaid",
        issued_at=datetime.datetime(2026, 3, 12, 10, 30),  # naive UTC, as the backends record it: 11:30 in Douala
    )
    values.update(overrides)
    return Vend(**values)  # type: ignore[arg-type]


# Worst cases: the largest amounts and units, every charge (and one the catalogue does not
# know), three tokens, the longest meter; odd characters in values from elsewhere, which
# must be spelled in GSM-7, not switch the SMS to UCS-2.
WORST_REF = "ORD-ÇÂÊÎÔÛ–«»’…-2F9K3QX1-ABCDEFGHIJ"
EVERY_CHARGE = tuple(Charge(code, 999_999) for code in receipts.CHARGE_CODES) + (Charge("unknown_code", 1),)
WORST = vend(
    meter=LONG_METER, amount=9_999_999, units=Decimal("99999.9"), unit="kWh", charges=EVERY_CHARGE,
    tokens=(KEY_CHANGE_1, KEY_CHANGE_2, TOKEN), name="Noël Ngô",
)
# The longest the token SMS is planned for: the utility's name as long as it is shown (a
# longer one is cut), a support contact as long as it may be, an order reference.
WORST_SETTINGS = receipt_settings({
    "UTILITY_NAME": "Société Camerounaise des Eaux et de l'Electricité", "TIMEZONE": "Africa/Douala",
    "SUPPORT_CONTACT": "+237 222 23 45 67",
})
ORDER_REF = "ORDER001"


def every_message(lang: str) -> dict[str, str]:
    return {
        "vend": receipts.vend_receipt(lang, WORST_REF, WORST, WORST_SETTINGS),
        "vend_details": receipts.vend_details(lang, WORST_REF, WORST),
        "free": receipts.free_issue_receipt(lang, WORST_REF, WORST, WORST_SETTINGS),
        "bill_due": receipts.bill_receipt(lang, WORST_REF, "CM-ÉÇ-00012345678", 99_999_999, 99_999_999, "Q–ôû-9",
                                          penalty_waived=True),
        "bill_clear": receipts.bill_receipt(lang, WORST_REF, "CM-1", 1, 0, "Q1"),
        "bill_credit": receipts.bill_receipt(lang, WORST_REF, "CM-ÉÇ-00012345678", 99_999_999, -99_999_998, "Q1"),
        **{f"received_{w}": receipts.payment_received(lang, WORST_REF, 9_999_999, w, "CM-ÉÇ-00012345678")
           for w in ("units", "bill")},
        **{f"failed_{c}": receipts.payment_failed(lang, WORST_REF, c, 9_999_999, "units", LONG_METER, "+237699999999",
                                                  "*384*12345*99#") for c in receipts.PAYMENT_FAILURES},
        "failed_bill": receipts.payment_failed(lang, WORST_REF, "insufficient_funds", 99_999_999, "bill",
                                               "CM-ÉÇ-00012345678", "+237699999999", "*384*12345*99#"),
        "failed_unknown": receipts.payment_failed(lang, WORST_REF, "new_code_from_a_provider", 1, "units", METER,
                                                  "+237699999999"),
        **{f"fulfilment_failed_{w}": receipts.fulfilment_failed(lang, WORST_REF, 9_999_999, w, "CM-ÉÇ-00012345678")
           for w in ("units", "bill")},
        "resend": receipts.token_resend(lang, [WORST, vend(free=True), vend()], WORST_SETTINGS),
        "resend_none": receipts.token_resend(lang, [], WORST_SETTINGS),
    }


# -- the catalogue ---------------------------------------------------------------------------------
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
def test_the_currency_is_fcfa_and_the_token_has_one_name(lang):
    texts = [re.sub(r"\{\w+\}", "", t) for t in receipts.MESSAGES.texts(lang).values()]  # the words only
    assert not [t for t in texts if "XAF" in t]
    assert not [t for t in texts if "jeton" in t.lower()]
    word = {"fr": "code", "en": "token"}[lang]
    other = {"fr": "token", "en": "code"}[lang]
    assert not [t for t in texts if other in t.lower()]
    assert word in receipts.text(lang, "vend.enter").lower()


# -- one number format per language ----------------------------------------------------------------
def test_money_as_customers_write_it():
    assert receipts.money("fr", 5_000) == "5 000"
    assert receipts.money("en", 5_000) == "5,000"
    assert receipts.money("fr", 1_234_567) == "1 234 567"
    assert receipts.money("en", 999) == "999"


@pytest.mark.parametrize(("lang", "units", "shown"), [
    ("fr", "48.90", "48,9"), ("en", "48.90", "48.9"), ("fr", "50.0", "50"), ("en", "50", "50"),
    ("fr", Decimal("32.5"), "32,5"), ("en", Decimal("0.1"), "0.1"), ("fr", Decimal("1E+2"), "100"),
    ("en", "12345.6", "12345.6"),
])
def test_quantity_drops_trailing_zeros_and_uses_the_language_decimal_mark(lang, units, shown):
    assert receipts.quantity(lang, units) == shown


# -- every message ---------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_every_message_with_worst_case_values_is_gsm7_and_filled_in(lang):
    messages = every_message(lang)
    assert {name: body for name, body in messages.items() if not is_gsm7(body)} == {}
    for name, body in messages.items():
        assert "{" not in body and "}" not in body, name
        assert "****" not in body, name  # numbers in full for the customer
        assert "Noël" not in body and "Mbarga" not in body, name  # the holder's name is not sent


def test_unknown_language_falls_back_to_french():
    assert receipts.vend_receipt("xx", "ORD-1", vend(), SETTINGS) == receipts.vend_receipt("fr", "ORD-1", vend(),
                                                                                          SETTINGS)


# -- the token SMS ---------------------------------------------------------------------------------
def test_the_french_token_sms_reads_right():
    assert receipts.vend_messages("fr", ORDER_REF, vend(), SETTINGS) == ["\n".join([
        "Code: 2371 6100 5011 8319 4197",
        "Compteur 01412345678",
        "48,9 kWh pour 5 000 FCFA",
        "Dont Frais fixes du mois 429, Taxe communale 111 FCFA",
        "12/03/2026 11:30 réf ORDER001",
        "Demo Eau & Electricite",
        "Tapez le code sur le clavier du compteur puis Entrée. Refusé? Appelez votre agence.",
    ])]


def test_the_english_token_sms_reads_right():
    assert receipts.vend_messages("en", ORDER_REF, vend(), SETTINGS) == ["\n".join([
        "Token: 2371 6100 5011 8319 4197",
        "Meter 01412345678",
        "48.9 kWh for 5,000 FCFA",
        "Including Monthly fixed fee 429, Municipal tax 111 FCFA",
        "12/03/2026 11:30 ref ORDER001",
        "Demo Eau & Electricite",
        "Type the token on the meter keypad, then Enter. Rejected? Call your local office.",
    ])]


@pytest.mark.parametrize("lang", LANGS)
def test_a_typical_token_sms_leads_with_the_code_and_fits_two_segments(lang, caplog):
    caplog.set_level(logging.DEBUG, logger="sms.receipts")
    (body,) = receipts.vend_messages(lang, ORDER_REF, vend(), SETTINGS)
    assert body.splitlines()[0] == CODE_LINE[lang]
    assert is_gsm7(body) and sms_segments(body) <= 2
    assert "segment(s)" in caplog.text
    assert METER in body and ORDER_REF in body and "Demo Eau & Electricite" in body
    assert ("5 000 FCFA" if lang == "fr" else "5,000 FCFA") in body
    assert receipts.text(lang, "charge.vat") + " " not in body  # a charge of 0 is left out
    assert receipts.text(lang, "charge.energy") not in body  # the rest of the money bought the units


@pytest.mark.parametrize(("zone", "shown"), [
    ("Africa/Douala", "13/03/2026 00:30"),  # UTC+1: already the next day
    ("Africa/Nairobi", "13/03/2026 02:30"),
    ("UTC", "12/03/2026 23:30"),
])
@pytest.mark.parametrize("lang", LANGS)
def test_the_date_and_time_are_the_utilitys_local_time(lang, zone, shown):
    settings = receipt_settings({"UTILITY_NAME": "Eneo", "TIMEZONE": zone})
    late = vend(issued_at=datetime.datetime(2026, 3, 12, 23, 30))  # naive: UTC
    assert shown in receipts.vend_receipt(lang, ORDER_REF, late, settings)
    aware = vend(issued_at=datetime.datetime(2026, 3, 13, 0, 30, tzinfo=DOUALA))
    assert shown in receipts.vend_receipt(lang, ORDER_REF, aware, settings)
    assert shown[:10] in receipts.token_resend(lang, [late], settings)


@pytest.mark.parametrize("lang", LANGS)
def test_three_tokens_are_numbered_in_the_order_to_type_and_lead(lang):
    body = receipts.vend_receipt(lang, ORDER_REF, vend(tokens=(KEY_CHANGE_1, KEY_CHANGE_2, TOKEN)), SETTINGS)
    assert is_gsm7(body)
    assert body.splitlines()[0] == receipts.text(lang, "vend.tokens", count=3)
    assert body.splitlines()[0] == {"fr": "Tapez les 3 codes dans cet ordre:",
                                    "en": "Type the 3 tokens in this order:"}[lang]
    assert re.findall(r"^(\d)/3: ([\d ]+)$", body, flags=re.M) == [
        ("1", "5721 9604 5876 1938 6104"), ("2", "0041 8350 7274 3762 0415"), ("3", "2371 6100 5011 8319 4197")
    ]
    assert body.splitlines()[1].startswith("1/3: ")
    assert receipts.text(lang, "vend.enter_each") in body


@pytest.mark.parametrize("lang", LANGS)
def test_the_worst_case_token_sms_keeps_everything_but_the_breakdown_in_two_segments(lang):
    receipt, details = receipts.vend_messages(lang, ORDER_REF, WORST, WORST_SETTINGS)
    assert is_gsm7(receipt) and sms_segments(receipt) == receipts.TOKEN_SMS_SEGMENTS == 2
    lines = receipt.splitlines()
    assert lines[0] == receipts.text(lang, "vend.tokens", count=3)
    assert lines[4] == receipts.text(lang, "vend.meter", meter=LONG_METER)
    assert ("99999,9 kWh pour 9 999 999 FCFA" if lang == "fr" else "99999.9 kWh for 9,999,999 FCFA") in lines
    assert ORDER_REF in receipt and "12/03/2026 11:30" in receipt
    assert WORST_SETTINGS.utility in lines and len(WORST_SETTINGS.utility) == receipts.UTILITY_WIDTH
    assert lines[-1] == (receipts.text(lang, "vend.enter_each") + " "
                         + receipts.text(lang, "vend.rejected", contact="+237 222 23 45 67"))
    # The breakdown went to the second message, whole.
    assert receipts.text(lang, "charge.fixed_fee") not in receipt
    assert details.splitlines()[0] == receipts.text(lang, "vend.details", reference=ORDER_REF, meter=LONG_METER,
                                                    amount=receipts.money(lang, 9_999_999))
    for code in ("fixed_fee", "debt_recovery", "municipal_tax", "vat", "service_charge", "other"):
        assert receipts.text(lang, f"charge.{code}") + " " + receipts.money(lang, 999_999 if code != "other" else 1) \
            in details, code
    assert is_gsm7(details) and sms_segments(details) <= 2


@pytest.mark.parametrize("lang", LANGS)
def test_a_key_change_sends_the_usual_breakdown_apart_and_keeps_the_instructions(lang):
    three = vend(tokens=(KEY_CHANGE_1, KEY_CHANGE_2, TOKEN))
    receipt, details = receipts.vend_messages(lang, ORDER_REF, three, SETTINGS)
    assert sms_segments(receipt) <= 2 and receipts.text(lang, "charge.fixed_fee") not in receipt
    assert receipt.endswith(receipts.text(lang, "vend.rejected", contact=receipts.text(lang, "vend.support")))
    assert details == {
        "fr": f"Achat ORDER001, compteur {METER}: 5 000 FCFA\nDont Frais fixes du mois 429, Taxe communale 111 FCFA",
        "en": f"Purchase ORDER001, meter {METER}: 5,000 FCFA\nIncluding Monthly fixed fee 429, Municipal tax 111 FCFA",
    }[lang]
    assert sms_segments(details) == 1


@pytest.mark.parametrize("lang", LANGS)
def test_a_purchase_with_nothing_but_energy_has_no_breakdown_and_no_second_message(lang):
    (body,) = receipts.vend_messages(lang, ORDER_REF, vend(charges=(Charge("energy", 5_000), Charge("vat", 0))),
                                     SETTINGS)
    assert receipts.text(lang, "vend.charges", charges="").split()[0] not in body


@pytest.mark.parametrize("lang", LANGS)
def test_the_support_contact_is_named_when_set(lang):
    settings = receipt_settings({"UTILITY_NAME": "Eneo", "TIMEZONE": "Africa/Douala", "SUPPORT_CONTACT": "8010"})
    body = receipts.vend_receipt(lang, ORDER_REF, vend(), settings)
    assert body.splitlines()[-1].endswith(receipts.text(lang, "vend.rejected", contact="8010"))
    assert receipts.text(lang, "vend.support") not in body
    assert "\nEneo\n" in body


def test_receipt_settings_refuse_what_would_spoil_every_receipt():
    base = {"UTILITY_NAME": "Eneo", "TIMEZONE": "Africa/Douala"}
    assert receipt_settings(base).support is None
    assert receipt_settings({**base, "SUPPORT_CONTACT": "  "}).support is None
    with pytest.raises(ValueError, match="SUPPORT_CONTACT"):
        receipt_settings({**base, "SUPPORT_CONTACT": "Appelez le service client au +237 222 23 45 67"})
    with pytest.raises(ValueError, match="TIMEZONE"):
        receipt_settings({**base, "TIMEZONE": "Africa/Duala"})
    with pytest.raises(ValueError, match="TIMEZONE"):
        receipt_settings({**base, "TIMEZONE": "../etc/passwd"})


def test_the_default_utility_name_is_the_utilitys_not_the_products():
    from app import DEFAULTS

    name = receipt_settings(DEFAULTS).utility
    assert name == "Demo Eau & Electricite" and "Guichet" not in name


# -- free units ------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_a_free_issue_is_shaped_as_the_token_sms(lang):
    body = receipts.free_issue_receipt(lang, "camp:rentree:CM-1", vend(free=True, amount=0, units=Decimal("10.0")),
                                       SETTINGS)
    lines = body.splitlines()
    assert lines[0] == CODE_LINE[lang]
    assert lines[1] == receipts.text(lang, "vend.meter", meter=METER)
    assert lines[2] == {"fr": "Crédit gratuit: 10 kWh", "en": "Free credit: 10 kWh"}[lang]
    assert "12/03/2026 11:30" in lines[3] and "camp:rentree:CM-1" in lines[3]
    assert lines[4] == "Demo Eau & Electricite"
    assert lines[5].startswith(receipts.text(lang, "vend.enter"))
    assert "FCFA" not in body


# -- bills -----------------------------------------------------------------------------------------
def test_a_partial_payment_is_received_not_paid_and_says_what_remains():
    assert receipts.bill_receipt("fr", "ORDER002", "GA-1000005", 20_000, 7_300, "Q-000123") == (
        "Paiement recu: 20 000 FCFA\nCompte GA-1000005\nRéf ORDER002\nQuittance Q-000123\nReste à payer: 7 300 FCFA")
    assert receipts.bill_receipt("en", "ORDER002", "GA-1000005", 20_000, 7_300, "Q-000123") == (
        "Payment received: 20,000 FCFA\nAccount GA-1000005\nRef ORDER002\nReceipt Q-000123\nBalance due: 7,300 FCFA")


def test_a_payment_that_clears_the_balance_says_the_bill_is_paid():
    fr = receipts.bill_receipt("fr", "ORDER002", "C-0004567", 27_300, 0, "Q-1")
    assert fr.startswith("Facture payée: 27 300 FCFA\nCompte C-0004567\n") and fr.endswith("Rien à payer. Merci!")
    en = receipts.bill_receipt("en", "ORDER002", "C-0004567", 27_300, 0, "Q-1")
    assert en.startswith("Bill paid: 27,300 FCFA\nAccount C-0004567\n") and en.endswith("Nothing left to pay. Thank you!")


def test_an_overpayment_pays_the_bill_and_leaves_a_credit():
    fr = receipts.bill_receipt("fr", "ORDER002", "C-0004567", 30_000, -2_700, "Q-1")
    assert fr.startswith("Facture payée: 30 000 FCFA\n") and fr.endswith("\nCrédit sur le compte: 2 700 FCFA")
    en = receipts.bill_receipt("en", "ORDER002", "C-0004567", 30_000, -2_700, "Q-1")
    assert en.startswith("Bill paid: 30,000 FCFA\n") and en.endswith("\nCredit on the account: 2,700 FCFA")
    assert "Reste" not in fr and "-2" not in fr


# -- payment news ----------------------------------------------------------------------------------
def test_payment_received_says_for_what_and_what_follows():
    assert receipts.payment_received("fr", "ORD-1", 5_000, "units", METER) == (
        f"Paiement de 5 000 FCFA pour le compteur {METER} bien arrivé (réf ORD-1). "
        "Votre code suit par SMS dans quelques minutes.")
    assert "quittance suit" in receipts.payment_received("fr", "ORD-1", 5_000, "bill", "GA-1000005")
    assert receipts.payment_received("en", "ORD-1", 5_000, "bill", "GA-1000005") == (
        "Payment of 5,000 FCFA for account GA-1000005 received (ref ORD-1). It is posted as soon as billing is back; "
        "your receipt follows by SMS.")
    with pytest.raises(ValueError):
        receipts.payment_received("fr", "ORD-1", 5_000, "airtime", METER)


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
        f"Paiement ORD-1 de 5 000 FCFA pour le compteur {METER} non abouti. "
        "Mobile Money +237670000009: solde insuffisant. Pour réessayer, composez *384*12345#.")
    assert failed("en", "insufficient_funds", what="bill", target="GA-1000005", amount=12_500) == (
        "Payment ORD-1 of 12,500 FCFA for account GA-1000005 did not go through. "
        "Mobile Money +237670000009: insufficient balance. To try again, dial *384*12345#.")
    assert failed("fr", "declined", dial_code="").endswith("refusé. Vous pouvez réessayer.")
    with pytest.raises(ValueError):
        failed("fr", "declined", what="airtime")


@pytest.mark.parametrize("lang", LANGS)
def test_a_declined_payment_sms_fits_two_segments(lang):
    body = failed(lang, "payer_inactive", amount=9_999_999, target=LONG_METER, payer="+237699999999",
                  dial_code="*384*12345*99#")
    assert is_gsm7(body) and sms_segments(body) <= 2


def test_a_failed_fulfilment_names_the_meter_or_account_and_the_refund():
    assert receipts.fulfilment_failed("fr", "ORD-1", 5_000, "units", METER) == (
        f"Paiement ORD-1 de 5 000 FCFA pour le compteur {METER} bien arrivé, mais l'opération n'a pas pu aboutir. "
        "Le service client vous contacte pour le remboursement.")
    assert receipts.fulfilment_failed("en", "ORD-1", 5_000, "bill", "GA-1000005").startswith(
        "Payment ORD-1 of 5,000 FCFA for account GA-1000005 arrived, but")


# -- resends ---------------------------------------------------------------------------------------
def test_token_resend_lists_the_last_tokens_newest_first():
    older = vend(issued_at=datetime.datetime(2026, 2, 1, 8, 0), tokens=("11112222333344445555",), amount=2_000)
    lines = receipts.token_resend("fr", [vend(), older], SETTINGS).splitlines()
    assert lines[0] == "Vos derniers codes:"
    assert lines[1] == f"12/03/2026 compteur {METER}, 5 000 FCFA, 48,9 kWh"
    assert lines[2] == "Code: 2371 6100 5011 8319 4197"
    assert lines[3].startswith("01/02/2026") and lines[4] == "Code: 1111 2222 3333 4444 5555"
    english = receipts.token_resend("en", [vend()], SETTINGS).splitlines()
    assert english == ["Your last tokens:", f"12/03/2026 meter {METER}, 5,000 FCFA, 48.9 kWh", CODE_LINE["en"]]
    assert receipts.token_resend("en", [], SETTINGS) == "No recent purchase for this meter."


def test_a_late_payment_during_an_incident_that_waives_penalties_says_none_applies():
    fr = receipts.bill_receipt("fr", "ORDER002", "C-0004567", 27_300, 0, "Q-1", penalty_waived=True)
    assert fr.endswith("Rien à payer. Merci!\nAucune pénalité de retard: incident en cours dans votre région.")
    en = receipts.bill_receipt("en", "ORDER002", "C-0004567", 27_300, 0, "Q-1", penalty_waived=True)
    assert en.endswith("\nNo late-payment penalty: incident under way in your region.")
    assert sms_segments(fr) == 1 and sms_segments(en) == 1
