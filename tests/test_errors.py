"""One error base for every outside failure (utility.errors): each family's errors derive
from it, the "cannot answer now" ones from its one Unavailable, and what a caller may do
next is read from ``retryable``, never guessed from a class."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sms.client import SmsError
from utility.billing import BillingError, BillingUnavailable, UnknownAccount
from utility.errors import OutsideError, Unavailable, retryable
from utility.payments.base import PaymentError, ProviderMisconfigured, ProviderUnavailable
from utility.vending.base import AmountTooLow, BackendUnavailable, UnknownMeter, VendingError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("error", "system", "code"),
    [
        (BackendUnavailable("down"), "vending", "backend_unavailable"),
        (BillingUnavailable("down"), "billing", "backend_unavailable"),
        (ProviderUnavailable("down"), "payments", "provider_unavailable"),
    ],
)
def test_the_unavailable_errors_are_one(error: OutsideError, system: str, code: str) -> None:
    assert isinstance(error, Unavailable) and error.retryable and retryable(error)
    assert (error.system, error.code, str(error)) == (system, code, "down")


@pytest.mark.parametrize(
    ("error", "family"),
    [
        (UnknownMeter("no such meter", meter="****0012"), VendingError),
        (AmountTooLow("minimum 1000", minimum=1000), VendingError),
        (UnknownAccount("CM-9"), BillingError),
        (PaymentError("reference used by another payment"), PaymentError),
        (ProviderMisconfigured("currency refused", "INVALID_CURRENCY"), PaymentError),
    ],
)
def test_refusals_are_outside_errors_that_are_not_retryable(error: OutsideError, family: type) -> None:
    assert isinstance(error, family) and isinstance(error, OutsideError) and not isinstance(error, Unavailable)
    assert not error.retryable and not retryable(error)


def test_the_families_keep_their_details_and_codes() -> None:
    low = AmountTooLow("minimum 1000", minimum=1000)
    assert (low.code, low.details, str(low)) == ("amount_too_low", {"minimum": 1000}, "minimum 1000")
    assert str(VendingError()) == "vending_error"  # a vending error with no words says its code
    assert ProviderMisconfigured("refused", "INVALID_CURRENCY").code == "INVALID_CURRENCY"
    assert PaymentError("x").code == "payment_error"  # the class's own, untouched by another's instance


def test_an_sms_error_says_retryable_unconfirmed_or_refused() -> None:
    later = SmsError("502", retryable=True)
    lost = SmsError("read timeout", retryable=True, maybe_sent=True)  # maybe sent: never retryable
    final = SmsError("invalid number", retryable=False)
    assert isinstance(later, OutsideError) and later.system == "sms"
    assert [(e.retryable, e.unconfirmed, e.code) for e in (later, lost, final)] == [
        (True, False, "unavailable"), (False, True, "maybe_sent"), (False, False, "refused")]
    assert [e.outcome for e in (later, lost, final)] == ["retryable", "maybe sent", "final"]


def test_only_outside_errors_are_retryable() -> None:
    class Lookalike(Exception):
        retryable = True  # duck typing would believe it

    assert not retryable(Lookalike()) and not retryable(ValueError())


def test_no_shipped_module_guesses_retryable_by_duck_typing() -> None:
    shipped = [ROOT / "app.py", *(p for package in ("ussd", "sms", "state", "utility") for p in (ROOT / package).rglob("*.py"))]
    guess = re.compile(r"getattr\([^)]*[\"'](retryable|code)[\"']")
    found = [f"{path.relative_to(ROOT)}:{n}" for path in shipped
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if guess.search(line)]
    assert found == []
