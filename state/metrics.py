"""What the service is doing, for Prometheus: `GET /metrics` in its text format.

Two kinds of figure, told apart by where their truth lives:

- **Counted by the process that does the work** (prometheus-client counters and histograms):
  USSD hops by gateway, screen and outcome, and how long they took; sessions started and how
  they ended (Africa's Talking's session-end callback); calls to outside systems by system and
  outcome (utility.calls: each payment provider, vending, billing, each SMS provider) and how
  long they took; order transitions by kind and state; SMS by provider and status; payment
  results by provider and result; campaign registrations by campaign, channel and verdict.
  Counting costs the hop no round trip. Under `guichet serve` every process of the machine
  (the serving processes and the background worker) writes its counts to files in one
  folder (PROMETHEUS_MULTIPROC_DIR, chosen by app.count_across_processes before any count
  is kept) and any serving process adds them all up when scraped. A `guichet
  worker` on another machine counts in its own process: `--metrics-port` serves them there.
- **Read from Redis when scraped** (one pipeline per group, at the scrape's pace, never a
  hop's): the breakers' states, the queues' depths and their oldest job's age, the orders
  open and waiting for their backend, each campaign's registrations and refusals by reason.
  These are the same whichever process answers the scrape.

What each metric means, the alerts to set and what to do when one fires: docs/operations.md.
"""
from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, cast

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable

# Latency buckets of a hop (seconds): a hop is milliseconds when all is well; the gateway gives
# up after a few seconds.
HOP_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HOPS = Counter("guichet_ussd_hops", "USSD hops answered, by gateway, the screen shown and the outcome "
               "(continue, end, replayed, busy, down, error, saturated, bad_callback)",
               ["gateway", "screen", "outcome"])
HOP_SECONDS = Histogram("guichet_ussd_hop_seconds", "Time to answer a USSD hop, in the serving process",
                        ["gateway"], buckets=HOP_BUCKETS)
SESSIONS = Counter("guichet_ussd_sessions", "USSD sessions: started (the opening hop), and completed or "
                   "abandoned (the gateway's session-end report)", ["event"])
CALLS = Counter("guichet_outside_calls", "Calls to outside systems by system and outcome (utility.calls.OUTCOMES)",
                ["system", "outcome"])
CALL_SECONDS = Histogram("guichet_outside_call_seconds", "Time an outside call took, by system", ["system"],
                         buckets=CALL_BUCKETS)
ORDERS = Counter("guichet_order_transitions", "Orders entering a state, by kind (units, bill) and state",
                 ["kind", "state"])
SMS = Counter("guichet_sms", "SMS by provider and status (queued, sent, unconfirmed, failed; delivered and "
              "the like from delivery reports)", ["provider", "status"])
PAYMENTS = Counter("guichet_payment_results", "Payment results applied to orders, by provider and result "
                   "(successful, declined, expired, ...)", ["provider", "result"])
REGISTRATIONS = Counter("guichet_campaign_verdicts", "Campaign registration verdicts by campaign, channel "
                        "and verdict (accepted or the refusal's reason)", ["campaign", "channel", "verdict"])


# -- counting (cheap: no I/O; never raises into the caller) ------------------------------------
def hop(gateway: str, screen: str, outcome: str) -> None:
    HOPS.labels(gateway, screen or "none", outcome).inc()


def hop_seconds(gateway: str, seconds: float) -> None:
    HOP_SECONDS.labels(gateway).observe(seconds)


def session(event: str) -> None:
    SESSIONS.labels(event).inc()


def call(system: str, outcome: str, seconds: float) -> None:
    CALLS.labels(system, outcome).inc()
    CALL_SECONDS.labels(system).observe(seconds)


def order(kind: str, state: str) -> None:
    ORDERS.labels(kind, state).inc()


def sms(provider: str, status: str) -> None:
    SMS.labels(provider or "none", status or "unknown").inc()


def payment(provider: str, result: str) -> None:
    PAYMENTS.labels(provider, result or "unknown").inc()


def verdict(campaign: str, channel: str, outcome: str) -> None:
    REGISTRATIONS.labels(campaign, channel, outcome).inc()


# -- read from Redis when scraped ------------------------------------------------------------------
Read = Callable[[Flask], Iterable[Metric]]
READERS: list[Read] = []


def reader(read: Read) -> Read:
    """Register ``read(app)`` to be run at each scrape (in the app's context); its metrics join
    the answer. A reader that fails is logged and left out: a scrape never fails for one."""
    READERS.append(read)
    return read


class _FromRedis(Collector):
    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        for read in READERS:
            started = time.monotonic()
            try:
                yield from read(self.app)
            except Exception as exc:  # Redis away, a bug: the other figures still go out
                log.warning("metrics: %s failed (%s)", read.__name__, type(exc).__name__)
            finally:
                SCRAPE_SECONDS.labels(read.__name__).observe(time.monotonic() - started)


SCRAPE_SECONDS = Histogram("guichet_metrics_read_seconds", "Time each group of Redis-read metrics took to read",
                           ["group"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0))


