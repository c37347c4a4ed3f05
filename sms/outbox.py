"""The durable SMS outbox: every customer SMS is stored, queued on rq, sent at most once.

A message lives in one Redis hash (keys.sms_message) and moves through ``state``:

    queued -> sending -> sent
                      -> queued       retryable error: again after 10 s, 20 s, 40 s... (about 21 min in all);
                                      or given back: the run failed before calling the provider
                      -> failed       final refusal, or still failing at the 8th attempt
                      -> unconfirmed  nobody can tell whether the provider took it

``send()`` stores the message and queues the rq job ``deliver(message_id)``. It is
idempotent by the caller's ``reference`` (one message per reference, ever, within the
retention). ``deliver`` claims the message (queued -> sending, atomically, with a claim
token), waits for its turn under the provider's send rate by re-enqueueing itself (never a
busy loop), sends through the configured provider (sms.providers) and records the outcome.
A duplicate job finds the message no longer queued and does nothing. Every state change
is journaled (kinds "sms.*") in the same MULTI that makes it.

Bulk batches. ``send_bulk()`` queues a bulk producer's chunk (a broadcast's 50 phones, a
campaign's 10 fulfilments) as ``send`` would queue each message, in two pipelined rounds
for them all, and one rq job ``deliver_bulk(message_ids)`` that takes the messages one
after the other exactly as ``deliver`` takes one (turn, claim, send, outcome: the same
code). rq's bookkeeping around a job was a quarter of a broadcast's CPU. The batch's claims
are its job's id, as a single delivery's are, so a rerun of the batch (a killed worker's job
reclaimed, a Redis error retried) retakes only what it claimed and never sent, and skips
the rest. What a batch cannot send within a nap, or within BULK_BATCH_SECONDS, goes back to
the bulk queue as one job.

At most once, on purpose. Once a message is "sending", the provider may have taken it
even if we never hear back: a worker killed mid-call, a read timeout, a lost answer. Sending
it again could text a customer the same token twice, or twice a "payment received"; sending
it never loses only what the customer can ask for again. So a message whose outcome is
unknown becomes ``unconfirmed`` and is never sent again by the outbox: `sweep_stale()`
finds messages left "sending" longer than SMS_CLAIM_TIMEOUT (their worker died) and marks
them so, with a journal entry and a warning for the operators. A customer who did not get
it asks for a resend, which is a new message with a new reference. Only errors that prove
the provider did not take the message (a refusal, an error status, no connection) are
retried.

The sweep also requeues messages left "queued" with no job to run them (a process died
between storing and queueing). It runs as a self-renewing rq job every SMS_SWEEP_EVERY
seconds, started by the first delivery (and by `guichet sms sweep`).

Queues and the send rate. One slot every 1/GUICHET_SMS_RATE_PER_SECOND across every
worker (`reserve_slot`). Tokens and receipts (PRIORITY_KINDS) book the next free slot
however far ahead; other messages (a resend, a keyword's reply) wait in a line of their own
(a GCRA at the provider's rate, their place kept, so thousands of replies wake each once,
when due) and then take a provider slot only if it is free at that instant; all of them are
delivered from the receipts queue (state.worker.QUEUE_NAME), never napping in its worker.
Bulk messages (BULK_KINDS: campaigns, broadcasts) are delivered from the bulk queue, by
workers of their own, and take their turn twice: first a slot of their own share of the
rate (GUICHET_SMS_BULK_SHARE x the rate, a second GCRA, booked however far ahead: 200,000
campaign messages each keep their place in line and come back when it is due, instead of
retrying all at once), then, when that turn comes, a provider slot only if one is free at
that very instant. So bulk never books a slot ahead of a receipt: a receipt queued after
200,000 campaign messages waits at most one slot (the one a bulk send took just before),
and waits for it in its worker (PRIORITY_NAP) rather than for rq's scheduler's next round.

Delivery reports (sms.views) land in ``delivery`` (delivered | failed | the provider's
intermediate word), beside ``state``, through `record_delivery()`.
"""
from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app
from rq import get_current_job
from rq.job import Job

from sms import DEFAULTS
from sms.client import OutgoingSms, SmsClient, SmsError, mask_digits
from sms.gsm import sms_segments
from sms.providers import call_policy, client_from_config, provider_name, timeout
from state import journal, keys, metrics, tally, worker
from state.store import TextRedis, get_redis, get_store
from utility import calls
from utility.customers import mask_phone
from utility.phones import is_e164

log = logging.getLogger(__name__)

# Retries of a retryable error (utility.calls.backoff): 10 s, then doubling, at most 15 min
# apart; eight attempts span about 21 minutes, a provider's hiccup, not its outage.
RETRY_FIRST, RETRY_CAP = 10.0, 900.0
MAX_ATTEMPTS = 8
FINISHED = ("sent", "failed", "unconfirmed")
FINAL_DELIVERY = ("delivered", "failed")
CLIENT_EXTENSION = "guichet.sms.client"

