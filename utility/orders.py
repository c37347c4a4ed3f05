"""Orders: a purchase of prepaid units or a bill payment, from the customer's "confirm"
to the receipt SMS, never lost, never fulfilled twice.

The lifecycle is a `transitions` machine built once (like the menu), persisted in Redis
and journaled on every move:

    created -> payment_pending -> paid -> fulfilled -> receipt_sent
                 |                 |
                 |                 +-> paid_awaiting_fulfilment -> fulfilled   (backend down: retried)
                 +-> declined | expired (-> paid on a late success) | failed

Why it cannot lose or double a payment:
- an order is created once per reference (SET NX), and that reference is the
  idempotency key everywhere downstream (payment request, vend, bill posting, SMS); it
  is drawn at random for each order, and a reference already holding another caller's
  order is never handed to a new one;
- each order is changed under its own lock, and a result that does not fit the order's
  state (a duplicate callback, a callback for a final order) changes nothing;
- state is saved before anything is sent; the SMS outbox is idempotent by reference;
- every order not final is indexed, and a sweep finishes what a crash or a lost job left
  half done (an order is never left without a final state).
"""
from __future__ import annotations

import base64
import datetime
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from transitions import EventData, Machine, MachineError

from state import journal, keys, limits, locks, metrics, store, tally
from state.limits import Limit
from state.store import TextPipeline, TextRedis, caused_by_redis_outage
from utility.billing import BillingBackend, BillingError
from utility.calls import backoff
from utility.customers import CustomerBase, mask_phone
from utility.payments.base import (
    FINAL_STATES,
    PaymentError,
    PaymentProvider,
    PaymentRequest,
    PaymentResult,
    ProviderUnavailable,
)
from utility.payments.records import PaymentRecords
from utility.vending.base import Vend, VendingBackend, VendingError

log = logging.getLogger(__name__)

UNITS, BILL = "units", "bill"
UNREACHABLE = "provider_unavailable"  # the reason of an order whose payment request got no answer
FINAL = frozenset({"receipt_sent", "declined", "failed"})
# States whose next step belongs to us (a job, a retry): the order sweep watches them.
# An expired order may still be paid late, but that news comes from the payment side.
OPEN = frozenset({"created", "payment_pending", "paid", "paid_awaiting_fulfilment", "fulfilled"})
DELIVERED = frozenset({"fulfilled", "receipt_sent"})
RECENT_KEPT = 10
FAILED_KEPT = 200  # the latest failed orders, for the console (keys.failed_orders)
HISTORY_KEPT = 20  # moves an order keeps in its own record (an order makes five or six)
TARGET_KEPT = 50  # the latest orders of each meter or account (keys.target_orders)
# Backoff of fulfilment retries while a backend is down (utility.calls.backoff): 15 s at
# first, doubling up to hourly, for as long as it takes (the Eneo outage lasted days).
RETRY_FIRST, RETRY_CAP = 15.0, 3600.0
SWEEP_AFTER = 30.0  # seconds an open order may stand still before the sweep looks at it

STATES = [
    "created",
    "payment_pending",
    "paid",
    "paid_awaiting_fulfilment",
    "fulfilled",
    "receipt_sent",
    "declined",
    "expired",
    "failed",
]
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "payment_requested", "source": "created", "dest": "payment_pending"},
    {"trigger": "payment_unavailable", "source": "created", "dest": "failed"},
    # A success after the order expired, or after the provider seemed unreachable (a
    # timeout can hide a request that arrived), is still money taken: fulfil it. So is one
    # for an order still `created`: the request reached the provider but saving
    # payment_pending failed (Redis away, a failover, a crash), and a success handed over
    # now is never handed over again.
    {"trigger": "payment_succeeded", "source": ["created", "payment_pending", "expired", "failed"], "dest": "paid"},
    {"trigger": "payment_declined", "source": "payment_pending", "dest": "declined"},
    {"trigger": "payment_expired", "source": "payment_pending", "dest": "expired"},
    {"trigger": "backend_unavailable", "source": "paid", "dest": "paid_awaiting_fulfilment"},
    {"trigger": "fulfilled", "source": ["paid", "paid_awaiting_fulfilment"], "dest": "fulfilled"},
    {"trigger": "fulfilment_failed", "source": ["paid", "paid_awaiting_fulfilment"], "dest": "failed"},
    {"trigger": "receipt_sent", "source": "fulfilled", "dest": "receipt_sent"},
]


