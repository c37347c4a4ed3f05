"""An order's life: confirm, pay on the handset, get the token by SMS; and every way
that can go wrong (duplicates, declines, a vending system down for days, late money)."""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

import pytest

from state import journal, switches
from state.limits import Limit, LimitReached
from tests.seam import BILLING, BUILTIN_VENDING, seam_on
from utility.billing import BuiltinBilling
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit
from utility.orders import BILL, UNITS, OrderLimits, Orders, ReferenceTaken, new_reference
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
    resent: list[tuple[str, list[str]]] = field(default_factory=list)  # (phone, tokens)

    def tell(self, order, what: str) -> None:
        self.told.append((order.reference, what))

    def resend(self, phone: str, lang: str, vends) -> None:
        self.resent.append((phone, [token for vend in vends for token in vend.tokens]))


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
    # Through the seam, as services() builds them: the operators' switches are its.
    seam = seam_on(redis_client)
    vending = seam.guard(BuiltinVending(redis_client, customers, StsSettings(vending_key=bytes.fromhex("ab" * 8))),
                         BUILTIN_VENDING)
    billing = seam.guard(BuiltinBilling(redis_client, customers), BILLING)
    money, sms, later = FakeMoney(), Sms(), Later()
    orders = Orders(redis_client, vending, billing, money, sms, later, customers=customers)

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
    # Each duplicate makes sure the delivery is under way (a lost job is requeued); the
    # delivery itself is idempotent.
    assert answers[0] == "paid" and set(answers[1:]) == {"fulfilment requeued (paid)"}
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


def test_billing_down_a_bill_paid_is_told_received_and_posted_when_it_returns(world, redis_client):
    orders, money, sms, later, run_background = world
    switches.set_down(redis_client, "billing", True)
    orders.place(BILL, PHONE, "fr", "C-2", 27_300, PHONE, "BILL0002")
    orders.on_payment_result(money.result("BILL0002", "successful"))
    orders.fulfil("BILL0002")
    assert orders.get("BILL0002").state == "paid_awaiting_fulfilment"
    assert sms.told == [("BILL0002", "payment_received")]
    switches.set_down(redis_client, "billing", False)
    assert orders.retry_waiting() == 1
    run_background()
    order = orders.get("BILL0002")
    assert order.state == "receipt_sent" and order.receipt["balance_after"] == 0
    assert sms.told == [("BILL0002", "payment_received"), ("BILL0002", "receipt")]


@pytest.mark.parametrize(("due", "waived_there", "said"), [
    (datetime.date(2020, 1, 1), True, True),  # paid late while an incident waives penalties: said
    (datetime.date(2020, 1, 1), False, False),  # late, no such incident
    (datetime.date(2999, 1, 1), True, False),  # on time: no penalty to waive
])
def test_a_late_bill_paid_during_an_incident_that_waives_penalties_says_so(world, redis_client, due, waived_there,
                                                                            said):
    orders, money, sms, later, run_background = world
    asked: list[tuple[str, datetime.datetime]] = []
    orders.penalties_waived = lambda region, at: asked.append((region, at)) or waived_there
    orders.customers.upsert([Account("C-2", "", "Ondo Paul", PHONE, "Centre", "postpaid", 27_300, due)])
    orders.place(BILL, PHONE, "fr", "C-2", 27_300, PHONE, "BILL0003")
    orders.on_payment_result(money.result("BILL0003", "successful"))
    run_background()
    order = orders.get("BILL0003")
    assert order.receipt["penalty_waived"] is said
    if due.year == 2020:
        ((region, at),) = asked
        assert region == "Centre" and abs(at.timestamp() - order.paid_at) < 1  # the moment paid, not posted