# The clock of every decision here, and the short waits of bulk deliveries; tests replace
# them to move time without waiting.
clock: Callable[[], float] = time.time
pause: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Settings:
    provider: str
    rate_per_second: float
    bulk_share: float  # of rate_per_second, the most bulk messages take
    claim_timeout: float
    requeue_after: float
    sweep_every: int
    retention: int  # seconds

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """The outbox's settings; one that ``config`` lacks takes its default from sms.DEFAULTS."""

        def given(name: str) -> Any:  # unset, 0 or empty: the default
            return config.get(name) or DEFAULTS[name]

        def or_off(name: str) -> Any:  # unset: the default; None or 0: off
            return config.get(name, DEFAULTS[name]) or 0

        bulk_share = float(given("SMS_BULK_SHARE"))
        if not 0 < bulk_share <= 1:
            raise ValueError(f"SMS_BULK_SHARE must be more than 0 and at most 1, not {bulk_share}")
        return cls(
            provider=provider_name(config),
            rate_per_second=float(or_off("SMS_RATE_PER_SECOND")),
            bulk_share=bulk_share,
            # A claim younger than the longest a provider call can take may belong to a
            # worker still waiting for the answer: never call it stale.
            claim_timeout=max(float(given("SMS_CLAIM_TIMEOUT")), 3 * timeout(config)),
            requeue_after=float(given("SMS_REQUEUE_AFTER")),
            sweep_every=int(or_off("SMS_SWEEP_EVERY")),
            retention=int(float(given("SMS_RETENTION_DAYS")) * 86400),
        )


@dataclass(frozen=True)
class Message:
    id: str
    to: str
    body: str
    kind: str
    reference: str
    state: str
    attempts: int
    segments: int
    created_at: float
    provider: str = ""
    provider_id: str = ""
    cost: str = ""
    error: str = ""
    delivery: str = ""
    fields: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_hash(cls, record: Mapping[str, str]) -> Message:
        return cls(
            id=record["id"],
            to=record.get("to", ""),
            body=record.get("body", ""),
            kind=record.get("kind", ""),
            reference=record.get("reference", ""),
            state=record.get("state", ""),
            attempts=int(record.get("attempts") or 0),
            segments=int(record.get("segments") or 0),
            created_at=float(record.get("created_at") or 0),
            provider=record.get("provider", ""),
            provider_id=record.get("provider_id", ""),
            cost=record.get("cost", ""),
            error=record.get("error", ""),
            delivery=record.get("delivery", ""),
            fields=dict(record),
        )


@dataclass(frozen=True)
class SweepResult:
    unconfirmed: tuple[str, ...] = ()
    requeued: tuple[str, ...] = ()


SETTINGS_EXTENSION = "guichet.sms.settings"


def settings_of(app: Flask) -> Settings:
    """The app's outbox settings, parsed once (every send and delivery reads them)."""
    settings: Settings | None = app.extensions.get(SETTINGS_EXTENSION)
    if settings is None:
        settings = app.extensions[SETTINGS_EXTENSION] = Settings.from_config(app.config)
    return settings


def _app(app: Flask | None) -> Flask:
    return app or current_app._get_current_object()  # type: ignore[attr-defined]


def _stamp(now: float) -> str:
    return f"{now:.3f}"


# -- queueing ---------------------------------------------------------------------------------
def send(app: Flask | None, to: str, body: str, reference: str, kind: str) -> str:
    """Queue ``body`` for ``to`` (E.164) and return the message id.

    Idempotent by ``reference`` (the caller's key, e.g. "order:ABC:token"): the same
    reference always returns the first message's id and never queues a second message.
    """
    _check(to, body, reference)
    app = _app(app)
    (message_id,), created = _queue_new(app, [NewSms(to, body, reference, kind)])
    if not created:
        log.info("sms for reference %s already queued as %s", reference, message_id)
        return message_id
    # No result kept: the message's own record says how it went, and rq's copy of every
    # result (about 4.5 KB a message for 500 s) made a 100,000-recipient broadcast cost 450 MB.
    worker.queue(app, queue_of(kind)).enqueue(deliver, message_id, result_ttl=0)
    log.info("sms %s (%s) queued for %s, %d segment(s)", message_id, kind, mask_phone(to), sms_segments(body))
    return message_id


@dataclass(frozen=True)
class NewSms:
    """A message to queue: what `send` takes, and `send_bulk` a batch of."""

    to: str
    body: str
    reference: str
    kind: str


