"""Background jobs: one rq queue on Guichet's Redis, and the worker that runs it.

`guichet serve` runs the worker in a thread of the web process (the only way to share
the embedded store); `guichet worker` runs it on its own against REDIS_URL. Jobs run
inside the Flask app context, so they reach the same configuration and services as
the web requests that queued them.
"""
from __future__ import annotations

import logging
import threading

import click
from flask import Flask, current_app
from rq import Queue, SimpleWorker
from rq.job import Job
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


def start_in_thread(app: Flask) -> threading.Thread:
    """Run the worker beside the web server, in this process."""
    worker = make_worker(app, in_thread=True)
    thread = threading.Thread(target=worker.work, kwargs={"with_scheduler": True}, name="guichet-worker", daemon=True)
    thread.start()
    log.info("background worker running in-process on queue %r", QUEUE_NAME)
    return thread


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs waiting now, then exit.")
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
