"""Background jobs: two rq queues on Guichet's Redis, the workers that run them, the
scheduler that releases their delayed jobs, and periodic tasks; each supervised.

`guichet serve` runs them in threads of each web process (the only way to share the
embedded store); `guichet worker` runs the same set on its own against REDIS_URL. Jobs
run inside the Flask app context, so they reach the same configuration and services as
the web requests that queued them.

Queues: "guichet" carries what a customer is waiting for (a token, a receipt, a payment's
news, a resend) and everything else that is not bulk; "guichet-bulk" carries bulk work
(campaign fulfilment, broadcasts: hundreds of thousands of jobs at once). Each worker
takes one queue (see QUEUES for why), so "the receipt queue first" is a worker of its
own: the receipts worker(s) never run a bulk job, and a receipt queued behind 200,000
campaign jobs waits for none of them. `start_in_thread` runs ``job_workers`` on the
receipts queue and GUICHET_BULK_WORKERS (1) on the bulk queue; `guichet worker --queue
guichet-bulk` runs bulk workers alone, on another machine. The scheduler, the reclaimer
and the recovery after an outage cover both queues (and take the receipts' first).

Supervision: every background loop runs under a `Supervised` thread that restarts it
when it dies, so a Redis restart or a bug in one round never stops background work for
good. A loop that dies while Redis does not answer is restarted as soon as Redis answers
again (it could do nothing before); one that dies with Redis up is restarted after a
backoff (0.5 s, doubling, at most 30 s; back to 0.5 s after a healthy minute), so a bug
does not spin. Each death and restart is logged, and /readyz answers 503 naming a
required loop (the worker, the scheduler) while it is down.

Crashes: a worker killed mid-job (SIGKILL, OOM, a lost host) leaves its job in rq's
StartedJobRegistry, where rq would fail it only minutes later. Each live worker keeps an
"alive" key, refreshed every second; the reclaimer requeues within seconds a started job
whose worker has no alive key, or is a process of this machine that no longer runs. Our
jobs are idempotent and check state before acting (fulfil an order, deliver an SMS,
approve a demo payment), so running an abandoned job again is safe; the SMS outbox never
sends a message twice because deliver() refuses a message that is not "queued". For the
same reason a job that failed only because Redis was away (a timeout, a restart: the
error or its cause is a redis ConnectionError or TimeoutError), or could not get a lock
(state.locks.LockTimeout: a holder that an outage or a crash left behind keeps it until
it expires), is run again after 1 s, 2 s, 5 s... instead of failing for good.

Redis blocking: the worker waits for a job in a BLMOVE of GUICHET_WORKER_DEQUEUE_TIMEOUT
(5 s), on a connection of its own whose socket timeout is that plus 10 s (rq's own rule);
every other client keeps the short GUICHET_REDIS_TIMEOUT of state.store.
"""
from __future__ import annotations

import datetime
import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import click
import redis
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.scripts import ACQUIRE_OR_REFRESH_LOCK_SCRIPT, acquire_or_refresh_lock
from rq.timeouts import TimerDeathPenalty
from rq.utils import as_text, now, parse_composite_key, utcformat

from state import keys
from state.locks import LockTimeout
from state.store import caused_by_redis_outage, get_store

log = logging.getLogger(__name__)

QUEUE_NAME = "guichet"  # receipts, tokens, payments, resends: what a customer waits for
# Bulk work (campaign fulfilment, broadcasts): its own queue, so a customer's receipt never
# waits behind 200,000 campaign jobs.
BULK_QUEUE_NAME = "guichet-bulk"
# Every queue, the receipts' first. One queue per worker, on purpose: rq takes a job from a
# single queue with BLMOVE into an intermediate list, from which the reclaimer recovers a
# job whose worker died before starting it; from several queues it uses BLPOP, and a job
# taken at the instant Redis went away was lost (the fault drill found it). So work that
# must not wait behind another kind gets a queue of its own with workers of its own, and
# "receipts first" means workers that take nothing else.
QUEUES = (QUEUE_NAME, BULK_QUEUE_NAME)
BULK_WORKERS = 1  # workers on the bulk queue per `guichet serve` / `guichet worker` (GUICHET_BULK_WORKERS)
WORKER_LOOPS = {QUEUE_NAME: "worker", BULK_QUEUE_NAME: "bulk-worker"}  # supervised loops: worker, worker-2...

BACKGROUND = "guichet.background"  # app.extensions: the running Background
STARTUP_CHECKS = "guichet.startup_checks"  # app.extensions: [check(app)] run before serving or working
PERIODIC = "guichet.periodic"  # app.extensions: {name: Periodic} to start with it
RECOVERED = "guichet.recovered_at"  # app.extensions: time.monotonic() of the last start or outage end

