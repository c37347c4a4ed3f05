"""The customer's words for every verdict: the USSD END screen and the SMS reply say the same
text, so each one, in each language, with the longest values it can carry, is GSM-7 and one
SMS (160 septets, which also fits a USSD screen of 182)."""
from __future__ import annotations

import datetime
import zoneinfo
from decimal import Decimal

import pytest

from sms.gsm import gsm7_septets
from utility.billing import BillPayment
from utility.campaigns import texts
from utility.campaigns.model import MAX_UNITS, MAX_XAF, REASONS, Benefit, Verdict
from utility.campaigns.texts import LANGUAGES, credit_sms, failed_sms, verdict_text

DOUALA = zoneinfo.ZoneInfo("Africa/Douala")
WHEN = datetime.datetime(2026, 12, 28, 23, 59, tzinfo=DOUALA)
CODE = "WWWWWWWWWWW9"  # 12 characters, the longest code
REFERENCE = "ABCD2345"
ACCOUNT = "GA-10000000000000005"  # 20 characters, the longest account number
METER = "0140000001234"  # 13 digits, the longest meter
TYPED = "CM-1000005 0140000001234 999"  # more than a keypad number: cut when quoted back
REGION = "R" * 40  # the longest region of the customer file
SUPPORT = "+237 222 23 45 67"  # the longest SUPPORT_CONTACT

BENEFITS = [Benefit("kwh", MAX_UNITS), Benefit("m3", MAX_UNITS), Benefit("xaf", Decimal(MAX_XAF))]


def worst_verdicts() -> list[Verdict]:
    verdicts = []
    for benefit in BENEFITS:
        for meter in (METER, ""):
            verdicts.append(Verdict(CODE, reference=REFERENCE, registered_at=WHEN, account=ACCOUNT, meter=meter,
                                    benefit=benefit, within_hours=999))
    base = Verdict(CODE, account=ACCOUNT, meter=METER)
    for reason in REASONS:
        verdicts.append(Verdict(CODE, reason, reference=REFERENCE, registered_at=WHEN, number=TYPED, account=ACCOUNT,
                                meter=METER, tariff="t" * 20, region=REGION, opens_at=WHEN, ended_at=WHEN))
        verdicts.append(Verdict(CODE, reason, reference=REFERENCE, registered_at=WHEN, number=TYPED, account=ACCOUNT,
                                tariff="postpaid", region=REGION, opens_at=WHEN))  # closed by the operator
        verdicts.append(Verdict(base.code, reason, account=ACCOUNT, number=TYPED))  # the least said
    return verdicts


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_verdict_is_one_gsm7_sms_with_the_longest_values(lang: str) -> None:
    for verdict in worst_verdicts():
        text = verdict_text(lang, verdict)
        septets = gsm7_septets(text)
        assert septets is not None, f"not GSM-7: {text!r}"
        assert septets <= 160, f"{septets} septets: {text!r}"
        assert "{" not in text, text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_fulfilment_sms_fit_one_sms(lang: str) -> None:
    for balance in (999_999_999, 0, -MAX_XAF):
        payment = BillPayment(REFERENCE, "B2604140000001", ACCOUNT, MAX_XAF, balance, "2026-04-14T08:00:00+00:00")
        text = credit_sms(lang, CODE, REFERENCE, payment)
        assert (gsm7_septets(text) or 999) <= 160, text
    for meter in (METER, ""):
        text = failed_sms(lang, CODE, REFERENCE, ACCOUNT, meter, SUPPORT)
        assert (gsm7_septets(text) or 999) <= 160, text
    usage = texts.text(lang, "sms.usage", code=CODE)  # the code texted alone
    assert (gsm7_septets(usage) or 999) <= 160, usage


def test_what_a_customer_reads_in_french() -> None:
    accepted = Verdict("GRATUIT", reference="ABCD2345", account="CM-1000001", meter="01400000012",
                       benefit=Benefit("kwh", Decimal(50)), within_hours=48)
    assert verdict_text("fr", accepted) == (
        "Inscription GRATUIT recue pour le compteur 01400000012, réf ABCD2345. 50 kWh gratuits arrivent par SMS "
        "sous 48 h.")
    tariff = Verdict("GRATUIT", "tariff", account="GA-1000005", tariff="postpaid")
    assert verdict_text("fr", tariff) == "Votre tarif (Postpayé) n'est pas concerné par GRATUIT."
    already = Verdict("GRATUIT", "already", reference="ABCD2345",
                      registered_at=datetime.datetime(2026, 4, 14, 9, 30, tzinfo=DOUALA))
    assert verdict_text("fr", already) == "Déjà inscrit à GRATUIT le 14/04/2026, réf ABCD2345."
    ended = Verdict("GRATUIT", "closed", ended_at=datetime.datetime(2026, 4, 30, 20, 0, tzinfo=DOUALA))
    assert verdict_text("fr", ended) == "GRATUIT est terminé depuis le 30/04/2026: les inscriptions sont closes."


def test_what_a_customer_reads_in_english() -> None:
    credit = Verdict("GRATUIT", reference="ABCD2345", account="GA-1000005", benefit=Benefit("xaf", Decimal(5000)),
                     within_hours=48)
    assert verdict_text("en", credit) == (
        "GRATUIT registration received for account GA-1000005, ref ABCD2345. 5,000 FCFA will be taken off your "
        "bill within 48 h.")
    region = Verdict("GRATUIT", "region", region="Littoral")
    assert verdict_text("en", region) == "Your region (Littoral) is not part of GRATUIT."
    not_open = Verdict("GRATUIT", "not_open", opens_at=datetime.datetime(2026, 5, 1, 8, 0, tzinfo=DOUALA))
    assert verdict_text("en", not_open) == "GRATUIT is not open yet: registration starts on 01/05/2026 at 08:00."


def test_a_language_without_texts_reads_french() -> None:
    quota = Verdict("GRATUIT", "quota")
    assert verdict_text("sw", quota) == verdict_text("fr", quota)
