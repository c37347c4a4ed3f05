"""The poller: settles payments whose callback never came.

MTN sends its callback once and never again; a callback can also be refused by a proxy,
arrive while we are down, or be lost on the way. So every pending payment is also asked
about: first after GUICHET_PAYMENT_POLL_AFTER seconds (the callback usually comes first),
then with a backoff per payment (about 15 s, 30 s, 60 s... up to
GUICHET_PAYMENT_POLL_MAX_INTERVAL: utility.calls.backoff), and after GUICHET_PAYMENT_EXPIRY seconds with no
final answer the payment is given up: failed, reason "expired" (the order must end; a
late success from the provider still wins, see records.learn).

Every final result is handed to ``on_result`` (the order pipeline's handler), including
results learned elsewhere whose hand-over failed: at least once, so ``on_result`` must be
idempotent by order_ref.

Run it every few seconds: ``start_in_thread(app)`` beside the web server (one round per
interval across all processes), or ``poll_job`` from a scheduled rq job. It only does
what is due, and two rounds at once do no harm beyond a duplicate status call.

``settle_job`` is the same look at one payment, now: the callback endpoint queues it when
a provider's callback is only a wake-up (MTN's), so the callback is answered at once and
the status call runs in the worker.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from state import keys
from state.store import get_redis
from state.worker import last_recovery
from utility.calls import backoff
from utility.payments.base import DEFAULTS, FAILED, FINAL_STATES, PaymentError, PaymentProvider, PaymentResult
from utility.payments.records import PaymentRecords

log = logging.getLogger(__name__)

CAUGHT_UP = "guichet.payments.caught_up"  # app.extensions: the recovery the poller last caught up after


@dataclass(frozen=True)
class PollSettings:
    after: float = DEFAULTS["PAYMENT_POLL_AFTER"]  # seconds pending before the first status call
    first_interval: float = 15.0  # then this, doubling per payment...
    max_interval: float = DEFAULTS["PAYMENT_POLL_MAX_INTERVAL"]  # ...up to this
    expiry: float = DEFAULTS["PAYMENT_EXPIRY"]  # give up after this long: failed, expired
    batch: int = 200  # payments looked at per run


SETTINGS_EXTENSION = "guichet.payments.poll_settings"


def poll_settings(app: Flask) -> PollSettings:
    """The app's poll settings, parsed once."""
    settings: PollSettings | None = app.extensions.get(SETTINGS_EXTENSION)
    if settings is None:
        settings = app.extensions[SETTINGS_EXTENSION] = settings_from(app.config)
    return settings


def poll_every(config: Mapping[str, Any]) -> float:
    """Seconds between two poller rounds (PAYMENT_POLL_EVERY)."""
    return float(config.get("PAYMENT_POLL_EVERY") or DEFAULTS["PAYMENT_POLL_EVERY"])


def settings_from(config: Mapping[str, Any]) -> PollSettings:
    defaults = PollSettings()

    def number(name: str, default: float) -> float:
        value = config.get(name)
        return default if value is None else float(value)

    return PollSettings(
        after=number("PAYMENT_POLL_AFTER", defaults.after),
        max_interval=number("PAYMENT_POLL_MAX_INTERVAL", defaults.max_interval),
        expiry=number("PAYMENT_EXPIRY", defaults.expiry),
    )


def poll_pending(
    app: Flask,
    on_result: Callable[[PaymentResult], object],
    *,
    provider: PaymentProvider | None = None,
    settings: PollSettings | None = None,
    now: float | None = None,
    catch_up: bool = False,
) -> list[PaymentResult]:
    """Ask about every payment that is due, hand every final result to ``on_result``.
    Returns the results handed over. ``now`` is for tests (default: the clock).

    ``catch_up``: ask about every pending payment now, due or not (the first round after
    an outage or a start, when callbacks may have been refused or lost)."""
    from utility.payments import from_config

    provider = provider or from_config(app)
    settings = settings or poll_settings(app)
    now = time.time() if now is None else now
    records = PaymentRecords(get_redis(app), provider.name, clock=lambda: now)
    handed: list[PaymentResult] = []
    for ref in records.due(float("inf") if catch_up else now, settings.batch):
        try:
            final = _poll_one(provider, records, ref, now, settings, catch_up)
        except Exception:  # one bad payment must not stop the others
            log.exception("polling payment %s failed", ref)
            records.reschedule(ref, now + settings.max_interval)
            continue
        if final is not None and records.hand_over(ref, on_result) == "handed_over":
            handed.append(final)
    return handed