DEQUEUE_TIMEOUT = 5  # seconds the worker blocks for a job (GUICHET_WORKER_DEQUEUE_TIMEOUT)
SCHEDULER_INTERVAL = 1  # seconds between two looks at the delayed jobs (whole: rq sets TTLs from it)
RESTART_FIRST, RESTART_MAX = 0.5, 30.0  # backoff of a loop that dies with Redis up...
HEALTHY_AFTER = 60.0  # ...reset once it has run this long
OUTAGE_RESTART_MAX = 2.0  # at most this after a Redis error, once Redis answers
REDIS_WAIT = 0.5  # seconds between two pings while a dead loop waits for Redis
RECOVERY_CHECK = 0.5  # seconds between two looks, in a periodic task's pause, for an outage's end
ALIVE_TTL = 30  # seconds a worker's alive key outlives its last refresh
RECLAIM_EVERY = 1.0  # seconds between two looks for abandoned jobs
RECLAIM_GRACE = 2.0  # a live worker of ours may not show its job for this long
TAKEN_GRACE = 3.0  # a job taken from the queue but not started, for this long, is lost
# Redis-only failures of a job (a timeout, a restart) are retried after these delays.
REDIS_RETRY_DELAYS = (1, 2, 5, 10, 30, 60, 120, 300)
GUICHET_MARK = "guichet_alive_key"  # a field of the rq worker hash of the workers that keep one


def queue(app: Flask | None = None, name: str = QUEUE_NAME) -> Queue:
    return Queue(name, connection=get_store(app).jobs)


# -- the worker -------------------------------------------------------------------------------
# The rq workers running in this process, by name: the reclaimer knows exactly which jobs
# they run, without waiting for any key to expire.
_live_workers: dict[str, AppWorker] = {}


def live_executions() -> dict[str, set[str]]:
    """{worker name: ids of the executions it runs} for every live worker of this process."""
    return {name: set(rq_worker.executions.copy()) for name, rq_worker in _live_workers.copy().items()}


class AppWorker(SimpleWorker):
    """An rq worker that runs jobs in the app context, in-process, from any thread."""

    # SIGALRM-based job timeouts only work in the main thread; a timer works anywhere.
    death_penalty_class = TimerDeathPenalty
    # rq retries a lost connection while waiting for a job, doubling its wait up to a
    # minute; once Redis is back, a second is as long as we want jobs to wait.
    max_connection_wait_time = 1.0

    def __init__(
        self, app: Flask, *args: Any, in_thread: bool = False, dequeue_timeout: int = DEQUEUE_TIMEOUT, **kwargs: Any
    ) -> None:
        # rq blocks for worker_ttl - 15 s and wants a socket timeout of that + 10 s.
        kwargs.setdefault("worker_ttl", dequeue_timeout + 15)
        super().__init__(*args, **kwargs)
        self.app = app
        self.in_thread = in_thread

    def _install_signal_handlers(self) -> None:
        # In a thread, signals belong to the web server that hosts us.
        if not self.in_thread:
            super()._install_signal_handlers()

    def subscribe(self) -> None:
        # rq's command channel (pubsub) costs a thread and a connection per worker, and
        # its commands (kill a forked horse, stop by signal) do not apply to a thread.
        pass

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        # Alive before the first job: a job started without it would look abandoned.
        mark_alive(self.connection, self.name)
        self.connection.hset(self.key, GUICHET_MARK, "1")  # ours: it keeps an alive key
        _live_workers[self.name] = self

    def teardown(self) -> None:
        _live_workers.pop(self.name, None)  # whatever it still holds is abandoned now
        try:
            self.connection.delete(alive_key(self.name))
        except redis.RedisError:
            pass  # Redis away: the reclaimer still knows this process's dead workers
        super().teardown()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        # rq loops in here until a job comes, deaf to a stop request: come out at each
        # timeout, so stop() takes effect within a dequeue timeout.
        while True:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time or timeout)
            if result is not None or timeout is None or self._stop_requested or max_idle_time:
                return result

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        super().handle_exception(job, *exc_info)
        # A job that failed only because Redis was away (a timeout, a restart), or because
        # a lock stayed held (by a holder that an outage or a crash left behind, until the
        # lock expires), runs again later, as jobs of a worker that died do: they are
        # idempotent by design.
        error = exc_info[1]
        if (caused_by_redis_outage(error) or isinstance(error, LockTimeout)) and not job.should_retry:
            tries = int(job.meta.get("redis_retries", 0))
            if tries < len(REDIS_RETRY_DELAYS):
                job.meta["redis_retries"] = tries + 1
                job.retries_left, job.retry_intervals = 1, [REDIS_RETRY_DELAYS[tries]]
                log.warning("job %s failed on %s (Redis away, or a lock held): retried in %d s", job.id,
                            type(error).__name__, REDIS_RETRY_DELAYS[tries])
                if caused_by_redis_outage(error):
                    try:  # so that it runs as soon as Redis answers, not at the end of its delay
                        self.connection.sadd(keys.outage_retries(), job.id)
                    except redis.RedisError:
                        pass  # still away: the delay alone applies

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self.app.app_context():
            super().execute_job(job, queue)