def test_a_meter_blocked_after_payment_fails_the_order_and_says_so(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.vending.block(METER, "tamper")
    orders.on_payment_result(money.result("ORDER001", "successful"))
    run_background()
    order = orders.get("ORDER001")
    assert (order.state, order.reason) == ("failed", "meter_blocked")
    assert sms.told == [("ORDER001", "fulfilment_failed")]


def test_references_are_short_readable_and_never_the_same_twice():
    drawn = {new_reference() for _ in range(1000)}
    assert len(drawn) == 1000
    assert all(len(r) == 8 and r.isalnum() and r.isupper() and not {"0", "1"} & set(r) for r in drawn)


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


# -- holes found by probing (issue 7) -------------------------------------------------------------
STRANGER = "+237699000777"
OTHER_METER = with_check_digit("0147654321")


def test_resend_never_sends_the_token_of_a_meter_this_phone_did_not_pay_for(world):
    """The probe: a phone orders 1,000 FCFA for a stranger's meter, its payer declines, then
    it asks "resend my last token" and used to receive the stranger's paid token."""
    orders, money, sms, later, run_background = world
    orders.customers.upsert([Account("CM-9", OTHER_METER, "Awa Stranger", "+237699000888", "Centre", "prepaid",
                                     0, None)])
    orders.place(UNITS, "+237699000888", "fr", OTHER_METER, 2_000, "+237699000888", "VICTIM01")
    orders.on_payment_result(money.result("VICTIM01", "successful"))
    run_background()
    victim_token = orders.get("VICTIM01").receipt["tokens"][-1]
    orders.place(UNITS, STRANGER, "fr", OTHER_METER, 1_000, "+237670000009", "PROBE001")
    orders.on_payment_result(money.result("PROBE001", "failed", "insufficient_funds"))
    assert orders.resend_last_tokens(STRANGER, "fr").outcome == "none"
    assert sms.resent == []
    # Paying for it does give this phone the token of its own purchase, and only that one.
    orders.place(UNITS, STRANGER, "fr", OTHER_METER, 1_000, STRANGER, "PROBE002")
    orders.on_payment_result(money.result("PROBE002", "successful"))
    run_background()
    assert orders.resend_last_tokens(STRANGER, "fr").reference == "PROBE002"
    (phone, tokens), = sms.resent
    assert phone == STRANGER and victim_token not in tokens
    assert tokens == orders.get("PROBE002").receipt["tokens"]


def test_resend_gives_the_last_vend_of_a_meter_linked_to_the_phone(world):
    orders, money, sms, later, run_background = world
    orders.vending.vend(METER, 2_000, "AGENCY01")  # bought at an agency, not through us
    assert orders.resend_last_tokens(PHONE, "fr").reference == "AGENCY01"


def test_a_reused_reference_never_hands_over_another_callers_order(world):
    """The probe: phone A completed a purchase in session X; phone B walked another purchase
    in the same session X and was shown A's reference, with no order of its own."""
    orders, money, sms, later, run_background = world
    buy(orders, reference="SHARED01")
    with pytest.raises(ReferenceTaken):
        orders.place(UNITS, STRANGER, "fr", METER, 3_000, STRANGER, "SHARED01")
    order = orders.get("SHARED01")
    assert (order.phone, order.amount) == (PHONE, 5_000)
    assert len(money.requests) == 1 and orders.recent(STRANGER) == []


def test_an_order_whose_payment_request_crashes_still_ends(world):
    """A provider adapter that raises something unexpected must not leave an order in
    `created` forever; it ends failed as unreachable, so a late success is still fulfilled."""
    orders, money, sms, later, run_background = world

    def broken(payment):
        raise TypeError("a bug in an adapter")

    money.request = broken
    order = buy(orders)
    assert (order.state, order.reason) == ("failed", "provider_unavailable")
    assert orders.get("ORDER001").final


def test_a_malformed_payer_leaves_no_order_behind(world):
    orders, money, sms, later, run_background = world
    with pytest.raises(ValueError):
        orders.place(UNITS, PHONE, "fr", METER, 5_000, "+2３７６９９０００００１", "ORDER001")
    assert orders.get("ORDER001") is None and orders.recent(PHONE) == []


def test_the_sweep_finishes_what_a_crash_left_half_done(world):
    orders, money, sms, later, run_background = world
    # A crash while asking for the money: the order stayed `created`.
    def dies(*args):
        raise SystemExit  # the process "dies" in the middle of the call

    money.request = dies
    with pytest.raises(SystemExit):
        buy(orders, reference="CRASHED1")
    assert orders.get("CRASHED1").state == "created"
    del money.request  # the provider's own method again
    # A paid order whose fulfilment job was lost with its worker.
    buy(orders, reference="LOSTJOB1")
    orders.on_payment_result(money.result("LOSTJOB1", "successful"))
    later.jobs.clear()
    assert orders.sweep() == {}  # nothing is stale yet
    done = orders.sweep(now=time.time() + 60)
    assert done == {"ended created": 1, "requeued paid": 1}
    assert (orders.get("CRASHED1").state, orders.get("CRASHED1").reason) == ("failed", "provider_unavailable")
    run_background()
    assert orders.get("LOSTJOB1").state == "receipt_sent"
    assert orders.sweep(now=time.time() + 120) == {}  # both final: out of the index


def test_a_fulfilled_order_whose_receipt_was_lost_gets_it_once(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "successful"))
    def redis_gone(*args):
        raise ConnectionError("redis gone")  # dies at the SMS

    sms.tell = redis_gone
    with pytest.raises(ConnectionError):
        run_background()
    assert orders.get("ORDER001").state == "fulfilled"
    del sms.tell  # the outbox's own method again
    orders.fulfil("ORDER001")
    orders.fulfil("ORDER001")
    assert orders.get("ORDER001").state == "receipt_sent"
    assert sms.told == [("ORDER001", "receipt")] and len(credits(orders)) == 1


