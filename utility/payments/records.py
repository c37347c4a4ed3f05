"""Payment records in Redis, shared by every provider: what was asked, what was learned,
and what has been handed over to the order pipeline.

Per provider, under ``keys.payment(provider, ...)``:

- ``keys.payment(p, provider_ref)``: hash, one payment request: order_ref, payer, amount,
  currency, state, reason, created_at, updated_at, ``sent`` ("" until the provider has
  answered the request, then "accepted" or "refused"), ``polls``, ``notified`` ("1" once the final
  state was handed over), ``via`` (who told us the state) and, for a request the provider
  refused for our configuration, ``error`` (its code).
- ``keys.payment(p, "order:" + order_ref)``: hash, field ``provider_ref``: the one reference
  of an order (idempotency: asking again for the order reuses it).
- ``keys.payment(p, "index:pending")``: sorted set of references still to settle, scored
  by when the poller should look at them next. A reference leaves it only once its final
  state has been handed over, so a handler that failed is given the result again (or when
  the provider refused the request, see ``refuse``: there is nothing to ask about).

Every request and every state learned is journaled (kinds ``payment.*``). Payers' numbers
are masked in the journal and in logs; the record keeps the full number (the provider
needs it).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from state import journal, keys
from state.store import TextRedis, redis_failure_means
from utility.customers import mask_tail
from utility.payments.base import (
    FAILED,
    FINAL_STATES,
    PENDING,
    PaymentError,
    PaymentRequest,
    PaymentResult,
    ProviderUnavailable,
    State,
)

log = logging.getLogger(__name__)

# After a final state is learned, whoever learned it hands it over at once; the poller
# steps in only if that has not happened after this long.
HANDOVER_GRACE = 60.0
HANDOVER_RETRY = 60.0  # a handler that raised is given the result again this much later


# Without Redis no payment can be asked safely (the order's reference lives there): to the
# caller that is the provider being unavailable.
needs_redis = redis_failure_means(ProviderUnavailable, "payment records")


@dataclass(frozen=True)
class Learned:
    result: PaymentResult
    previous: str  # the state before
    changed: bool


class PaymentRecords:
    def __init__(self, client: TextRedis, provider: str, clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.provider = provider
        self.clock = clock

    # -- keys -----------------------------------------------------------------------------
    def key(self, provider_ref: str) -> str:
        return keys.payment(self.provider, provider_ref)

    def order_key(self, order_ref: str) -> str:
        return keys.payment(self.provider, "order:" + order_ref)

    def pending_key(self) -> str:
        return keys.payment(self.provider, "index:pending")

    # -- reading ----------------------------------------------------------------------------
    def get(self, provider_ref: str) -> dict[str, str] | None:
        if not provider_ref:
            return None
        record: dict[str, str] = self.redis.hgetall(self.key(provider_ref))
        return record or None

    def ref_for_order(self, order_ref: str) -> str | None:
        ref: str | None = self.redis.hget(self.order_key(order_ref), "provider_ref")
        return ref

    def result_of(self, provider_ref: str, record: dict[str, str]) -> PaymentResult:
        state: State = record.get("state", PENDING)  # type: ignore[assignment]
        return PaymentResult(self.provider, provider_ref, record.get("order_ref", ""), state, record.get("reason", ""))

    # -- a new request ------------------------------------------------------------------------
    def claim(self, order_ref: str, new_ref: str) -> str:
        """The order's provider reference: ``new_ref`` if the order is new, else the one it
        already has (HSETNX: two racing requests for one order get one reference)."""
        key = self.order_key(order_ref)
        if self.redis.hsetnx(key, "provider_ref", new_ref):
            return new_ref
        existing: str | None = self.redis.hget(key, "provider_ref")
        return existing or new_ref

    def create(self, provider_ref: str, payment: PaymentRequest, currency: str) -> dict[str, str]:
        now = self.clock()
        record = {
            "order_ref": payment.order_ref,
            "payer": payment.payer,
            "amount": str(payment.amount),
            "currency": currency,
            "state": PENDING,
            "reason": "",
            "created_at": f"{now:.3f}",
            "updated_at": f"{now:.3f}",
            "sent": "",
            "polls": "0",
            "notified": "0",
            "via": "request",
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.key(provider_ref), mapping=record)
        pipe.zadd(self.pending_key(), {provider_ref: now})
        pipe.execute()
        return record

    def check_same(self, record: dict[str, str], payment: PaymentRequest) -> None:
        """An order asks for one payment: the same reference for other money is a bug."""
        if record.get("payer") != payment.payer or record.get("amount") != str(payment.amount):
            raise PaymentError(f"order {payment.order_ref} already asked for another payment")

    def refuse(self, provider_ref: str, reason: str, code: str) -> None:
        """The provider refused the request and the caller is told so by an exception: the
        payment is failed, never sent again (``sent`` refused), never polled (out of the
        index: the provider has nothing to ask about) and has nothing left to hand over."""
        now = self.clock()
        update = {"state": FAILED, "reason": reason, "sent": "refused", "notified": "1", "via": "request",
                  "error": code, "updated_at": f"{now:.3f}"}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.key(provider_ref), mapping=update)
        pipe.zrem(self.pending_key(), provider_ref)
        pipe.execute()

    def mark_sent(self, provider_ref: str, how: str = "accepted") -> None:
        """The provider answered the request: ``accepted`` it, or ``refused`` it outright."""
        self.redis.hset(self.key(provider_ref), mapping={"sent": how, "updated_at": f"{self.clock():.3f}"})

    def journal_request(
        self, provider_ref: str, record: dict[str, str], event: str = "payment.requested", **extra: object
    ) -> None:
        journal.append(
            self.redis,
            event,
            provider=self.provider,
            provider_ref=provider_ref,
            order=record.get("order_ref", ""),
            payer=mask_tail(record.get("payer", "")),
            amount=record.get("amount", ""),
            currency=record.get("currency", ""),
            **extra,
        )

    # -- what the provider says ----------------------------------------------------------------
    def learn(self, provider_ref: str, state: State, reason: str, via: str) -> Learned | None:
        """Record a state the provider told us (or our own expiry). None: no such payment.

        Pending never overwrites a final state. A final state is kept, except when the
        provider later says otherwise (a success after our poller gave the payment up):
        the provider's word is the money's truth, so it wins, is journaled as
        ``payment.late`` and is handed over again for the order pipeline to reconcile.
        """
        key = self.key(provider_ref)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    record: dict[str, str] = pipe.hgetall(key)
                    if not record:
                        pipe.unwatch()
                        return None
                    previous = record.get("state", PENDING)
                    if state == PENDING or state == previous:
                        pipe.unwatch()
                        return Learned(self.result_of(provider_ref, record), previous, False)
                    now = self.clock()
                    update = {"state": state, "reason": reason, "updated_at": f"{now:.3f}", "via": via, "notified": "0"}
                    pipe.multi()
                    pipe.hset(key, mapping=update)
                    pipe.execute()
                    record.update(update)
                    break
                except redis.WatchError:
                    continue  # someone learned something meanwhile: look again
        # Give the learner time to hand it over itself before the poller would.
        self.redis.zadd(self.pending_key(), {provider_ref: now + HANDOVER_GRACE})
        late = previous in FINAL_STATES
        journal.append(
            self.redis,
            "payment.late" if late else "payment.state",
            provider=self.provider,
            provider_ref=provider_ref,
            order=record.get("order_ref", ""),
            state=state,
            reason=reason,
            previous=previous,
            via=via,
        )
        (log.warning if late else log.info)(
            "payment %s (order %s): %s -> %s %s (via %s)",
            provider_ref, record.get("order_ref", ""), previous, state, reason, via,
        )
        return Learned(self.result_of(provider_ref, record), previous, True)

    # -- the poller's index --------------------------------------------------------------------
    def due(self, now: float, limit: int) -> list[str]:
        refs: list[str] = self.redis.zrangebyscore(self.pending_key(), "-inf", now, start=0, num=limit)
        return refs

    def reschedule(self, provider_ref: str, at: float, polls: int | None = None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.pending_key(), {provider_ref: at})
        if polls is not None:
            pipe.hset(self.key(provider_ref), "polls", str(polls))
        pipe.execute()

    def look_soon(self, provider_ref: str, at: float) -> None:
        """Have the poller look at the payment at ``at`` if it is still to settle. XX: a
        payment already handed over has left the index and must not come back, or the
        poller would find it due, hand nothing over ("duplicate") and find it due again."""
        self.redis.zadd(self.pending_key(), {provider_ref: at}, xx=True)

    def forget(self, provider_ref: str) -> None:
        self.redis.zrem(self.pending_key(), provider_ref)

    # -- handing over ---------------------------------------------------------------------------
    def hand_over(self, provider_ref: str, handler: Callable[[PaymentResult], object] | None) -> str:
        """Give the payment's final result to ``handler`` (the order pipeline), once.

        Returns what happened: handed_over | duplicate | pending | unknown | no_handler |
        handler_failed. At least once, not exactly once: a handler that raised gets the
        result again from the poller, and a callback racing the poller can deliver twice,
        so the handler must be idempotent by order_ref (the order pipeline is).
        """
        record = self.get(provider_ref)
        if record is None:
            return "unknown"
        if record.get("state") not in FINAL_STATES:
            return "pending"
        if record.get("notified") == "1":
            return "duplicate"
        if handler is None:
            log.warning("no payment results handler registered; payment %s waits for the poller", provider_ref)
            return "no_handler"
        result = self.result_of(provider_ref, record)
        try:
            handler(result)
        except Exception:
            log.exception(
                "the payment results handler failed on %s (order %s); retried later", provider_ref, result.order_ref
            )
            self.reschedule(provider_ref, self.clock() + HANDOVER_RETRY)
            return "handler_failed"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.key(provider_ref), "notified", "1")
        pipe.zrem(self.pending_key(), provider_ref)
        pipe.execute()
        return "handed_over"