def dequeue_timeout(app: Flask) -> int:
    return max(1, int(app.config.get("WORKER_DEQUEUE_TIMEOUT") or DEQUEUE_TIMEOUT))


def configured_bulk_workers(app: Flask) -> int:
    """Workers to run on the bulk queue (GUICHET_BULK_WORKERS; 0: none here, bulk work
    runs elsewhere, e.g. `guichet worker --queue guichet-bulk` on another machine)."""
    configured = app.config.get("BULK_WORKERS")
    return BULK_WORKERS if configured is None or configured == "" else max(0, int(configured))


def make_worker(app: Flask, in_thread: bool = False, queue_name: str = QUEUE_NAME) -> AppWorker:
    """A worker of one queue (see QUEUES), on a connection of its own whose socket timeout
    outlasts its blocking wait for a job (see Store.blocking_jobs_client)."""
    if queue_name not in QUEUES:
        raise ValueError(f"no such queue: {queue_name!r} (queues: {', '.join(QUEUES)})")
    wait = dequeue_timeout(app)
    connection = get_store(app).blocking_jobs_client(socket_timeout=wait + 10)
    return AppWorker(app, [queue_name], connection=connection, in_thread=in_thread, dequeue_timeout=wait)


# -- the scheduler ------------------------------------------------------------------------------
class ThreadScheduler(RQScheduler):
    """rq's scheduler (delayed jobs, retries with backoff) in a thread.

    rq forks its scheduler into a process of its own, which cannot see the embedded
    store; in a thread it shares the store with the web requests.

    One scheduler at a time holds a queue's lock. rq's lock lives interval + 60 s and a
    scheduler without it tries again only every 2 minutes: after a crash, nothing
    delayed ran for two minutes. Ours lives a few intervals, is refreshed every loop,
    is tried for every loop while another holds it, and is released on stop.
    """

    def __init__(self, queues: Iterable[str], connection: redis.Redis, interval: int = SCHEDULER_INTERVAL,
                 name: str | None = None) -> None:
        self._queue_order = list(queues)  # rq keeps a set
        super().__init__(self._queue_order, connection=connection, interval=interval, name=name)
        self.lock_ttl = max(5, math.ceil(5 * interval))  # whole seconds (rq's lock script uses EX)
        self._wake = threading.Event()

    def _install_signal_handlers(self) -> None:
        pass  # signals belong to the web server that hosts us

    def prepare_registries(self, queue_names: Iterable[str] | None = None) -> None:
        # In the order given (QUEUES: the receipts' first), not a set's: each round moves the
        # receipts' due jobs first.
        super().prepare_registries(queue_names or [name for name in self._queue_order if name in self._acquired_locks])

    @property
    def should_reacquire_locks(self) -> bool:
        return self._queue_names != self.acquired_locks

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        held = set()
        for name in self._queue_names:
            outcome = acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name, self.lock_ttl)
            if outcome == "acquired":
                log.info("scheduler %s took the lock of queue %r", self.name, name)
            if outcome in ("acquired", "refreshed"):
                held.add(name)
        if held != self._acquired_locks:
            self._scheduled_job_registries = []
        self._acquired_locks = held
        # rq sets it to a datetime too, but declares it as None (its __init__'s only annotation).
        self.lock_acquisition_time = datetime.datetime.now()  # type: ignore[assignment]
        return held

    def heartbeat(self) -> None:
        """rq's heartbeat with our lock TTL: refresh the locks held, drop those lost."""
        self.last_heartbeat = now()
        held = sorted(self._acquired_locks)
        script = self.connection.register_script(ACQUIRE_OR_REFRESH_LOCK_SCRIPT)
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, "last_heartbeat", utcformat(self.last_heartbeat))
            pipe.expire(self.key, int(self.interval) + 60)
            for name in held:
                script(keys=[self.get_locking_key(name)], args=[self.name, self.lock_ttl], client=pipe)
            outcomes = pipe.execute()[2:]
        lost = {name for name, outcome in zip(held, outcomes, strict=True) if outcome == 0}
        if lost:
            log.warning("scheduler %s lost the lock of %s to another scheduler", self.name, ", ".join(sorted(lost)))
            self._acquired_locks -= lost
            self._scheduled_job_registries = []

    def request_stop(self, signum: object = None, frame: object = None) -> None:
        super().request_stop(signum, frame)
        self._wake.set()

    def work(self) -> None:
        self.register_birth()
        try:
            while not self._stop_requested:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
                self._wake.wait(self.interval)
        except BaseException as exc:
            if not caused_by_redis_outage(exc):  # (with Redis away, releasing would only time out)
                self._release_quietly()
            raise
        self._release_quietly()

    def _release_quietly(self) -> None:
        try:
            self.stop()  # release the locks: another scheduler takes over at once
        except redis.RedisError:
            pass  # the lock expires by itself within lock_ttl