def send_bulk(app: Flask | None, messages: Sequence[NewSms]) -> list[str]:
    """Queue a batch of bulk messages (BULK_KINDS) and return their ids, in order: `send`
    for each, idempotent by reference the same way, in the same two rounds for them all,
    and delivered by one `deliver_bulk` job instead of a job each (rq's bookkeeping around
    a job cost a quarter of a broadcast's CPU)."""
    for sms in messages:
        _check(sms.to, sms.body, sms.reference)
        if sms.kind not in BULK_KINDS:
            raise ValueError(f"not a bulk kind: {sms.kind}")
    if not messages:
        return []
    app = _app(app)
    ids, created = _queue_new(app, messages)
    if created:
        worker.queue(app, worker.BULK_QUEUE_NAME).enqueue(deliver_bulk, created, result_ttl=0,
                                                          job_timeout=BULK_JOB_TIMEOUT)
    log.info("sms: %d bulk message(s) queued in one batch, %d already queued before", len(created),
             len(messages) - len(created))
    return ids


def _queue_new(app: Flask, messages: Sequence[NewSms]) -> tuple[list[str], list[str]]:
    """Store ``messages`` and claim their references: the id each reference holds, in order,
    and the ids of the messages made now, for the caller to queue their job (after this: a
    job must never find its message missing; a crash in between leaves a queued message
    without a job, which the sweep requeues).

    Each message (a new id: nobody else can see it yet), then its reference claimed by SET
    NX, in one round for all: two callers racing on one reference cannot both create, and the
    loser deletes its copy. Not a MULTI: a message and its reference are two hash tags (two
    nodes on a Redis Cluster). A crash before the loser deletes its copy leaves a queued
    message its reference does not name: the sweep deletes it unsent. One whose reference was
    never written at all (the pipeline cut between its two nodes) is sent by the sweep: nobody
    else claimed that SMS, so it is not a duplicate. Two messages of one reference in a batch:
    the first takes it, the second is a loser like any other. In a second round, the losers'
    copies deleted and the new messages journaled (the journal is its own slot: a crash
    before it loses the entry, never the message)."""
    settings = settings_of(app)
    r = get_redis(app)
    now = clock()
    new_ids = [uuid.uuid4().hex for _ in messages]
    segments = [sms_segments(sms.body) for sms in messages]
    pipe = r.pipeline(transaction=False)
    for message_id, sms, parts in zip(new_ids, messages, segments, strict=True):
        _store(pipe, settings, message_id, sms.to, sms.body, sms.reference, sms.kind, parts, now)
    replies = pipe.execute()
    ids: list[str] = []
    created: list[str] = []
    after = r.pipeline(transaction=False)
    for index, (message_id, sms) in enumerate(zip(new_ids, messages, strict=True)):
        claimed, existing = replies[4 * index + 2], replies[4 * index + 3]
        if claimed:
            ids.append(message_id)
            created.append(message_id)
            journal.append(after, "sms.queued", message=message_id, reference=sms.reference, sms_kind=sms.kind,
                           phone=sms.to, segments=segments[index])
        else:
            ids.append(str(existing))
            after.delete(keys.sms_message(message_id))
    after.execute()
    for _ in created:
        metrics.sms(settings.provider, "queued")
        tally.event(app, "sms", "queued")
    return ids, created


def _check(to: str, body: str, reference: str) -> None:
    if not is_e164(to):
        raise ValueError(f"not an E.164 phone number: {mask_phone(to)}")
    if not body:
        raise ValueError("empty SMS body")
    if not reference:
        raise ValueError("a reference is required (one message per reference)")


def _store(pipe: Any, settings: Settings, message_id: str, to: str, body: str, reference: str, kind: str,
           segments: int, now: float) -> None:
    """Queue on ``pipe`` the four commands that store a new message and claim its
    reference; their last two replies: whether the reference was ours, and whose it is."""
    msg_key, ref_key = keys.sms_message(message_id), keys.sms_reference(reference)
    pipe.hset(
        msg_key,
        mapping={
            "id": message_id,
            "to": to,
            "body": body,
            "kind": kind,
            "reference": reference,
            "state": "queued",
            "attempts": 0,
            "segments": segments,
            "created_at": _stamp(now),
            "updated_at": _stamp(now),
            "next_attempt_at": _stamp(now),
        },
    )
    pipe.expire(msg_key, settings.retention)
    pipe.set(ref_key, message_id, nx=True, ex=settings.retention)
    pipe.get(ref_key)


def load(client: TextRedis, message_id: str) -> Message | None:
    record = client.hgetall(keys.sms_message(message_id))
    return Message.from_hash(record) if record else None


def find(client: TextRedis, reference: str) -> Message | None:
    """The message sent for a caller's reference, if any."""
    message_id = client.get(keys.sms_reference(reference))
    return load(client, message_id) if message_id else None