@dataclass(eq=False)  # identity equality: the machine keeps models in a list
class Order:
    reference: str
    kind: str  # UNITS or BILL
    phone: str  # who ordered (receives the SMS)
    lang: str
    target: str  # the meter (units) or the account number (bill)
    amount: int  # XAF
    payer: str  # the mobile-money number debited
    provider: str
    state: str = "created"
    provider_ref: str = ""
    reason: str = ""  # why it was declined or failed (a code)
    receipt: dict[str, Any] = field(default_factory=dict)  # the vend or bill payment
    attempts: int = 0  # fulfilment attempts
    waiting_told: bool = False  # "payment received, token to follow" sent
    dial_code: str = ""  # the code the customer dialled: how the SMS tells them to try again
    paid_at: float = 0.0  # when the payment succeeded (a bill paid late: is its penalty waived?)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    # Every move, [at, trigger, source, dest, why]: the order's own journal, read whole by the
    # console (the journal stream has them too, among everything else). The last HISTORY_KEPT.
    history: list[list[Any]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Order:
        return cls(**json.loads(raw))


def new_reference() -> str:
    """A fresh order reference a customer can read out: 8 characters of base32 (no 0/1
    to mix up with O/I), 40 random bits. Random, not derived from the session: gateways
    reuse session ids, and a reference must belong to one caller's order only."""
    return base64.b32encode(secrets.token_bytes(5)).decode()


class ReferenceTaken(Exception):
    """An order with this reference exists and is not the caller's: draw another one."""


@dataclass(frozen=True)
class OrderLimits:
    """How often one phone may ask for things that text or prompt someone (state.limits)."""

    orders: tuple[Limit, ...] = ()  # orders placed by one caller
    payer_prompts: tuple[Limit, ...] = ()  # payment prompts sent to one payer's handset
    resends: tuple[Limit, ...] = ()  # "resend my last token" by one caller


@dataclass(frozen=True)
class ReplicaWait:
    """An order's move to paid waits for ``replicas`` Redis replicas to have it (WAIT), at
    most ``timeout_ms``: a master dying right after the payment callback then does not take
    the payment with it (replication is asynchronous)."""

    replicas: int  # GUICHET_REDIS_WAIT_REPLICAS
    timeout_ms: int  # GUICHET_REDIS_WAIT_MS: the most a payment callback waits for them

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ReplicaWait | None:
        """None: no wait (REDIS_WAIT_REPLICAS 0, the default). ValueError for a wait that
        cannot work: WAIT 0 ms waits forever, and one as long as the socket timeout
        (REDIS_TIMEOUT) would fail the save it follows."""
        replicas, timeout_ms = int(config.get("REDIS_WAIT_REPLICAS") or 0), int(config.get("REDIS_WAIT_MS") or 0)
        socket_ms = 1000 * float(config.get("REDIS_TIMEOUT") or store.TIMEOUT)
        if replicas < 0 or (replicas and not 0 < timeout_ms < socket_ms):
            raise ValueError(f"REDIS_WAIT_REPLICAS must be 0 or more, and REDIS_WAIT_MS from 1 to below "
                             f"{socket_ms:.0f} (REDIS_TIMEOUT): not {replicas} and {timeout_ms}")
        return cls(replicas, timeout_ms) if replicas else None


@dataclass(frozen=True)
class Resent:
    """What "resend my last token" did: ``sent`` or ``none`` (nothing this phone may get)."""

    outcome: str
    reference: str = ""


class CustomerMessages(Protocol):
    """Tells the customer by SMS."""

    def tell(self, order: Order, what: str) -> None:
        """``what``: payment_received | receipt | payment_failed | fulfilment_failed.
        Idempotent by (order, what)."""
        ...

    def resend(self, phone: str, lang: str, vends: list[Vend]) -> None:
        """Send the tokens of ``vends`` again (a new SMS each time it is asked)."""
        ...


class Later(Protocol):
    """Runs ``fulfil(reference)`` in the background after ``delay`` seconds."""

    def __call__(self, reference: str, delay: float) -> None: ...


class _Move:
    """The model the machine moves for one change of one order."""

    state: str

    def __init__(self, order: Order) -> None:
        self.order = order
        self.moves: list[tuple[str, str, str, str]] = []

    def record(self, event: EventData) -> None:
        why = str(event.kwargs.get("why", ""))
        if why:
            self.order.reason = why
        # Within a transition, and every transition of MACHINE has a destination.
        transition = event.transition
        assert transition is not None and transition.dest is not None
        self.moves.append((event.event.name, transition.source, transition.dest, why))


MACHINE = Machine(
    model=None,
    states=STATES,
    transitions=TRANSITIONS,
    initial="created",
    auto_transitions=False,
    send_event=True,
    queued=False,
    after_state_change="record",
)


class Orders:
    def __init__(
        self,
        client: TextRedis,
        vending: VendingBackend,
        billing: BillingBackend,
        payments: PaymentProvider,
        messages: CustomerMessages,
        later: Later,
        customers: CustomerBase | None = None,
        limits: OrderLimits = OrderLimits(),
        penalties_waived: Callable[[str, datetime.datetime], bool] | None = None,
        replica_wait: ReplicaWait | None = None,  # None: a move to paid does not wait for replicas
    ) -> None:
        self.redis = client
        self.replica_wait = replica_wait
        self.customers = customers
        # (region, moment) -> whether an incident waived late-payment penalties there then
        # (utility.incidents): a bill receipt says so.
        self.penalties_waived = penalties_waived
        self.limits = limits
        self.vending = vending
        self.billing = billing
        self.payments = payments
        self.messages = messages
        self.later = later

    # -- reading --------------------------------------------------------------------------
    def get(self, reference: str) -> Order | None:
        raw = self.redis.get(keys.order(reference))
        return Order.from_json(raw) if raw else None

    def get_many(self, references: list[str]) -> list[Order]:
        """The orders of ``references`` that exist, in that order, in one round trip."""
        if not references:
            return []
        return [Order.from_json(raw) for raw in self.redis.mget([keys.order(r) for r in references]) if raw]

    def recent(self, phone: str, count: int = 3) -> list[Order]:
        return self.get_many(self.redis.lrange(keys.phone_orders(phone), 0, count - 1))

    def tokens_of(self, phone: str) -> list[Vend]:
        """The vends whose tokens ``phone`` may have sent again (by USSD or SMS): of the
        purchases this phone made and that were delivered, and the last vend of each meter
        linked to the phone in the customer base. Never a token of any other meter: typing
        a stranger's meter into an order (even one then declined) gives no right to its tokens."""
        vends = [
            Vend.from_json(json.dumps(o.receipt))
            for o in self.recent(phone, count=RECENT_KEPT)
            if o.kind == UNITS and o.state in DELIVERED and o.phone == phone and o.receipt
        ]
        if self.customers is not None:
            for account in self.customers.accounts_for_phone(phone):
                if account.prepaid:
                    vends += self.vending.reprint(account.meter_number)[:1]
        return vends

    def resend_last_tokens(self, phone: str, lang: str) -> Resent:
        """SMS the caller their latest token again, of those `tokens_of` allows.

        Raises LimitReached when the phone asked too often (each resend is an SMS)."""
        vends = self.tokens_of(phone)
        if not vends:
            return Resent("none")
        latest = max(vends, key=lambda vend: vend.issued_at)
        limits.take(self.redis, phone, "resend", self.limits.resends)
        self.messages.resend(phone, lang, [latest])
        journal.append(self.redis, "order.tokens_resent", phone=phone, reference=latest.reference)
        return Resent("sent", latest.reference)

    # -- the customer confirms ----------------------------------------------------------------
    def place(
        self, kind: str, phone: str, lang: str, target: str, amount: int, payer: str, reference: str,
        dial_code: str = "",
    ) -> Order:
        """Create the order and ask the payer's provider for the money.

        Idempotent by ``reference`` for its caller: placing the same order again (a hop
        retried after a crash) returns it as it stands. A reference that holds another
        caller's order raises ReferenceTaken and changes nothing. Raises LimitReached
        when the caller placed too many orders, or the payer was prompted too often."""
        # Checked before anything is written: a malformed payer or amount is a bug
        # upstream, and must not leave an order behind that nothing will ever settle.
        request = PaymentRequest(reference, payer, amount, note=f"{kind} {reference}")
        order = Order(reference, kind, phone, lang, target, amount, payer, self.payments.name, dial_code=dial_code)
        existing = self.get(reference)
        if existing is None:
            limits.take(self.redis, phone, "order", self.limits.orders)
            limits.take(self.redis, payer, "payer_prompt", self.limits.payer_prompts)
            pipe = self.redis.pipeline(transaction=False)
            # Indexed first: an order the sweep cannot see could be stranded by a crash.
            pipe.zadd(keys.open_orders(), {reference: order.created_at}, nx=True)
            pipe.set(keys.order(reference), order.to_json(), nx=True)
            pipe.get(keys.order(reference))
            _indexed, created, raw = pipe.execute()
            if not created:
                existing = Order.from_json(raw)
        if existing is not None:
            if not _same_order(existing, order):
                log.warning("order reference %s is another caller's order: not reused", reference)
                raise ReferenceTaken(reference)
            return existing
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(keys.phone_orders(phone), reference)
        pipe.ltrim(keys.phone_orders(phone), 0, RECENT_KEPT - 1)
        pipe.lpush(keys.target_orders(target), reference)
        pipe.ltrim(keys.target_orders(target), 0, TARGET_KEPT - 1)
        journal.append(pipe, "order.created", order=reference, order_kind=kind, phone=phone, target=target, amount=amount)
        pipe.execute()
        with self._locked(reference) as order:
            try:
                result = self.payments.request(request)
            except ProviderUnavailable:
                # An honest "try later" now, rather than an order pending forever. The
                # request may still have reached the provider: a success that follows is
                # fulfilled (see on_payment_result).
                self._move(order, "payment_unavailable", why=UNREACHABLE)
                return order
            except PaymentError as exc:
                self._move(order, "payment_unavailable", why="payment_refused")
                log.warning("order %s: payment refused by %s: %s", reference, self.payments.name, exc)
                return order
            except Exception:
                # A bug in a provider adapter: the order still ends, and as "unreachable",
                # because the request may have gone out (a late success is fulfilled).
                log.exception("order %s: payment request to %s failed", reference, self.payments.name)
                self._move(order, "payment_unavailable", why=UNREACHABLE)
                return order
            order.provider_ref = result.provider_ref
            self._move(order, "payment_requested")
        if result.state == "failed":  # refused outright (unknown payer...): say so now
            self.on_payment_result(result)
            return self.get(reference) or order
        return order

    # -- what the payment provider says ---------------------------------------------------------
    def on_payment_result(self, result: PaymentResult) -> str:
        """Apply a payment result (callback or poll). Duplicates, late or out-of-order
        results change nothing they should not. Returns what was done, for the log."""
        if self.get(result.order_ref) is None:
            log.warning("payment result for unknown order %s (%s)", result.order_ref, result.provider)
            journal.append(self.redis, "order.unknown_payment", order=result.order_ref, provider=result.provider,
                           provider_ref=result.provider_ref, state=result.state)
            return "unknown order"
        fulfil = tell_failure = False
        with self._locked(result.order_ref) as order:
            if result.provider_ref and order.provider_ref and result.provider_ref != order.provider_ref:
                return "another payment of this order"
            late_money = order.state == "failed" and order.reason == UNREACHABLE
            if result.state == "successful" and (order.state in ("created", "payment_pending", "expired")
                                                 or late_money):
                metrics.payment(result.provider, "successful")
                order.paid_at = time.time()
                self._move(order, "payment_succeeded")
                fulfil = True
            elif result.state == "successful" and order.state in ("paid", "fulfilled"):
                # Paid already, but the job that delivers may have been lost (the save of
                # "paid" or the queueing timed out in a Redis hiccup, a worker died): a
                # provider saying it again is a cheap moment to make sure. Idempotent.
                self.later(order.reference, 0)
                return f"fulfilment requeued ({order.state})"
            elif result.state == "failed" and order.state == "payment_pending":
                metrics.payment(result.provider, result.reason or "declined")
                if result.reason == "expired":
                    self._move(order, "payment_expired", why="expired")
                else:
                    self._move(order, "payment_declined", why=result.reason or "declined")
                tell_failure = True
            else:
                return f"ignored ({result.state} while {order.state})"
        if tell_failure:
            self.messages.tell(order, "payment_failed")
        if fulfil:
            # In the background: the provider's callback must not wait for a vending server.
            self.later(order.reference, 0)
            note_late_payment(self.redis, self.customers, order)  # paid now, whenever billing posts it
        return order.state

    # -- delivering what was paid for ----------------------------------------------------------
    def fulfil(self, reference: str) -> Order | None:
        """Vend the units or post the bill; when the backend is down, tell the customer
        the payment is safe and try again later. Safe to run any number of times."""
        with self._locked(reference) as order:
            what: str | None
            if order.state == "fulfilled":
                what = "receipt"  # delivered, but the receipt was never marked sent: tell again
            elif order.state not in ("paid", "paid_awaiting_fulfilment"):
                return order
            else:
                what = self._attempt(order)
            if what is None:
                return order
        self.messages.tell(order, what)
        if what == "receipt":
            with self._locked(reference) as order:
                if order.state == "fulfilled":
                    self._move(order, "receipt_sent")
        return order

    def _attempt(self, order: Order) -> str | None:
        """One delivery attempt under the order's lock; what to tell the customer (None:
        nothing new)."""
        order.attempts += 1
        try:
            order.receipt = self._deliver(order)
        except (VendingError, BillingError) as exc:
            if caused_by_redis_outage(exc):
                # Our own Redis blinked, not the vending system: try again in a moment,
                # without "payment received" news or a backoff meant for outages of days.
                self.later(order.reference, 2)
                log.info("order %s: Redis unavailable during delivery; again in 2 s", order.reference)
                return None
            if not exc.retryable:  # the backend answered no (utility.errors): it will not change its mind
                self._move(order, "fulfilment_failed", why=exc.code)
                return "fulfilment_failed"
            first_wait = not order.waiting_told
            order.waiting_told = True  # saved with this attempt, before the SMS is queued
            if order.state == "paid":
                self._move(order, "backend_unavailable", why="backend_unavailable")
            else:
                self._save(order, [])
            delay = backoff(order.attempts, RETRY_FIRST, RETRY_CAP)
            self.later(order.reference, delay)
            log.info("order %s waits for its backend; retry in %.0f s", order.reference, delay)
            return "payment_received" if first_wait else None
        self._move(order, "fulfilled")
        return "receipt"

    def _deliver(self, order: Order) -> dict[str, Any]:
        if order.kind == UNITS:
            return json.loads(self.vending.vend(order.target, order.amount, order.reference).to_json())
        return {**asdict(self.billing.pay(order.target, order.amount, order.reference)),
                "penalty_waived": self._penalty_waived(order)}

    def _penalty_waived(self, order: Order) -> bool:
        """Whether the bill was paid after its due date while an incident waived penalties in
        the account's region: the receipt says no penalty applies. The moment is the
        payment's, not the posting's (billing may have been down for days)."""
        if self.penalties_waived is None or self.customers is None:
            return False
        try:
            account = self.customers.account(order.target)
            if account is None or account.due_date is None:
                return False
            paid = datetime.datetime.fromtimestamp(order.paid_at or order.created_at, datetime.UTC)
            return paid.date() > account.due_date and self.penalties_waived(account.region, paid)
        except Exception:  # a line of the receipt must not cost the posting
            log.exception("order %s: whether its penalty is waived could not be read", order.reference)
            return False

    # -- persistence -------------------------------------------------------------------------
    @contextmanager
    def _locked(self, reference: str) -> Iterator[Order]:
        """The order, loaded under its lock (one change at a time per order)."""
        with locks.hold(self.redis, keys.order_lock(reference), wait=10.0):
            order = self.get(reference)
            if order is None:
                raise KeyError(reference)
            yield order

    def _move(self, order: Order, trigger: str, **kwargs: Any) -> None:
        model = _Move(order)
        MACHINE.add_model(model, initial=order.state)
        try:
            getattr(model, trigger)(**kwargs)
        except MachineError as exc:
            raise ValueError(f"order {order.reference}: {trigger} is not allowed from {order.state}") from exc
        finally:
            MACHINE.remove_model(model)
        order.state = model.state
        self._save(order, model.moves)

    def sweep(self, now: float | None = None, batch: int = 500) -> dict[str, int]:
        """Finish what a crash or a lost job left half done; safe to run at any time.

        Orders not final are indexed by their last change (keys.open_orders). One that
        has not moved for a while is looked at: ``created`` (the process died while
        asking for the money) ends as failed, "unreachable", so a payment that did reach
        the provider is still fulfilled when the poller learns of it; ``paid`` or
        ``fulfilled`` (the fulfilment job or the receipt was lost) is fulfilled again,
        which is idempotent; ``paid_awaiting_fulfilment`` past its longest backoff gets
        a new try. Pending payments are the payment poller's; final ones leave the index.
        Returns counts by what was done, for the log."""
        now = time.time() if now is None else now
        done: dict[str, int] = {}
        stale = self.redis.zrangebyscore(keys.open_orders(), "-inf", now - SWEEP_AFTER, start=0, num=batch)
        for reference in stale:
            action = self._sweep_one(reference, now)
            done[action] = done.get(action, 0) + 1
        if stale:
            log.info("order sweep: %s", ", ".join(f"{n} {what}" for what, n in sorted(done.items())))
        return done

    def _sweep_one(self, reference: str, now: float) -> str:
        order = self.get(reference)
        if order is None or order.state not in OPEN:
            self.redis.zrem(keys.open_orders(), reference)
            return "dropped"
        age = now - order.updated_at
        if order.state == "created":
            with self._locked(reference) as order:
                if order.state != "created":
                    return "moved meanwhile"
                self._move(order, "payment_unavailable", why=UNREACHABLE)
            return "ended created"
        if order.state in ("paid", "fulfilled") or (
            order.state == "paid_awaiting_fulfilment" and age > RETRY_CAP + SWEEP_AFTER
        ):
            # Looked at again only after another SWEEP_AFTER: a queue that is merely slow
            # is not flooded with duplicate jobs.
            self.redis.zadd(keys.open_orders(), {reference: now}, xx=True)
            self.later(reference, 0)
            return f"requeued {order.state}"
        if order.state == "payment_pending" and (done := self._payment_ahead(order, now)):
            return done
        self.redis.zadd(keys.open_orders(), {reference: now}, xx=True)
        return f"left {order.state}"

    def _payment_ahead(self, order: Order, now: float) -> str | None:
        """A pending order whose payment record moved on without it. A Redis Cluster failover
        loses the writes its dead master acknowledged but had not yet sent to its replica, and
        an order and its payment are two hash tags (two masters): the payment may say "handed
        over" while the order's move to paid is gone, or the poller's index may have lost the
        payment. The first is handed over again (idempotent), the second put back in the index
        (NX: a payment it has keeps its next look). None: the poller has it in hand, or the
        record is gone too (only the provider's own callback can tell then)."""
        records = PaymentRecords(self.redis, order.provider)
        ref = order.provider_ref or records.ref_for_order(order.reference) or ""
        record = records.get(ref)
        if record is None:
            return None
        if record.get("state") in FINAL_STATES and record.get("notified") == "1":
            self.redis.zadd(keys.open_orders(), {order.reference: now}, xx=True)
            self.on_payment_result(records.result_of(ref, record))
            return "payment handed over again"
        if record.get("notified") != "1" and self.redis.zadd(records.pending_key(), {ref: now}, nx=True):
            return "payment back in the poller's index"
        return None

    def find(self, number: str) -> list[Order]:
        """The latest orders of a phone (E.164), a meter or an account, newest first; or the
        order whose reference ``number`` is. For operators (the console, the admin API)."""
        number = number.strip()
        found = self.get(number) if number else None
        if found is not None:
            return [found]
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(keys.phone_orders(number), 0, RECENT_KEPT - 1)
        pipe.lrange(keys.target_orders(number), 0, TARGET_KEPT - 1)
        references = list(dict.fromkeys(sum(pipe.execute(), [])))
        return sorted(self.get_many(references), key=lambda order: order.created_at, reverse=True)

    def resend_receipt(self, reference: str) -> bool:
        """SMS an order's token again (an operator on the customer's word that it never came);
        False when the order has no token to send. Not counted against the customer's own resends."""
        order = self.get(reference)
        if order is None or order.kind != UNITS or order.state not in DELIVERED or not order.receipt:
            return False
        self.messages.resend(order.phone, order.lang, [Vend.from_json(json.dumps(order.receipt))])
        journal.append(self.redis, "order.tokens_resent", phone=order.phone, reference=reference, by="operator")
        return True

    def retry(self, reference: str) -> bool:
        """Try an order's fulfilment now (an operator knows its backend is back); False when it
        is not waiting for one."""
        order = self.get(reference)
        if order is None or order.state not in ("paid", "paid_awaiting_fulfilment"):
            return False
        self.later(reference, 0)
        return True

    def retry_waiting(self) -> int:
        """Fulfil now every order waiting for its backend (an operator says it is back)."""
        references = sorted(self.redis.smembers(keys.waiting_orders()))
        for reference in references:
            self.later(reference, 0)
        return len(references)

    def _save(self, order: Order, moves: list[tuple[str, str, str, str]]) -> None:
        order.updated_at = time.time()
        order.history = (order.history + [[round(order.updated_at, 3), *move] for move in moves])[-HISTORY_KEPT:]
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.order(order.reference), order.to_json())
        if order.state in OPEN:
            pipe.zadd(keys.open_orders(), {order.reference: order.updated_at})
        else:
            pipe.zrem(keys.open_orders(), order.reference)
        if order.state == "paid_awaiting_fulfilment":
            pipe.sadd(keys.waiting_orders(), order.reference)
        else:
            pipe.srem(keys.waiting_orders(), order.reference)
        for trigger, source, dest, why in moves:
            journal.append(pipe, "order.transition", order=order.reference, trigger=trigger, source=source,
                           dest=dest, why=why)
            if dest == "failed":
                pipe.lpush(keys.failed_orders(), order.reference)
                pipe.ltrim(keys.failed_orders(), 0, FAILED_KEPT - 1)
        if self.replica_wait and any(dest == "paid" for _trigger, _source, dest, _why in moves):
            self._execute_waiting_for_replicas(pipe, order, self.replica_wait)
        else:
            pipe.execute()
        for _trigger, source, dest, why in moves:
            metrics.order(order.kind, dest)
            tally.event(None, "orders", dest)
            log.info("order %s %s -> %s %s (%s)", order.reference, source, dest, why, mask_phone(order.phone))

    def _execute_waiting_for_replicas(self, pipe: TextPipeline, order: Order, wait: ReplicaWait) -> None:
        """Save a move to paid, then wait for the replicas to have it (ReplicaWait), on the
        master that holds the order. Fewer of them in time is a warning, not a failure: the
        payment is taken and the customer served either way, but a failover now could lose
        the order's move to paid (the sweep would then have to find the payment again)."""
        started = time.monotonic()
        _replies, acknowledged = store.execute_replicated(pipe, self.redis, keys.order(order.reference),
                                                          wait.replicas, wait.timeout_ms)
        if acknowledged is None or acknowledged < wait.replicas:
            log.warning("order %s paid, but %s of %d Redis replicas had it after %.0f ms: a failover now could lose it",
                        order.reference, "none" if acknowledged is None else acknowledged, wait.replicas,
                        1000 * (time.monotonic() - started))