def _poll_one(
    provider: PaymentProvider, records: PaymentRecords, ref: str, now: float, settings: PollSettings,
    catch_up: bool = False,
) -> PaymentResult | None:
    """The payment's final result when it has one now; else None (rescheduled)."""
    record = records.get(ref)
    if record is None:
        records.forget(ref)
        return None
    if record.get("state") in FINAL_STATES:
        return records.result_of(ref, record)  # learned earlier, not yet handed over
    created = float(record.get("created_at") or now)
    if now - created < settings.after and not catch_up:
        records.reschedule(ref, created + settings.after)
        return None
    try:
        result: PaymentResult | None = provider.status(ref)
    except PaymentError as exc:
        log.info("status of payment %s unknown for now: %s", ref, exc)
        result = None
    if result is not None and result.final:
        return result
    if now - created >= settings.expiry:
        learned = records.learn(ref, FAILED, "expired", via="poller")
        return learned.result if learned is not None else None
    polls = int(record.get("polls") or 0) + 1
    interval = backoff(polls, settings.first_interval, settings.max_interval)
    # The last look is at the expiry itself, not some backoff after it.
    records.reschedule(ref, min(now + interval, created + settings.expiry), polls=polls)
    return None


def settle(
    app: Flask,
    name: str,
    provider_ref: str,
    on_result: Callable[[PaymentResult], object] | None = None,
) -> str:
    """Ask provider ``name`` about one payment now and hand a final result to
    ``on_result`` (default: the registered handler). Returns what happened: a hand-over
    outcome (records.hand_over), "pending", or "status_unknown" (left to the poller)."""
    from utility.payments import RESULTS_HANDLER, provider

    chosen = provider(app, name)
    records = PaymentRecords(get_redis(app), name)
    try:
        result = chosen.status(provider_ref)
    except PaymentError as exc:
        # The callback said something happened: have the poller look again soon rather
        # than at the end of its backoff.
        log.warning("payment %s: status unknown after its callback: %s; left to the poller", provider_ref, exc)
        records.look_soon(provider_ref, time.time())
        return "status_unknown"
    if not result.final:
        return "pending"  # still in the index: the poller keeps looking
    handler = on_result if on_result is not None else app.extensions.get(RESULTS_HANDLER)
    return records.hand_over(provider_ref, handler)


def settle_job(name: str, provider_ref: str) -> str:
    """``settle`` as an rq job (in the app context), queued by the callback endpoint."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    outcome = settle(app, name, provider_ref)
    log.info("%s payment %s settled after its callback: %s", name, provider_ref, outcome)
    return outcome


@dataclass
class Background:
    """The poller's thread beside the web server (see start_in_thread)."""

    thread: threading.Thread
    stopping: threading.Event

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        self.thread.join(timeout)


def start_in_thread(app: Flask, every: float | None = None) -> Background:
    """Poll every ``every`` seconds (GUICHET_PAYMENT_POLL_EVERY, default 10) in a daemon
    thread, handing results to the handler the order pipeline registered
    (app.extensions[RESULTS_HANDLER]). Any number of processes may run one: a short
    lock in Redis lets one of them do each round."""
    interval = float(every if every is not None else poll_every(app.config))
    stopping = threading.Event()

    def rounds() -> None:
        while not stopping.is_set():
            try:
                poll_round(app, lease=interval * 0.9)
            except Exception:  # Redis away, a bug: log it and keep the thread alive
                log.exception("payment poller round failed")
            stopping.wait(interval)

    thread = threading.Thread(target=rounds, name="guichet-payment-poller", daemon=True)
    thread.start()
    return Background(thread, stopping)


def poll_round(app: Flask, lease: float = 9.0) -> int | None:
    """One round of ``poll_pending`` with the registered handler, unless another process
    has done one less than ``lease`` seconds ago (None). Returns how many were handed over."""
    from utility.payments import RESULTS_HANDLER, configured_name

    handler = app.extensions.get(RESULTS_HANDLER)
    if handler is None:
        log.warning("payment poller: no results handler registered; nothing polled")
        return 0
    # The first round after this process started or saw an outage end catches up.
    recovered = last_recovery(app)
    catch_up = recovered > app.extensions.get(CAUGHT_UP, -1.0)
    lock = keys.payment(configured_name(app), "poller:round")
    if not get_redis(app).set(lock, "1", nx=True, px=max(1, int(lease * 1000))) and not catch_up:
        return None
    handed = poll_pending(app, handler, catch_up=catch_up)
    if catch_up:
        app.extensions[CAUGHT_UP] = recovered
        log.info("payment poller caught up after a start or an outage: %d payment(s) settled", len(handed))
    return len(handed)


def poll_job() -> int:
    """One poller round as an rq job (in the app context), for deployments that
    schedule it rather than run start_in_thread."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return poll_round(app) or 0
