"""Paying a postpaid bill with the built-in billing: once per reference, atomically."""
from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest

from state import journal, switches
from utility.billing import BillingUnavailable, BuiltinBilling, UnknownAccount
from utility.customers import Account, RedisCustomerBase


@pytest.fixture
def billing(any_redis) -> BuiltinBilling:
    customers = RedisCustomerBase(any_redis)
    customers.upsert([Account("C-1", "", "Ondo Paul", "+24107000003", "Estuaire", "postpaid", 27_300,
                              datetime.date(2026, 11, 29))])
    return BuiltinBilling(any_redis, customers)


def test_a_payment_lowers_the_balance_and_gives_a_receipt(billing):
    payment = billing.pay("C-1", 10_000, "ORD-1")
    assert (payment.amount, payment.balance_after) == (10_000, 17_300)
    assert payment.receipt_no.startswith("B")
    assert billing.customers.account("C-1").balance_due == 17_300


def test_the_same_reference_posts_once_even_all_at_once(billing):
    with ThreadPoolExecutor(8) as pool:
        payments = list(pool.map(lambda _: billing.pay("C-1", 5_000, "ORD-2"), range(8)))
    assert {p.balance_after for p in payments} == {22_300}
    assert billing.customers.account("C-1").balance_due == 22_300
    assert len([e for e in journal.read(billing.redis) if e["kind"] == "bill.paid"]) == 1


def test_unknown_account_and_switched_off_billing(billing):
    from tests.seam import BILLING, seam_on

    billing = seam_on(billing.redis).guard(billing, BILLING)  # the switch is the seam's, as in services()
    with pytest.raises(UnknownAccount):
        billing.pay("NOPE", 1_000, "ORD-3")
    switches.set_down(billing.redis, "billing", True)
    with pytest.raises(BillingUnavailable) as down:
        billing.pay("C-1", 1_000, "ORD-4")
    assert down.value.retryable
    switches.set_down(billing.redis, "billing", False)
    assert billing.pay("C-1", 1_000, "ORD-4").balance_after == 26_300