# -- periodic tasks -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Periodic:
    name: str
    every: float
    task: Callable[[Flask], object]
    lease: bool = True
    required: bool = False


def register_periodic(
    app: Flask,
    name: str,
    every: float,
    task: Callable[[Flask], object],
    lease: bool = True,
    *,
    required: bool = False,
) -> Periodic:
    """Run ``task(app)`` in the app context every ``every`` seconds, supervised, beside
    the worker: ``start_in_thread`` (`guichet serve`, `guichet worker`) starts it, and
    one registered while they run starts at once.

    With ``lease`` (SET NX PX of 0.9 × ``every``), one process among all those running
    it does each round; without, every process does every round. A round that raises is
    logged and the loop restarted after the supervisor's backoff (at once when Redis
    comes back). ``required``: /readyz answers 503 while it is down. Registering a name
    again replaces the task of that name."""
    if every <= 0:
        raise ValueError(f"periodic task {name!r}: every must be > 0 seconds")
    periodic = Periodic(name, float(every), task, lease, required)
    app.extensions.setdefault(PERIODIC, {})[name] = periodic
    background = running(app)
    if background is not None:
        background.add(_periodic_loop(app, periodic))
    return periodic


def _periodic_loop(app: Flask, periodic: Periodic) -> Supervised:
    lease_key = keys.background_lease(periodic.name)
    lease_ms = max(1, int(periodic.every * 900))  # expires before the next round is due

    def rounds(stopping: threading.Event) -> None:
        while not stopping.is_set():
            began = time.monotonic()
            if not periodic.lease or get_store(app).data.set(lease_key, secrets.token_hex(4), nx=True, px=lease_ms):
                with app.app_context():
                    periodic.task(app)
            # The next round comes early when an outage ends meanwhile: what it missed
            # (a payment callback refused while Redis was away) is caught up at once.
            while not stopping.wait(min(RECOVERY_CHECK, periodic.every)):
                if time.monotonic() - began >= periodic.every or last_recovery(app) > began:
                    break

    return Supervised(app, periodic.name, rounds, required=periodic.required)


# -- abandoned jobs -------------------------------------------------------------------------------
def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # containers may share a hostname, never this
    except OSError:
        return ""


HOST = socket.gethostname()
PID_NAMESPACE = _pid_namespace()


def alive_key(worker_name: str) -> str:
    return f"{SimpleWorker.redis_worker_namespace_prefix}{worker_name}:alive"


def mark_alive(connection: redis.Redis, worker_name: str) -> None:
    connection.set(alive_key(worker_name), f"{HOST}|{PID_NAMESPACE}|{os.getpid()}", ex=ALIVE_TTL)


