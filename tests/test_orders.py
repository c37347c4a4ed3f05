"""An order's life: confirm, pay on the handset, get the token by SMS; and every way
that can go wrong (duplicates, declines, a vending system down for days, late money)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import pytest

from state import journal, switches
from utility.billing import BuiltinBilling
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit
from utility.orders import BILL, UNITS, Orders, reference_for
from utility.payments.base import PaymentRequest, PaymentResult, ProviderUnavailable
from utility.vending.builtin import BuiltinVending, StsSettings

METER = with_check_digit("0141234567")
PHONE = "+237699000001"


@dataclass
class FakeMoney:
    """A mobile-money provider: records requests; the test decides what it answers."""

    name: str = "fake"
    down: bool = False
    requests: list[PaymentRequest] = field(default_factory=list)

    def request(self, payment: PaymentRequest) -> PaymentResult:
        if self.down:
            raise ProviderUnavailable("provider down")
        self.requests.append(payment)
        return PaymentResult(self.name, f"P-{payment.order_ref}", payment.order_ref, "pending")

    def result(self, order_ref: str, state: str, reason: str = "") -> PaymentResult:
        return PaymentResult(self.name, f"P-{order_ref}", order_ref, state, reason)


@dataclass
class Sms:
    told: list[tuple[str, str]] = field(default_factory=list)

    def tell(self, order, what: str) -> None:
        self.told.append((order.reference, what))


@dataclass
class Later:
    jobs: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, reference: str, delay: float) -> None:
        self.jobs.append((reference, delay))


@pytest.fixture
def redis_client(any_redis):
    return any_redis


@pytest.fixture
def world(redis_client):
    customers = RedisCustomerBase(redis_client)
    customers.upsert([
        Account("CM-1", METER, "Jean Mbarga", PHONE, "Centre", "prepaid", 0, None),
        Account("C-2", "", "Ondo Paul", PHONE, "Centre", "postpaid", 27_300, datetime.date(2026, 12, 1)),
    ])
    vending = BuiltinVending(redis_client, customers, StsSettings(vending_key=bytes.fromhex("ab" * 8)))
    money, sms, later = FakeMoney(), Sms(), Later()
    orders = Orders(redis_client, vending, BuiltinBilling(redis_client, customers), money, sms, later)

    def run_background() -> None:
        while later.jobs:
            reference, _delay = later.jobs.pop(0)
            orders.fulfil(reference)

    return orders, money, sms, later, run_background


def buy(orders, reference: str = "ORDER001", amount: int = 5_000):
    return orders.place(UNITS, PHONE, "fr", METER, amount, PHONE, reference)


def credits(orders) -> list[dict]:
    return [e for e in journal.read(orders.redis, 1000) if e["kind"] == "vend.credit"]


def test_confirm_pay_and_the_token_comes_by_sms(world):
    orders, money, sms, later, run_background = world
    order = buy(orders)
    assert order.state == "payment_pending" and money.requests[0].amount == 5_000
    assert orders.on_payment_result(money.result("ORDER001", "successful")) == "paid"
    run_background()
    order = orders.get("ORDER001")
    assert order.state == "receipt_sent"
    assert len(order.receipt["tokens"]) == 1 and len(order.receipt["tokens"][0]) == 20
    assert sms.told == [("ORDER001", "receipt")]
    moves = [(e["source"], e["dest"]) for e in journal.read(orders.redis, 1000) if e["kind"] == "order.transition"]
    assert moves == [("created", "payment_pending"), ("payment_pending", "paid"), ("paid", "fulfilled"),
                     ("fulfilled", "receipt_sent")]


def test_ten_duplicate_callbacks_make_one_token(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    answers = [orders.on_payment_result(money.result("ORDER001", "successful")) for _ in range(10)]
    assert answers[0] == "paid" and all(a.startswith("ignored") for a in answers[1:])
    run_background()
    for _ in range(3):
        orders.fulfil("ORDER001")  # a job run twice is harmless too
    assert len(credits(orders)) == 1
    assert sms.told == [("ORDER001", "receipt")]


def test_vending_down_payment_received_sms_then_the_token_when_it_returns(world):
    orders, money, sms, later, run_background = world
    switches.set_down(orders.redis, "vending", True)
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "successful"))
    orders.fulfil(later.jobs.pop(0)[0])
    assert orders.get("ORDER001").state == "paid_awaiting_fulfilment"
    assert sms.told == [("ORDER001", "payment_received")]
    for _ in range(3):  # hours pass; still down; the customer is not told again
        reference, delay = later.jobs.pop(0)
        assert delay > 0
        orders.fulfil(reference)
    assert sms.told == [("ORDER001", "payment_received")]
    assert [d for _, d in later.jobs] == [120]  # backing off
    switches.set_down(orders.redis, "vending", False)
    later.jobs.clear()  # the backoff slot is an hour away...
    assert orders.retry_waiting() == 1  # ...but the operator says vending is back
    run_background()
    assert orders.get("ORDER001").state == "receipt_sent"
    assert orders.retry_waiting() == 0
    assert sms.told == [("ORDER001", "payment_received"), ("ORDER001", "receipt")]
    assert len(credits(orders)) == 1


def test_a_declined_payment_gives_a_failure_sms_and_no_token(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "failed", "insufficient_funds"))
    order = orders.get("ORDER001")
    assert (order.state, order.reason) == ("declined", "insufficient_funds")
    assert sms.told == [("ORDER001", "payment_failed")] and not later.jobs
    assert orders.on_payment_result(money.result("ORDER001", "successful")).startswith("ignored")
    assert not credits(orders)


def test_a_success_after_expiry_is_still_fulfilled_once(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "failed", "expired"))
    assert orders.get("ORDER001").state == "expired"
    orders.on_payment_result(money.result("ORDER001", "successful"))
    orders.on_payment_result(money.result("ORDER001", "successful"))
    run_background()
    assert orders.get("ORDER001").state == "receipt_sent" and len(credits(orders)) == 1


def test_a_callback_for_an_unknown_order_is_acknowledged_and_not_acted_on(world):
    orders, money, sms, later, run_background = world
    assert orders.on_payment_result(money.result("NOSUCH01", "successful")) == "unknown order"
    assert not later.jobs and not sms.told


def test_provider_down_at_request_time_leaves_no_order_pending(world):
    orders, money, sms, later, run_background = world
    money.down = True
    order = buy(orders)
    assert (order.state, order.reason) == ("failed", "provider_unavailable")
    assert orders.get("ORDER001").final


def test_placing_the_same_order_twice_asks_for_the_money_once(world):
    orders, money, sms, later, run_background = world
    assert buy(orders).reference == buy(orders).reference
    assert len(money.requests) == 1
    assert [o.reference for o in orders.recent(PHONE)] == ["ORDER001"]


def test_a_bill_payment_posts_against_the_balance(world):
    orders, money, sms, later, run_background = world
    orders.place(BILL, PHONE, "en", "C-2", 27_300, PHONE, "BILL0001")
    orders.on_payment_result(money.result("BILL0001", "successful"))
    run_background()
    order = orders.get("BILL0001")
    assert order.state == "receipt_sent" and order.receipt["balance_after"] == 0


def test_a_meter_blocked_after_payment_fails_the_order_and_says_so(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.vending.block(METER, "tamper")
    orders.on_payment_result(money.result("ORDER001", "successful"))
    run_background()
    order = orders.get("ORDER001")
    assert (order.state, order.reason) == ("failed", "meter_blocked")
    assert sms.told == [("ORDER001", "fulfilment_failed")]


def test_references_are_short_stable_and_readable():
    first = reference_for("africastalking", "ATUid_1")
    assert first == reference_for("africastalking", "ATUid_1") != reference_for("africastalking", "ATUid_2")
    assert len(first) == 8 and first.isalnum() and first.isupper()


def test_a_success_after_the_provider_seemed_down_is_still_fulfilled(world):
    """A timed-out payment request may have reached the provider: money taken means a token."""
    orders, money, sms, later, run_background = world
    money.down = True
    assert buy(orders).state == "failed"
    orders.on_payment_result(money.result("ORDER001", "successful"))
    run_background()
    assert orders.get("ORDER001").state == "receipt_sent" and len(credits(orders)) == 1


def test_a_success_for_an_order_that_failed_to_deliver_does_not_vend_again(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.vending.block(METER, "tamper")
    orders.on_payment_result(money.result("ORDER001", "successful"))
    run_background()
    assert orders.on_payment_result(money.result("ORDER001", "successful")).startswith("ignored")
    assert not later.jobs


def test_a_payer_refused_outright_is_told_at_once(world):
    orders, money, sms, later, run_background = world
    money.request = lambda payment: PaymentResult("fake", "P-X", payment.order_ref, "failed", "payer_not_found")
    order = buy(orders)
    assert (order.state, order.reason) == ("declined", "payer_not_found")
    assert sms.told == [("ORDER001", "payment_failed")]