def _same_order(existing: Order, asked: Order) -> bool:
    """Whether ``existing`` is the order ``asked`` describes (a retry of the same confirm)."""
    return (existing.phone, existing.kind, existing.target, existing.amount, existing.payer) == (
        asked.phone, asked.kind, asked.target, asked.amount, asked.payer)


# -- late bill payments (incidents: the penalties an operator may waive) ---------------------------
LATE_PAYMENTS_KEPT = 400 * 86400  # seconds a month of late payments is kept after its last one


def note_late_payment(client: TextRedis, customers: CustomerBase | None, order: Order,
                      paid_at: float | None = None) -> bool:
    """Index a bill payment made on or after its bill's due date (keys.late_payments, by month,
    scored by when it was paid): the accounts an operator may waive penalties for during an
    incident (utility.incidents). True when indexed.

    The moment is the payment's, not the posting's: while billing is down a customer who paid
    on time must not look late. The day is compared in UTC, a superset whatever the utility's
    zone: the export keeps those paid after the due date in the utility's own. The member has
    no time in it, so a second call for the same order adds nothing. Never raises: a missed
    entry must not cost the payment its fulfilment."""
    if order.kind != BILL or customers is None:
        return False
    paid_at = time.time() if paid_at is None else paid_at
    try:
        account = customers.account(order.target)
        if account is None or account.due_date is None:
            return False
        if time.strftime("%Y-%m-%d", time.gmtime(paid_at)) < account.due_date.isoformat():
            return False
        record = json.dumps({"account": account.account_number, "phone": order.phone, "amount": order.amount,
                             "due_date": account.due_date.isoformat(), "region": account.region,
                             "reference": order.reference}, sort_keys=True, separators=(",", ":"))
        key = keys.late_payments(time.strftime("%Y-%m", time.gmtime(paid_at)))
        pipe = client.pipeline(transaction=False)
        pipe.zadd(key, {record: paid_at}, nx=True)
        pipe.expire(key, LATE_PAYMENTS_KEPT)
        pipe.execute()
    except Exception:
        log.exception("order %s: its late payment could not be indexed", order.reference)
        return False
    return True