@reader
def breakers(app: Flask) -> Iterable[Metric]:
    from utility import calls

    family = GaugeMetricFamily("guichet_breaker_state", "Circuit breaker of each outside system: 0 closed, "
                               "1 half open (its next call probes), 2 open", labels=["system"])
    failures = GaugeMetricFamily("guichet_breaker_failures", "Retryable failures in a row counted by each breaker",
                                 labels=["system"])
    calls.states(app)  # builds the backends, and their breakers, if nothing has yet
    for breaker in calls.seam(app).read():
        family.add_metric([breaker.system], {"closed": 0, "half_open": 1, "open": 2}[breaker.state])
        failures.add_metric([breaker.system], breaker.failures)
    return [family, failures]


@reader
def queues(app: Flask) -> Iterable[Metric]:
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    from state import worker

    depth = GaugeMetricFamily("guichet_queue_jobs", "Jobs waiting in each background queue", labels=["queue"])
    scheduled = GaugeMetricFamily("guichet_queue_scheduled_jobs", "Jobs scheduled for later (retries, SMS waiting "
                                  "for their slot) in each queue", labels=["queue"])
    running = GaugeMetricFamily("guichet_queue_running_jobs", "Jobs being run in each queue", labels=["queue"])
    age = GaugeMetricFamily("guichet_queue_oldest_job_age_seconds", "How long the oldest waiting job of each queue "
                            "has waited (0 when none waits)", labels=["queue"])
    now = time.time()
    for name in worker.QUEUES:
        queue = worker.queue(app, name)
        depth.add_metric([name], queue.count)
        scheduled.add_metric([name], ScheduledJobRegistry(queue=queue).count)
        running.add_metric([name], StartedJobRegistry(queue=queue).count)
        oldest = queue.get_job_ids(0, 1)
        job = queue.fetch_job(oldest[0]) if oldest else None
        enqueued = job.enqueued_at if job is not None else None
        age.add_metric([name], max(0.0, now - enqueued.timestamp()) if enqueued is not None else 0.0)
    return [depth, scheduled, running, age]


class _Counts(Protocol):
    """The counting commands of a pipeline (state.store's protocols name what hops send)."""

    def zcard(self, name: str) -> Any: ...
    def scard(self, name: str) -> Any: ...
    def execute(self) -> list[int]: ...


@reader
def orders(app: Flask) -> Iterable[Metric]:
    from state import keys
    from state.store import get_redis

    pipe = cast(_Counts, get_redis(app).pipeline(transaction=False))
    pipe.zcard(keys.open_orders())
    pipe.scard(keys.waiting_orders())
    open_now, waiting = pipe.execute()
    return [
        GaugeMetricFamily("guichet_orders_open", "Orders not final yet (paying, paid, fulfilling)", value=open_now),
        GaugeMetricFamily("guichet_orders_waiting", "Orders paid and waiting for their backend (vending or billing "
                          "down)", value=waiting),
    ]


@reader
def campaigns(app: Flask) -> Iterable[Metric]:
    from utility.services import services

    registered = CounterMetricFamily("guichet_campaign_registrations", "Registrations accepted by each campaign",
                                     labels=["campaign"])
    fulfilled = CounterMetricFamily("guichet_campaign_fulfilled", "Registrations fulfilled (credit or token sent)",
                                    labels=["campaign"])
    refused = CounterMetricFamily("guichet_campaign_refusals", "Registrations refused, by campaign and reason",
                                  labels=["campaign", "reason"])
    built = services(app).campaigns
    for campaign in built.active():
        stats: dict[str, Any] = built.stats(campaign.code)
        registered.add_metric([campaign.code], int(stats.get("registered", 0)))
        fulfilled.add_metric([campaign.code], int(stats.get("fulfilled", 0)))
        for reason, count in dict(stats.get("refusals") or {}).items():
            refused.add_metric([campaign.code, reason], int(count))
    return [registered, fulfilled, refused]


# -- the endpoint -----------------------------------------------------------------------------------
bp = Blueprint("metrics", __name__)


LOOPBACK = ("127.0.0.1", "::1")


def refusal(token: str, authorization: str, remote_addr: str | None) -> str | None:
    """Why a scrape is refused, or None. With GUICHET_METRICS_TOKEN the scraper sends it as a
    bearer token (Prometheus' `authorization` in scrape_config); without one, only this
    machine may scrape: the figures say how busy the service is, no business of the internet."""
    if token:
        given = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
        return "send GUICHET_METRICS_TOKEN as a bearer token"
    return None if remote_addr in LOOPBACK else "only this machine may scrape without GUICHET_METRICS_TOKEN"


@bp.get("/metrics")
def scrape() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    refused = refusal(str(app.config["METRICS_TOKEN"] or ""), request.headers.get("Authorization", ""),
                      request.remote_addr)
    if refused:
        return Response(f"forbidden: {refused}\n", status=403, mimetype="text/plain")
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_DIR):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # every process's files in that folder
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY  # this process's own counts (tests, `make run` on the embedded store)
    body = generate_latest(registry) + generate_latest(_redis_registry(app))
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _redis_registry(app: Flask) -> CollectorRegistry:
    made: CollectorRegistry | None = app.extensions.get(EXTENSION)
    if made is None:
        made = app.extensions[EXTENSION] = CollectorRegistry(auto_describe=False)
        made.register(_FromRedis(app))
    return made


EXTENSION = "guichet.metrics"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