# -- state changes --------------------------------------------------------------------------
def _change(
    client: TextRedis,
    message_id: str,
    allowed: Callable[[dict[str, str]], bool],
    changes: Callable[[dict[str, str]], dict[str, Any]],
    event: str,
    also: Callable[[Any, dict[str, str]], None] | None = None,
    **journal_fields: Any,
) -> dict[str, str] | None:
    """Apply ``changes`` to a message if ``allowed`` by its current fields (WATCH, MULTI),
    then journal ``event``. Returns the new fields, or None when not allowed."""
    key = keys.sms_message(message_id)
    with client.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                current: dict[str, str] = pipe.hgetall(key)
                if not current or not allowed(current):
                    pipe.unwatch()
                    return None
                update = {name: str(value) for name, value in changes(current).items()}
                update["updated_at"] = _stamp(clock())
                pipe.multi()
                pipe.hset(key, mapping=update)
                pipe.execute()
                # After the MULTI, in one more round: ``also`` (the provider id's index) and
                # the journal are other hash tags (other nodes on a Redis Cluster). A crash
                # between loses them, never the change.
                after = client.pipeline(transaction=False)
                if also is not None:
                    also(after, current)
                journal.append(after, event, message=message_id, state=update.get("state", current.get("state")),
                               **journal_fields)
                after.execute()
                _count({**current, **update}, update)
                return {**current, **update}
            except redis.WatchError:
                continue


def _count(fields: Mapping[str, str], update: Mapping[str, str]) -> None:
    """The metric of a change: a new state (sent, unconfirmed, failed, queued again), or a
    delivery report's outcome (delivery_delivered, delivery_failed, ...)."""
    if "state" in update:
        state = update["state"]
        metrics.sms(fields.get("provider", ""), "requeued" if state == "queued" else state)
        if state != "queued":  # a requeue: counted when it is sent
            tally.event(None, "sms", state)
    elif "delivery" in update:
        metrics.sms(fields.get("provider", ""), f"delivery_{update['delivery']}")
        tally.event(None, "sms", update["delivery"])


# -- delivery (the rq job) ------------------------------------------------------------------------
def get_client(app: Flask | None = None) -> SmsClient:
    """The app's SMS client, built once from its configuration, its sends through the seam
    (utility.calls: the error's system, the timeout, the metric)."""
    app = _app(app)
    client: SmsClient | None = app.extensions.get(CLIENT_EXTENSION)
    if client is None:
        made = calls.guard(app, client_from_config(app.config), call_policy(app.config))
        client = app.extensions[CLIENT_EXTENSION] = made
    return client


_RESERVE_SLOT = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local max_ahead = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > max_ahead then return tostring(-(tat - now - max_ahead)) end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.ceil((tat + interval - now) * 1000) + 1000)
return tostring(tat - now)
"""

# Tokens and receipts: what a customer who just paid is waiting for. They book the
# provider's next free slot however far ahead it is; everything else (a resend, a
# keyword's reply, bulk) takes only a slot free at that instant once its line's turn
# comes, so a flood of those never stands between a customer and the token just paid for.
PRIORITY_KINDS = frozenset({"receipt", "payment_received", "payment_failed", "fulfilment_failed"})
PRIORITY_NAP = 0.25  # a token or receipt whose slot is the next one, this close, waits in its worker
# Campaign news and broadcasts: delivered from the bulk queue, within their share of the rate.
BULK_KINDS = frozenset({"campaign", "broadcast"})
# A bulk delivery naps this long at most, in all, in its worker (the bulk worker exists to
# pace bulk sends, and rq's scheduler looks only every second); longer, it is booked for later.
BULK_NAP = 1.0
BULK_TRIES = 5  # looks for a free provider slot in one run, at most
# A bulk batch (deliver_bulk) runs this long at most before what is left of it goes back to
# the bulk queue; its rq timeout covers that and a few slow sends.
BULK_BATCH_SECONDS = 10.0
BULK_JOB_TIMEOUT = 300


def queue_of(kind: str) -> str:
    """The rq queue that delivers a message of ``kind``: bulk kinds have their own."""
    return worker.BULK_QUEUE_NAME if kind in BULK_KINDS else worker.QUEUE_NAME


def reserve_slot(
    client: TextRedis, provider: str, rate_per_second: float, now: float, max_ahead: float = float("inf"),
    *, bulk: bool = False, normal: bool = False,
) -> float:
    """Reserve the provider's next send slot; seconds to wait for it (0: go now).

    One slot every 1/rate seconds across every worker (a GCRA on keys.sms_rate; with
    ``bulk``, on keys.sms_bulk_rate, the bulk messages' own share; with ``normal``, on
    keys.sms_normal_rate, the line other messages wait in). A message that must
    wait keeps its slot, so a backlog drains at exactly the rate instead of every waiting
    job retrying at once. When the next slot is more than ``max_ahead`` seconds away
    nothing is booked and the answer is negative: minus the seconds until a slot comes
    within reach.
    """
    if rate_per_second <= 0:
        return 0.0
    key = keys.sms_bulk_rate(provider) if bulk else keys.sms_normal_rate(provider) if normal else keys.sms_rate(provider)
    ahead = repr(min(max_ahead, 1e12))  # Lua's tonumber does not read "inf" everywhere
    return float(client.eval(_RESERVE_SLOT, 1, key, repr(now), repr(1.0 / rate_per_second), ahead))


def _bulk_turn(r: TextRedis, settings: Settings, reserved: bool) -> float:
    """A bulk message's turn: 0 once it holds a provider slot free right now; else the
    seconds until it should look again, its place in the bulk line kept meanwhile.

    First its slot in the bulk share (unless ``reserved``: booked by an earlier run),
    however far ahead, so a backlog drains at exactly the share. Then a provider slot,
    taken only when free at this instant (max_ahead 0): bulk never books one ahead, so it
    never makes a receipt wait longer than the slot it is using."""
    budget = BULK_NAP  # of naps, for this run
    if not reserved:
        wait = reserve_slot(r, settings.provider, settings.rate_per_second * settings.bulk_share, clock(), bulk=True)
        if wait > budget:
            return wait
        if wait > 0:
            pause(wait)
            budget -= wait
    for _ in range(BULK_TRIES):
        wait = -reserve_slot(r, settings.provider, settings.rate_per_second, clock(), max_ahead=0.0)
        if wait <= 0:
            return 0.0
        if wait > budget:
            return wait
        pause(wait)
        budget -= wait
    return BULK_NAP  # the provider stayed busy (receipts, resends): later


def _normal_turn(r: TextRedis, settings: Settings, reserved: bool) -> float:
    """A resend's or a keyword reply's turn: 0 once it holds a provider slot free right
    now; else the seconds until it should look again, its place in line kept meanwhile.

    First its slot in the normal line (unless ``reserved``: booked by an earlier run),
    however far ahead, so a backlog of thousands of replies wakes each one once, when its
    turn is due, instead of all of them every second (which cost a core in the campaign
    bench). Then a provider slot, taken only if free at this instant: like bulk, it never
    books one ahead of a receipt. It never naps: this runs in the receipts' worker."""
    if not reserved:
        wait = reserve_slot(r, settings.provider, settings.rate_per_second, clock(), normal=True)
        if wait > 0:
            return wait
    wait = -reserve_slot(r, settings.provider, settings.rate_per_second, clock(), max_ahead=0.0)
    if wait <= 0:
        return 0.0
    return max(wait, 1.0 / settings.rate_per_second)  # the provider is busy (receipts, bulk): its next slot


