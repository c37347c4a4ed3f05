"""The customer's words about a campaign: every verdict of a registration, and the SMS of a
bill credit or of a registration that could not be served.

`verdict_text` is what both channels say: the USSD END screen and the SMS reply, so each
text is GSM-7 and one SMS long (tests/campaigns/test_texts.py renders each with the
longest values). Numbers use the one format of each language (sms.receipts.money, quantity);
values from elsewhere pass through to_gsm7 so one odd character cannot switch a message
to UCS-2.
"""
from __future__ import annotations

from pathlib import Path

from sms.catalogue import Catalogue
from sms.gsm import clip, to_gsm7
from sms.receipts import money, quantity
from utility.billing import BillPayment
from utility.campaigns.model import REGION_WIDTH, Benefit, Verdict

TEXTS = Catalogue(Path(__file__).parent / "texts")
LANGUAGES = TEXTS.languages
NUMBER_WIDTH = 24  # septets of a typed number quoted back (an account number has at most 20)
TARIFF_WIDTH = 20  # a tariff code's length in the customer file

DATE = "%d/%m/%Y"
TIME = "%H:%M"


def text(lang: str, key: str, **values: object) -> str:
    return TEXTS.text(lang, key, **values)


def benefit_text(lang: str, benefit: Benefit) -> str:
    """"50 kWh", "12,5 m3", "5 000 FCFA"."""
    amount = money(lang, int(benefit.amount)) if benefit.kind == "xaf" else quantity(lang, benefit.amount)
    return text(lang, f"benefit.{benefit.kind}", amount=amount)


def target_text(lang: str, account: str, meter: str) -> str:
    """"compteur 01400000012" when there is a meter (what the credit goes to), else "compte CM-1000004"."""
    if meter:
        return text(lang, "target.meter", number=to_gsm7(meter))
    return text(lang, "target.account", number=to_gsm7(account))


def tariff_text(lang: str, tariff: str) -> str:
    known = TEXTS.texts(lang if lang in LANGUAGES else TEXTS.default)
    return known.get(f"tariff.{tariff}") or clip(to_gsm7(tariff), TARIFF_WIDTH)


def verdict_text(lang: str, verdict: Verdict) -> str:
    """The verdict in the customer's words (French when ``lang`` has no texts)."""
    code = verdict.code
    if verdict.accepted:
        assert verdict.benefit is not None, "an accepted verdict says what comes"
        kind = "credit" if not verdict.meter else "units" if verdict.benefit.units else "token"
        return text(lang, f"accepted.{kind}", code=code, target=target_text(lang, verdict.account, verdict.meter),
                    reference=verdict.reference, benefit=benefit_text(lang, verdict.benefit),
                    hours=verdict.within_hours)
    reason = verdict.reason
    if reason in ("unknown_number", "ambiguous"):
        return text(lang, f"refused.{reason}", number=clip(to_gsm7(verdict.number), NUMBER_WIDTH))
    if reason == "tariff":
        return text(lang, "refused.tariff", code=code, tariff=tariff_text(lang, verdict.tariff))
    if reason == "region":
        return text(lang, "refused.region", code=code, region=clip(to_gsm7(verdict.region), REGION_WIDTH))
    if reason == "not_listed":
        return text(lang, "refused.not_listed", code=code, target=target_text(lang, verdict.account, verdict.meter))
    if reason == "not_open" and verdict.opens_at is not None:
        return text(lang, "refused.not_open", code=code, date=verdict.opens_at.strftime(DATE),
                    time=verdict.opens_at.strftime(TIME))
    if reason == "closed" and verdict.ended_at is not None:
        return text(lang, "refused.ended", code=code, date=verdict.ended_at.strftime(DATE))
    if reason == "already":
        when = verdict.registered_at.strftime(DATE) if verdict.registered_at else "?"
        return text(lang, "refused.already", code=code, date=when, reference=verdict.reference)
    if reason == "not_open":
        return text(lang, "refused.not_yet", code=code)
    if reason in ("quota", "closed", "paused"):
        return text(lang, f"refused.{reason}", code=code)
    raise ValueError(f"no words for the verdict {reason!r}")


def credit_sms(lang: str, code: str, reference: str, payment: BillPayment) -> str:
    """A bill credit was posted: how much, on which account, and what the bill is now."""
    balance = payment.balance_after
    if balance > 0:
        rest = text(lang, "fulfilment.balance", balance=money(lang, balance))
    elif balance == 0:
        rest = text(lang, "fulfilment.clear")
    else:
        rest = text(lang, "fulfilment.credit_left", credit=money(lang, -balance))
    return text(lang, "fulfilment.credit", code=code, amount=money(lang, payment.amount),
                account=to_gsm7(payment.account_number), reference=reference, rest=rest)


def failed_sms(lang: str, code: str, reference: str, account: str, meter: str, support: str | None) -> str:
    """A registration accepted but not served (its meter blocked since, ...): say so, and whom to call."""
    return text(lang, "fulfilment.failed", code=code, reference=reference, target=target_text(lang, account, meter),
                contact=support or text(lang, "fulfilment.support"))
