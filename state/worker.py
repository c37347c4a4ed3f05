"""Background jobs: one rq queue on Guichet's Redis, and the worker that runs it.

`guichet serve` runs the worker in a thread of the web process (the only way to share
the embedded store); `guichet worker` runs it on its own against REDIS_URL. Jobs run
inside the Flask app context, so they reach the same configuration and services as
the web requests that queued them.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

from state.store import get_store

log = logging.getLogger(__name__)

QUEUE_NAME = "guichet"


def queue(app: Flask | None = None) -> Queue:
    return Queue(QUEUE_NAME, connection=get_store(app).jobs)


class AppWorker(SimpleWorker):
    """An rq worker that runs jobs in the app context, in-process, from any thread."""

    # SIGALRM-based job timeouts only work in the main thread; a timer works anywhere.
    death_penalty_class = TimerDeathPenalty

    def __init__(self, app: Flask, *args: object, in_thread: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.app = app
        self.in_thread = in_thread

    def _install_signal_handlers(self) -> None:
        # In a thread, signals belong to the web server that hosts us.
        if not self.in_thread:
            super()._install_signal_handlers()

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self.app.app_context():
            super().execute_job(job, queue)


def make_worker(app: Flask, in_thread: bool = False) -> AppWorker:
    store = get_store(app)
    return AppWorker(app, [queue(app)], connection=store.jobs, in_thread=in_thread)


class ThreadScheduler(RQScheduler):
    """rq's scheduler (delayed jobs, retries with backoff) in a thread.

    rq forks its scheduler into a process of its own, which cannot see the embedded
    store; in a thread it shares the store with the web requests.
    """

    def _install_signal_handlers(self) -> None:
        pass  # signals belong to the web server that hosts us


@dataclass
class Background:
    """The worker and scheduler threads running beside the web server."""

    worker: AppWorker
    scheduler: ThreadScheduler
    threads: list[threading.Thread]

    def is_alive(self) -> bool:
        return all(thread.is_alive() for thread in self.threads)

    def stop(self, timeout: float = 10) -> None:
        self.scheduler.request_stop()
        self.worker._stop_requested = True  # rq's own flag, checked between jobs...
        Queue(QUEUE_NAME, connection=self.worker.connection).enqueue(_wake_up)  # ...so wake it
        for thread in self.threads:
            thread.join(timeout)


def _wake_up() -> None:
    """A job that does nothing: it ends the worker's blocking wait for work."""


def start_in_thread(app: Flask) -> Background:
    """Run the worker and its scheduler beside the web server, in this process."""
    worker = make_worker(app, in_thread=True)
    scheduler = ThreadScheduler([QUEUE_NAME], connection=get_store(app).jobs, interval=1)
    threads = [
        threading.Thread(target=scheduler.work, name="guichet-scheduler", daemon=True),
        threading.Thread(target=worker.work, name="guichet-worker", daemon=True),
    ]
    for thread in threads:
        thread.start()
    log.info("background worker and scheduler running in-process on queue %r", QUEUE_NAME)
    return Background(worker, scheduler, threads)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs waiting now, then exit.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Run the background worker (SMS outbox, retries) against REDIS_URL."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if get_store(app).embedded:
        raise click.UsageError(
            "REDIS_URL is not set: the embedded store lives inside `guichet serve`, "
            "which already runs its worker. Set REDIS_URL to run a separate worker."
        )
    make_worker(app).work(burst=burst, with_scheduler=not burst)


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