def bulk_booked_ahead(app: Flask | None = None) -> float:
    """Seconds of bulk sends booked ahead in the bulk share: how long a bulk message queued
    now waits for its turn (0: none waits). A bulk producer (campaign fulfilment) may pace
    itself by it rather than queue a day of messages at once."""
    app = _app(app)
    settings = settings_of(app)
    booked = get_redis(app).get(keys.sms_bulk_rate(settings.provider))
    return max(0.0, float(booked or 0) - clock())


def deliver(message_id: str, reserved: bool = False) -> str:
    """The rq job: send one queued message, at most once. Returns what it did (for logs)."""
    app = _app(None)
    settings = settings_of(app)
    r = get_redis(app)
    now = clock()
    ensure_sweeping(app, now)
    message = load(r, message_id)
    if message is None:
        log.warning("sms %s: no such message (expired?)", message_id)
        return "missing"
    claim = _claim_of_this_run()
    retaking = message.state == "sending" and _unconfirmed_claim(message.fields, claim)
    if message.state != "queued" and not retaking:
        log.info("sms %s is %s already: nothing to do", message_id, message.state)
        return message.state

    wait = 0.0
    if retaking:
        pass  # its slot was taken by the run that claimed it
    elif message.kind in BULK_KINDS:
        # ``reserved``: its slot in the bulk share is booked (a bulk message never holds
        # a provider slot ahead).
        wait = _bulk_turn(r, settings, reserved)
        now = clock()  # it may have napped
    elif message.kind not in PRIORITY_KINDS:
        wait = _normal_turn(r, settings, reserved) if settings.rate_per_second > 0 else 0.0
    elif not reserved:
        wait = reserve_slot(r, settings.provider, settings.rate_per_second, now)
        if 0 < wait <= min(1.0 / settings.rate_per_second, PRIORITY_NAP):
            # The next slot (a bulk send, or the receipt before it, is using this one): waited
            # for here, since rq's scheduler would add up to a second to it. One short slot
            # at most, so the worker still sends at the full rate.
            pause(wait)
            wait, now = 0.0, clock()
    if wait:
        # The slot booked (its place in its line, or a receipt's provider slot) is that far
        # ahead: look again then, the booking kept (``reserved``).
        r.hset(keys.sms_message(message_id), "next_attempt_at", _stamp(now + abs(wait)))
        worker.queue(app, queue_of(message.kind)).enqueue_in(
            datetime.timedelta(seconds=abs(wait)), deliver, message_id, True)
        log.debug("sms %s waits %.2f s for its %s slot", message_id, abs(wait), settings.provider)
        return "deferred"

    return _send_now(app, settings, r, message, claim, now)