def test_a_phone_that_asks_too_often_is_told_when_to_come_back(world):
    orders, money, sms, later, run_background = world
    orders.limits = OrderLimits(orders=(Limit(2, 60),), payer_prompts=(Limit(3, 600),), resends=(Limit(1, 60),))
    buy(orders, reference="ORDER001")
    buy(orders, reference="ORDER002")
    with pytest.raises(LimitReached) as limited:
        buy(orders, reference="ORDER003")
    assert 0 < limited.value.retry_after <= 60 and limited.value.minutes == 1
    assert orders.get("ORDER003") is None and len(money.requests) == 2
    assert buy(orders, reference="ORDER002").reference == "ORDER002"  # a retry is not a new order
    # Payment prompts to one payer's handset are limited whoever asks.
    orders.place(UNITS, STRANGER, "fr", METER, 1_000, PHONE, "ORDER004")
    with pytest.raises(LimitReached):
        orders.place(UNITS, "+237699000555", "fr", METER, 1_000, PHONE, "ORDER005")
    orders.on_payment_result(money.result("ORDER001", "successful"))
    run_background()
    assert orders.resend_last_tokens(PHONE, "fr").outcome == "sent"
    with pytest.raises(LimitReached):
        orders.resend_last_tokens(PHONE, "fr")
    assert len(sms.resent) == 1


def test_a_success_said_again_requeues_a_delivery_whose_job_was_lost(world):
    """The drill: the move to `paid` was saved but its job never queued (Redis froze);
    the provider's next word for it must not be ignored."""
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "successful"))
    later.jobs.clear()  # the job was lost
    assert orders.on_payment_result(money.result("ORDER001", "successful")) == "fulfilment requeued (paid)"
    run_background()
    assert orders.get("ORDER001").state == "receipt_sent" and len(credits(orders)) == 1


def test_our_own_redis_blinking_during_a_vend_is_retried_in_seconds_without_news(world):
    orders, money, sms, later, run_background = world
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "successful"))
    real_vend = orders.vending.vend
    import redis as redis_py

    from utility.vending.base import BackendUnavailable

    def blink(*args, **kwargs):
        try:
            raise redis_py.TimeoutError("Timeout reading from socket")
        except redis_py.TimeoutError as exc:
            raise BackendUnavailable("vend records unavailable: TimeoutError") from exc

    orders.vending.vend = blink
    reference, _ = later.jobs.pop(0)
    orders.fulfil(reference)
    assert orders.get("ORDER001").state == "paid" and sms.told == []
    assert later.jobs == [("ORDER001", 2)]
    orders.vending.vend = real_vend
    run_background()
    assert orders.get("ORDER001").state == "receipt_sent" and sms.told == [("ORDER001", "receipt")]


def test_fulfilment_retries_follow_the_one_backoff_with_its_jitter(world, monkeypatch):
    from utility import calls
    from utility.orders import RETRY_CAP, RETRY_FIRST

    orders, money, sms, later, run_background = world
    monkeypatch.setattr(calls, "jitter", lambda: 0.0)  # the bottom of the jitter: half the schedule
    switches.set_down(orders.redis, "vending", True)
    buy(orders)
    orders.on_payment_result(money.result("ORDER001", "successful"))
    delays = []
    for _ in range(12):
        orders.fulfil(later.jobs.pop(0)[0])
        delays.append(later.jobs[0][1])
    assert delays == [calls.backoff(attempt, RETRY_FIRST, RETRY_CAP) for attempt in range(1, 13)]
    assert delays[:3] == [7.5, 15, 30] and delays[-1] == RETRY_CAP / 2