def _pid_runs(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # A zombie (killed, not reaped yet: its parent died too) runs no more.
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_gone(alive: str | None) -> bool:
    """Whether the worker whose alive key holds ``alive`` is gone (it is not one of this
    process's live workers: those the reclaimer asks directly)."""
    if alive is None:
        return True  # never marked alive, or not refreshed for ALIVE_TTL
    host, namespace, pid = (alive.rsplit("|", 2) + ["", ""])[:3]
    if host != HOST or not namespace or namespace != PID_NAMESPACE or not pid.isdigit():
        return False  # another machine: only the key's expiry tells
    if int(pid) == os.getpid():
        return True  # one of this process's workers that is no longer live
    return not _pid_runs(int(pid))  # a process of this machine that died (SIGKILL, OOM)


class Reclaimer:
    """Requeues jobs whose worker died while running them (see the module docstring).

    A job of a worker that is gone is requeued at once. One that a live worker of this
    process shows no execution of is requeued once that has lasted ``grace``: a worker
    records its execution a moment before it shows it as its own, and clears it a moment
    after. A job in rq's intermediate list but not started (its worker took it from the
    queue, then died, or lost Redis before it could start it and went on without it)
    goes back once it has been seen there for ``intermediate_grace``: a live worker
    spends a millisecond there, and all the observations of a round that failed on Redis
    are forgotten, so a worker held there by a frozen Redis is not mistaken for a dead
    one. Workers that are not Guichet's (a plain `rq worker`) keep no alive key: their
    jobs are left to rq's own expiry.
    """

    def __init__(self, connection: redis.Redis, grace: float = RECLAIM_GRACE,
                 intermediate_grace: float = TAKEN_GRACE) -> None:
        self.connection = connection
        self.grace = grace
        self.intermediate_grace = intermediate_grace
        self.suspects: dict[str, float] = {}

    def round(self, now: float | None = None) -> list[str]:
        """One look; returns the ids of the jobs requeued."""
        now = time.time() if now is None else now
        local = live_executions()
        seen: dict[str, float] = {}
        requeued: list[str] = []
        for name in QUEUES:
            jobs_queue = Queue(name, connection=self.connection)
            registry = jobs_queue.started_job_registry
            started: set[str] = set()
            # withscores=True: (member, score) pairs, which redis-py's one type for every
            # form of ZRANGE's reply cannot say.
            scored = cast(list[tuple[bytes | str, float]], self.connection.zrange(registry.key, 0, -1, withscores=True))
            for raw, score in scored:
                composite = as_text(raw)
                started.add(parse_composite_key(composite)[0])
                verdict = self._verdict(composite, score, now, local)
                if verdict == "live":
                    continue
                if verdict == "unseen":
                    first = seen[composite] = self.suspects.get(composite, now)
                    if now - first < self.grace:
                        continue
                if self._requeue_started(jobs_queue, registry, composite):
                    requeued.append(parse_composite_key(composite)[0])
            for raw in self.connection.lrange(jobs_queue.intermediate_queue_key, 0, -1):
                job_id = as_text(raw)
                if job_id in started:
                    continue
                first = seen["taken:" + job_id] = self.suspects.get("taken:" + job_id, now)
                if now - first >= self.intermediate_grace and self._requeue_taken(jobs_queue, job_id):
                    requeued.append(job_id)
        self.suspects = seen
        return requeued

    def _verdict(self, composite: str, score: float, now: float, local: dict[str, set[str]]) -> str:
        """live | gone | unseen (a live worker of this process does not show it)."""
        _job_id, execution_id = parse_composite_key(composite)
        worker_name = self.connection.hget(Execution.from_composite_key(composite, self.connection).key, "worker_name")
        if not worker_name:
            return "gone" if score < now else "live"  # no execution record left: rq's own expiry decides
        worker_name = as_text(worker_name)
        if worker_name in local:
            return "live" if execution_id in local[worker_name] else "unseen"
        alive = self.connection.get(alive_key(worker_name))
        if alive is None and self.connection.hexists(SimpleWorker.redis_worker_namespace_prefix + worker_name,
                                                      "birth") and not self.connection.hexists(
                SimpleWorker.redis_worker_namespace_prefix + worker_name, GUICHET_MARK):
            return "gone" if score < now else "live"  # not one of ours: rq's own expiry decides
        return "gone" if worker_gone(as_text(alive) if alive is not None else None) else "live"

    def _requeue_started(self, jobs_queue: Queue, registry: StartedJobRegistry, composite: str) -> bool:
        job_id, _execution_id = parse_composite_key(composite)
        try:
            job = Job.fetch(job_id, connection=self.connection)
        except NoSuchJobError:
            self.connection.zrem(registry.key, composite)
            return False
        with self.connection.pipeline() as pipe:
            for _ in range(5):
                try:
                    # WATCH, then one MULTI: the entry leaves the registry exactly when the
                    # job goes back on the queue, and two reclaimers cannot both requeue it.
                    pipe.watch(registry.key)
                    if pipe.zscore(registry.key, composite) is None:
                        return False
                    running = job.get_status(refresh=True) == JobStatus.STARTED
                    pipe.multi()
                    pipe.zrem(registry.key, composite)
                    if running:
                        job.started_at = job.ended_at = None
                        # What rq's own registry.requeue() does, inside our MULTI.
                        jobs_queue._enqueue_job(job, pipeline=pipe, at_front=True)
                    pipe.execute()
                except redis.WatchError:
                    continue
                if running:
                    log.warning("job %s (%s) was running in a worker that died: requeued", job_id, job.func_name)
                return running
        return False

    def _requeue_taken(self, jobs_queue: Queue, job_id: str) -> bool:
        key = jobs_queue.intermediate_queue_key
        with self.connection.pipeline() as pipe:
            for _ in range(5):
                try:
                    pipe.watch(key)
                    if job_id not in {as_text(raw) for raw in pipe.lrange(key, 0, -1)}:
                        return False
                    pipe.multi()
                    pipe.lrem(key, 1, job_id)
                    pipe.lpush(jobs_queue.key, job_id)
                    pipe.execute()
                except redis.WatchError:
                    continue
                log.warning("job %s was taken by a worker that died before starting it: requeued", job_id)
                return True
        return False


def reclaim_abandoned(connection: redis.Redis) -> list[str]:
    """Requeue now the jobs of dead workers (`guichet worker --burst` does it first)."""
    return Reclaimer(connection, grace=0, intermediate_grace=0).round()


# -- supervision ------------------------------------------------------------------------------------
class Supervised:
    """One background loop in a thread of its own, restarted whenever it dies.

    ``run(stopping)`` is the loop: it returns once ``stopping`` is set; returning before
    that, or raising, is a death. ``on_stop`` wakes a loop blocked elsewhere (the rq
    worker waiting for a job).
    """

    def __init__(self, app: Flask, name: str, run: Callable[[threading.Event], None], *, required: bool,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.app = app
        self.name = name
        self.run = run
        self.required = required
        self.on_stop = on_stop
        self.stopping = threading.Event()
        self.state = "starting"  # up | down | stopped
        self.detail = ""
        self.deaths = 0
        self.thread = threading.Thread(target=self._supervise, name=f"guichet-{name}", daemon=True)

    @property
    def down(self) -> bool:
        return self.state == "down" or (self.state != "stopped" and not self.thread.is_alive())

    def _supervise(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.state, self.detail = "up", ""
            error: BaseException | None = None
            try:
                self.run(self.stopping)
            except BaseException as exc:  # noqa: BLE001 (whatever ends the loop is its death)
                error = exc
            if self.stopping.is_set():
                break
            ran = time.monotonic() - started
            self.deaths += 1
            self.state = "down"
            failures = 0 if ran >= HEALTHY_AFTER else failures
            reason = f"{type(error).__name__}: {error}" if error is not None else "it returned"
            outage = error is not None and caused_by_redis_outage(error)
            log.error("background %s died after %.1f s: %s", self.name, ran, reason,
                      exc_info=None if outage or error is None else error)  # an outage needs no traceback
            if not get_store(self.app).ping():
                # It can do nothing without Redis: restart it as soon as Redis answers,
                # not at the end of a backoff that grew during the outage.
                self.detail = "waiting for Redis"
                log.warning("background %s waits for Redis to answer", self.name)
                while not self.stopping.is_set() and not get_store(self.app).ping():
                    self.stopping.wait(REDIS_WAIT)
                if not self.stopping.is_set():
                    note_recovery(self.app)
            elif outage:
                note_recovery(self.app)  # the outage it died of is over already
            else:
                failures += 1
                # An outage that is over already (Redis answers now) costs a short wait at
                # most: a backoff grown by earlier outages must not delay the recovery.
                delay = min(OUTAGE_RESTART_MAX if outage else RESTART_MAX, RESTART_FIRST * 2 ** (failures - 1))
                self.detail = f"restarting in {delay:g} s"
                self.stopping.wait(delay)
            if not self.stopping.is_set():
                log.warning("background %s restarted (death %d)", self.name, self.deaths)
        self.state = "stopped"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.on_stop is not None:
            try:
                self.on_stop()
            except Exception:  # Redis away: the loop ends at its next timeout anyway
                log.debug("waking %s to stop failed", self.name, exc_info=True)

    def describe(self) -> str:
        state = "down" if self.down else self.state
        return f"{self.name} {state}" + (f" ({self.detail})" if state == "down" and self.detail else "")


@dataclass
class Background:
    """The supervised loops running beside the web server (or in `guichet worker`)."""

    app: Flask
    loops: dict[str, Supervised] = field(default_factory=dict)
    workers: dict[str, AppWorker] = field(default_factory=dict)  # the rq workers running now, by name

    def add(self, loop: Supervised) -> Supervised:
        replaced = self.loops.get(loop.name)
        if replaced is not None:
            replaced.stop()
        self.loops[loop.name] = loop
        loop.start()
        return loop

    def is_alive(self) -> bool:
        return bool(self.loops) and all(loop.thread.is_alive() for loop in self.loops.values())

    def down(self, required_only: bool = True) -> list[Supervised]:
        return [loop for loop in self.loops.values() if loop.down and (loop.required or not required_only)]

    def stop(self, timeout: float = 10) -> None:
        if self.app.extensions.get(BACKGROUND) is self:
            del self.app.extensions[BACKGROUND]
        loops = list(self.loops.values())
        for loop in loops:
            loop.stop()
        deadline = time.monotonic() + timeout
        for loop in loops:
            if loop.thread.ident is not None:  # started
                loop.thread.join(max(0.0, deadline - time.monotonic()))


def _wake_up() -> None:
    """A job that does nothing: it ends a worker's blocking wait for work."""


def note_recovery(app: Flask) -> None:
    """Redis answers again after an outage (or this process just started): what waited
    for it goes now. Jobs that failed only because Redis was away run at once, and the
    periodic tasks do their next round early (the payment poller then asks about every
    pending payment, whose callback may have been refused meanwhile)."""
    app.extensions[RECOVERED] = time.monotonic()
    try:
        promoted = promote_outage_retries(get_store(app).jobs)
    except redis.RedisError:
        return  # away again: the next recovery does it
    if promoted:
        log.warning("Redis answers again: %d job(s) that failed during the outage run now", len(promoted))


def last_recovery(app: Flask) -> float:
    """time.monotonic() of this process's last start of the background loops or outage end."""
    return float(app.extensions.get(RECOVERED, 0.0))


def promote_outage_retries(connection: redis.Redis) -> list[str]:
    """Enqueue now the jobs whose retry after a Redis outage is booked for later; their
    ids. A retry due within a second is left to the scheduler, which may be taking it."""
    promoted: list[str] = []
    for raw in connection.smembers(keys.outage_retries()):
        job_id = as_text(raw)
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:
            connection.srem(keys.outage_retries(), job_id)
            continue
        booked = ScheduledJobRegistry(job.origin, connection=connection)
        at = connection.zscore(booked.key, job_id)
        if at is not None and at <= time.time() + 1:
            continue
        # ZREM decides: a job the scheduler moved meanwhile is not enqueued twice.
        if at is not None and connection.zrem(booked.key, job_id):
            Queue(job.origin, connection=connection).enqueue_job(job)
            promoted.append(job_id)
        connection.srem(keys.outage_retries(), job_id)
    return promoted


def running(app: Flask) -> Background | None:
    """The background loops running in this process for ``app``, if any."""
    return app.extensions.get(BACKGROUND)


def start_in_thread(
    app: Flask, job_workers: int = 1, *, bulk_workers: int | None = None, queues: Iterable[str] = QUEUES
) -> Background:
    """Run ``job_workers`` rq workers on the receipts queue and ``bulk_workers`` (default
    GUICHET_BULK_WORKERS, 1) on the bulk queue, one scheduler, the reclaimer and every
    registered periodic task beside the web server, in this process, each in a supervised
    thread. ``queues``: only the workers of these queues (the scheduler, the reclaimer and
    the recovery after an outage still cover every queue).

    Several workers: a job that waits on the network (an SMS provider, a payment
    provider's callback or status call) must not hold up every other job of the process.
    Workers of their own for bulk work: a receipt never waits behind a campaign."""
    if running(app) is not None:
        raise RuntimeError("the background loops already run for this app")
    queues = tuple(queues)
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise ValueError(f"no such queue: {', '.join(sorted(unknown))} (queues: {', '.join(QUEUES)})")
    counts = {QUEUE_NAME: max(1, job_workers), BULK_QUEUE_NAME: (
        configured_bulk_workers(app) if bulk_workers is None else max(0, bulk_workers))}
    counts = {name: (count if name in queues else 0) for name, count in counts.items()}
    background = app.extensions[BACKGROUND] = Background(app)
    app.extensions[RECOVERED] = time.monotonic()  # a start: whatever happened while down is caught up

    def work_loop(loop_name: str, queue_name: str) -> tuple[Callable[[threading.Event], None], Callable[[], None]]:
        mine: dict[str, AppWorker] = {}

        def work(stopping: threading.Event) -> None:
            rq_worker = mine["now"] = make_worker(app, in_thread=True, queue_name=queue_name)
            background.workers[rq_worker.name] = rq_worker
            try:
                if not stopping.is_set():
                    rq_worker.work()
            finally:
                background.workers.pop(rq_worker.name, None)
                mine.pop("now", None)
            if not stopping.is_set():
                raise RuntimeError(f"the rq worker of {loop_name} quit (see the error it logged)")

        def wake() -> None:
            rq_worker = mine.get("now")
            if rq_worker is not None:
                rq_worker._stop_requested = True  # rq's own flag, checked between jobs...
                # ...so end its wait (or another's: then within a dequeue timeout)
                queue(app, queue_name).enqueue(_wake_up)

        return work, wake

    # One name across restarts: a restarted scheduler refreshes the lock it held.
    scheduler_name = f"{HOST}.{os.getpid()}.{secrets.token_hex(3)}"
    schedulers: list[ThreadScheduler] = []

    def schedule(stopping: threading.Event) -> None:
        scheduler = ThreadScheduler(QUEUES, connection=get_store(app).jobs, name=scheduler_name)
        schedulers[:] = [scheduler]
        if not stopping.is_set():
            scheduler.work()

    def stop_scheduler() -> None:
        for scheduler in schedulers:
            scheduler.request_stop()

    reclaimer = Reclaimer(get_store(app).jobs)

    def reclaim(stopping: threading.Event) -> None:
        while not stopping.is_set():
            for name in list(background.workers):
                mark_alive(get_store(app).jobs, name)
            try:
                reclaimer.round()
            except redis.RedisError:
                reclaimer.suspects = {}  # seen before an outage proves nothing after it
                raise
            except Exception:  # a bug in a round must not stop the alive keys
                log.exception("looking for abandoned jobs failed")
            stopping.wait(RECLAIM_EVERY)

    for queue_name, count in counts.items():
        for number in range(1, count + 1):
            name = WORKER_LOOPS[queue_name] + ("" if number == 1 else f"-{number}")
            work, wake = work_loop(name, queue_name)
            background.add(Supervised(app, name, work, required=True, on_stop=wake))
    background.add(Supervised(app, "scheduler", schedule, required=True, on_stop=stop_scheduler))
    background.add(Supervised(app, "reclaimer", reclaim, required=False))
    periodic = app.extensions.get(PERIODIC, {})
    for task in periodic.values():
        background.add(_periodic_loop(app, task))
    log.info("background worker and scheduler running in-process, supervised: workers %s; scheduler on %s; "
             "periodic tasks: %s", ", ".join(f"{count} on {name}" for name, count in counts.items()),
             ", ".join(QUEUES), ", ".join(periodic) or "none")
    if not any(counts.values()):
        log.warning("no job worker runs here (only %s asked for, and GUICHET_BULK_WORKERS is 0): "
                    "its jobs wait for a worker elsewhere", BULK_QUEUE_NAME)
    return background


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs waiting now, then exit.")
@click.option("--queue", "queue_names", multiple=True, type=click.Choice(QUEUES),
              help="Run the workers of this queue only (repeat for several; default: every queue), e.g. "
                   f"--queue {BULK_QUEUE_NAME} for bulk workers on a machine of their own.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve this process's metrics (the jobs it ran: SMS, orders, outside calls) in Prometheus' "
                   "format on this port, for a worker on a machine of its own (GET /metrics of the web "
                   "processes counts only theirs and their machine's).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@with_appcontext
def worker_command(burst: bool, queue_names: tuple[str, ...], metrics_port: int | None, metrics_host: str) -> None:
    """Run the background workers (receipts, SMS outbox, retries; bulk work on a worker of
    its own), their scheduler and the periodic tasks against REDIS_URL, until SIGTERM or Ctrl-C."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
        log.info("metrics of this worker on http://%s:%d/metrics", metrics_host, metrics_port)
    if get_store(app).embedded:
        raise click.UsageError(
            "REDIS_URL is not set: the embedded store lives inside `guichet serve`, "
            "which already runs its worker. Set REDIS_URL to run a separate worker."
        )
    run_startup_checks(app)
    chosen = [name for name in QUEUES if name in queue_names] if queue_names else list(QUEUES)
    if burst:
        reclaim_abandoned(get_store(app).jobs)
        for name in chosen:  # the receipts' first
            make_worker(app, queue_name=name).work(burst=True, with_scheduler=True)
        return
    # The same supervised threads as `guichet serve`; the main thread waits for a signal.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    background = start_in_thread(app, queues=chosen)
    while not stop.wait(1.0):
        pass
    log.info("stopping the background worker")
    background.stop()


def add_startup_check(app: Flask, check: Callable[[Flask], None]) -> None:
    """``check(app)`` runs before `guichet serve` or `guichet worker` starts; it raises
    click.ClickException to refuse (a configuration that would fail silently)."""
    app.extensions.setdefault(STARTUP_CHECKS, []).append(check)


def run_startup_checks(app: Flask) -> None:
    for check in app.extensions.get(STARTUP_CHECKS, []):
        check(app)


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