def deliver_bulk(message_ids: list[str], reserved: bool = False) -> dict[str, int]:
    """The rq job of a bulk batch (`send_bulk`): its messages one after the other, each as
    `deliver` would take it (its turn in the bulk share, then a provider slot free at that
    instant, napped for in this worker; claimed, sent at most once). ``reserved``: the first
    message to take a turn has its slot in the bulk share booked already (by the run that
    deferred the batch). What came of the messages, counted (for logs).

    When a turn is further than a nap, or the run has taken BULK_BATCH_SECONDS, what is left
    of the batch goes back to the bulk queue as one job (its place in the bulk line kept, in
    the first case), and this run ends: the worker is never held for long, and a batch is
    never split into a job a message."""
    app = _app(None)
    settings = settings_of(app)
    r = get_redis(app)
    started = clock()
    ensure_sweeping(app, started)
    claim = _claim_of_this_run()
    pipe = r.pipeline(transaction=False)
    for message_id in message_ids:
        pipe.hgetall(keys.sms_message(message_id))
    # Read once for the whole batch: a message another run took since is found out by the
    # claim, which looks again (atomically) before anything is sent.
    messages = [Message.from_hash(record) if record else None for record in pipe.execute()]
    outcomes: Counter[str] = Counter()
    for index, message in enumerate(messages):
        if message is None:
            log.warning("sms %s: no such message (expired?)", message_ids[index])
            outcomes["missing"] += 1
            continue
        retaking = message.state == "sending" and _unconfirmed_claim(message.fields, claim)
        if message.state != "queued" and not retaking:
            outcomes[message.state] += 1  # a rerun of the batch: sent already, or claimed by another run
            continue
        if not retaking:  # a message this run claimed and never sent has had its turn
            wait = 0.0 if clock() - started < BULK_BATCH_SECONDS else -1.0
            if not wait:
                wait = _bulk_turn(r, settings, reserved)
                reserved = False
            if wait:
                rest = [m.id for m in messages[index:] if m is not None]
                _defer_batch(app, r, rest, max(wait, 0.0), booked=wait > 0)
                outcomes["deferred"] += len(rest)
                break
        outcomes[_send_now(app, settings, r, message, claim, clock())] += 1
    log.info("sms bulk batch of %d: %s", len(message_ids), dict(outcomes))
    return dict(outcomes)


def _defer_batch(app: Flask, r: TextRedis, message_ids: list[str], wait: float, booked: bool) -> None:
    """Queue what is left of a bulk batch again, as one job, ``wait`` seconds from now; with
    ``booked``, the slot in the bulk share that its first message booked is kept for it."""
    at = clock() + wait
    # Each message says when it is looked at again, so the sweep does not take a message of
    # a batch waiting its turn for a lost one.
    pipe = r.pipeline(transaction=False)
    for message_id in message_ids:
        pipe.hset(keys.sms_message(message_id), "next_attempt_at", _stamp(at))
    pipe.execute()
    queue = worker.queue(app, worker.BULK_QUEUE_NAME)
    if wait > 0:
        queue.enqueue_in(datetime.timedelta(seconds=wait), deliver_bulk, message_ids, booked, result_ttl=0,
                         job_timeout=BULK_JOB_TIMEOUT)
    else:  # out of time, not waiting for a turn: behind whatever the bulk queue holds now
        queue.enqueue(deliver_bulk, message_ids, booked, result_ttl=0, job_timeout=BULK_JOB_TIMEOUT)
    log.debug("sms bulk batch: %d message(s) wait %.2f s for their turn", len(message_ids), wait)


def _send_now(app: Flask, settings: Settings, r: TextRedis, message: Message, claim: str, now: float) -> str:
    """Claim a message whose turn has come (it holds its provider slot), send it and record
    the outcome; what came of it."""
    message_id = message.id
    # Built before the claim: a configuration error must leave the message queued, not
    # in a "sending" nobody can vouch for.
    client = get_client(app)
    claimed = _change(
        r, message_id,
        lambda m: m.get("state") == "queued" or (m.get("state") == "sending" and _unconfirmed_claim(m, claim)),
        lambda m: {
            "state": "sending", "claim": claim, "claim_confirmed": "", "claimed_at": _stamp(now),
            "attempts": int(m.get("attempts") or 0) + 1, "provider": settings.provider,
        },
        "sms.sending",
        provider=settings.provider,
    )
    if claimed is None:
        return "claimed elsewhere"
    attempt = int(claimed["attempts"])
    # Written once the claim is known to be ours and before the provider is called: a
    # rerun of this job (a claim whose answer was lost in a Redis timeout, though Redis
    # applied it) may take the message back only while this mark is missing, i.e. only
    # when no run of it can have reached the provider.
    try:
        r.hset(keys.sms_message(message_id), "claim_confirmed", claim)
    except redis.RedisError:
        # Redis may still apply the mark (a frozen server reads it when it wakes), and a
        # rerun would then believe a send had started. This run knows it never reached
        # the provider: it hands the message back before it fails.
        _give_back(r, message_id, claim)
        raise

    def ours(m: dict[str, str]) -> bool:
        # "unconfirmed" too: a sweep may have given up on a slow (not dead) worker, and
        # what that worker learns is the truth.
        return m.get("claim") == claim and m.get("state") in ("sending", "unconfirmed")

    sms = OutgoingSms(message_id, message.to, message.body)
    try:
        result = client.send(sms)
    except SmsError as exc:
        return _after_error(app, settings, message, attempt, exc, ours)

    def index(pipe: Any, _current: dict[str, str]) -> None:
        pipe.set(keys.sms_provider_id(result.provider, result.provider_id), message_id, ex=settings.retention)

    done = _change(
        r, message_id, ours,
        lambda m: {
            "state": "sent", "provider": result.provider, "provider_id": result.provider_id,
            "provider_status": result.status, "cost": result.cost, "sent_at": _stamp(clock()), "error": "",
        },
        "sms.sent",
        also=index,
        provider=result.provider, provider_id=result.provider_id, cost=result.cost, attempt=attempt,
    )
    if done is None:
        log.error("sms %s was sent (%s) but its claim was lost: recorded nowhere", message_id, result.provider_id)
    return "sent"


def _give_back(r: TextRedis, message_id: str, claim: str, patience: float = 20.0) -> None:
    """Return a message this run claimed, and never sent, to "queued"; retried while Redis is
    away, for up to ``patience`` seconds (the run holds nothing else meanwhile). If Redis
    stays away longer the message is left "sending", and the sweep marks it unconfirmed."""
    deadline = time.monotonic() + patience
    while True:
        try:
            _change(r, message_id,
                    lambda m: m.get("claim") == claim and m.get("state") == "sending",
                    lambda m: {"state": "queued", "claim": "", "claim_confirmed": ""},
                    "sms.given_back", reason="claim mark lost in a Redis error, provider never called")
            return
        except redis.RedisError as exc:
            if time.monotonic() >= deadline:
                log.error("sms %s: could not hand back its claim (%s); the sweep will mark it unconfirmed",
                          message_id, type(exc).__name__)
                return
            time.sleep(0.5)


def _claim_of_this_run() -> str:
    """The claim a run of ``deliver`` takes: its rq job's id, so that a rerun of the same job
    (after a Redis timeout, or requeued from a dead worker) recognises its own claim."""
    job = get_current_job()
    return job.id if job is not None else uuid.uuid4().hex


def _unconfirmed_claim(fields: Mapping[str, str], claim: str) -> bool:
    """Whether ``fields`` hold ``claim``, taken but never confirmed (no send followed it)."""
    return fields.get("claim") == claim and fields.get("claim_confirmed") != claim


def _after_error(
    app: Flask, settings: Settings, message: Message, attempt: int, exc: SmsError,
    ours: Callable[[dict[str, str]], bool],
) -> str:
    r = get_redis(app)
    message_id = message.id
    if exc.maybe_sent:
        _change(r, message_id, ours, lambda m: {"state": "unconfirmed", "error": exc.message},
                "sms.unconfirmed", reason=exc.message, attempt=attempt)
        log.warning("sms %s is unconfirmed (the provider may have it; not resent): %s", message_id,
                    mask_digits(exc.message))
        return "unconfirmed"
    if exc.retryable and attempt < MAX_ATTEMPTS:
        delay = calls.backoff(attempt, RETRY_FIRST, RETRY_CAP)
        retry_at = clock() + delay
        changed = _change(
            r, message_id, ours,
            lambda m: {"state": "queued", "error": exc.message, "next_attempt_at": _stamp(retry_at)},
            "sms.retry", reason=exc.message, attempt=attempt, delay=delay,
        )
        if changed is not None:
            worker.queue(app, queue_of(message.kind)).enqueue_in(datetime.timedelta(seconds=delay), deliver,
                                                                 message_id)
        return "retry"
    reason = exc.message if not exc.retryable else f"gave up after {attempt} attempts: {exc.message}"
    _change(r, message_id, ours, lambda m: {"state": "failed", "error": reason},
            "sms.failed", reason=reason, attempt=attempt)
    log.warning("sms %s failed: %s", message_id, mask_digits(reason))
    return "failed"


# -- stale messages -------------------------------------------------------------------------------
def sweep_stale(app: Flask | None = None, now: float | None = None) -> SweepResult:
    """Mark messages stuck in "sending" as unconfirmed (never resent: see the module
    docstring) and requeue messages stuck in "queued" with no job left to run them."""
    app = _app(app)
    settings = settings_of(app)
    r = get_redis(app)
    now = clock() if now is None else now
    unconfirmed: list[str] = []
    requeued: list[str] = []
    # While jobs wait in its queue, a late message may just be behind them: requeueing it
    # then would only pile duplicates onto the backlog. (Per queue: a campaign's backlog
    # says nothing about a lost receipt.)
    backlog = {name: worker.queue(app, name).count for name in worker.QUEUES}
    # No index of messages in flight (state.keys has none): a SCAN of the message hashes,
    # fine for a periodic job at outbox sizes (retention bounds them).
    for key in r.scan_iter(match=keys.sms_message("*"), count=1000):
        state, message_id, claimed_at, next_at, kind, reference = r.hmget(
            key, "state", "id", "claimed_at", "next_attempt_at", "kind", "reference")
        if not message_id:
            continue
        if state == "sending" and float(claimed_at or 0) < now - settings.claim_timeout:
            claim_at = claimed_at

            def stale(m: dict[str, str], claim_at: str | None = claim_at) -> bool:
                return m.get("state") == "sending" and m.get("claimed_at") == claim_at

            if _change(r, message_id, stale,
                       lambda m: {"state": "unconfirmed", "error": "worker lost during the send"},
                       "sms.unconfirmed", reason="stale claim", claimed_at=claimed_at) is not None:
                unconfirmed.append(message_id)
                log.warning(
                    "sms %s was left sending since %s (its worker died): unconfirmed, not resent; "
                    "the customer may need a resend", message_id, claimed_at,
                )
        elif (state == "queued" and not backlog[queue_of(kind or "")]
              and float(next_at or 0) < now - settings.requeue_after):
            named = r.get(keys.sms_reference(reference)) if reference else None
            if named and named != message_id:
                # A send() that lost its reference to another message and crashed before
                # deleting its own (send writes them as two keys): that other message is the
                # one; sending this one too would be the duplicate.
                r.delete(key)
                log.warning("sms %s is a copy its reference %s never named: deleted, not sent", message_id,
                            reference)
                continue
            waited = next_at

            def lost(m: dict[str, str], waited: str | None = waited) -> bool:
                return m.get("state") == "queued" and m.get("next_attempt_at") == waited

            if _change(r, message_id, lost, lambda m: {"next_attempt_at": _stamp(now)},
                       "sms.requeued", waited_since=waited) is not None:
                worker.queue(app, queue_of(kind or "")).enqueue(deliver, message_id, result_ttl=0)
                requeued.append(message_id)
                log.warning("sms %s was queued with no job since %s: requeued", message_id, waited)
    return SweepResult(tuple(unconfirmed), tuple(requeued))


def _sweep_job_id(period: int) -> str:
    return f"guichet-sms-sweep-{period}"


def sweep_job(period: int) -> SweepResult:
    """The periodic rq job: sweep, then book the next period's sweep."""
    app = _app(None)
    every = settings_of(app).sweep_every
    if every > 0:
        # Booked first, so a sweep that fails does not end the chain. A sweep that ran
        # late books the next period still ahead, not the ones it missed.
        _schedule_sweep(app, max(period + 1, int(clock() // every) + 1), every)
    return sweep_stale(app)


def ensure_sweeping(app: Flask | None = None, now: float | None = None) -> None:
    """Make sure a sweep is booked for the next period (cheap when it is)."""
    app = _app(app)
    every = settings_of(app).sweep_every
    if every <= 0:
        return
    now = clock() if now is None else now
    period = int(now // every) + 1
    if not Job.exists(_sweep_job_id(period), connection=get_store(app).jobs):
        _schedule_sweep(app, period, every)


def _schedule_sweep(app: Flask, period: int, every: int) -> None:
    # One job id per period: every worker booking "the next sweep" books the same job,
    # so however many start the chain, one sweep runs per period.
    at = datetime.datetime.fromtimestamp(period * every, tz=datetime.UTC)
    worker.queue(app).enqueue_at(at, sweep_job, period, job_id=_sweep_job_id(period), result_ttl=2 * every)


# -- delivery reports -------------------------------------------------------------------------------
def record_delivery(
    client: TextRedis, provider: str, provider_id: str, status: str, delivery: str, error: str = "",
) -> Message | None:
    """Record a provider's delivery report; None when the provider id is not ours (or expired).

    ``delivery`` is the normalised outcome (delivered, failed, or the provider's
    intermediate word); a late intermediate report never overwrites a final one.
    """
    message_id = client.get(keys.sms_provider_id(provider, provider_id))
    if not message_id:
        return None

    def applies(m: dict[str, str]) -> bool:
        return m.get("delivery") not in FINAL_DELIVERY or delivery in FINAL_DELIVERY

    changed = _change(
        client, message_id, applies,
        lambda m: {
            "delivery": delivery, "delivery_status": status, "delivery_error": error,
            "delivery_at": _stamp(clock()),
        },
        "sms.delivery",
        provider=provider, provider_id=provider_id, status=status, delivery=delivery, error=error,
    )
    if changed is None:
        record = client.hgetall(keys.sms_message(message_id))
        if not record:
            return None
        log.info("sms %s: late %s report %r ignored (already %s)", message_id, provider, status,
                 record.get("delivery"))
        return Message.from_hash(record)
    return Message.from_hash(changed)
