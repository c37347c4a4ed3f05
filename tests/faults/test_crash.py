"""A worker process SIGKILLed: what it held (the scheduler's lock, a job it was running)
is taken over within seconds by the next one, not minutes."""
from __future__ import annotations

import datetime
import signal
import time

from rq.scheduler import RQScheduler

from state import worker
from state.store import get_redis
from tests.faults.conftest import app_on, guichet_worker, wait_for
from tests.faults.jobs import remember, slow_the_first_time


def stop(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(15)


def test_after_a_crash_delayed_jobs_run_within_seconds(redis_server, tmp_path):
    app = app_on(redis_server)
    lock = RQScheduler.get_locking_key(worker.QUEUE_NAME)
    doomed = guichet_worker(redis_server, tmp_path / "doomed.log")
    try:
        wait_for(lambda: get_redis(app).exists(lock), 15)  # its scheduler holds the lock
    finally:
        doomed.kill()
        doomed.wait(10)
    worker.queue(app).enqueue_in(datetime.timedelta(seconds=1), remember, "crash:delayed")
    successor = guichet_worker(redis_server, tmp_path / "successor.log")
    started = time.monotonic()
    try:
        # rq's own lock outlives its holder by 61 s, and is tried again every 120 s.
        wait_for(lambda: get_redis(app).get("crash:delayed") == "done", 15)
        assert time.monotonic() - started < 10
    finally:
        stop(successor)


def test_a_job_running_in_a_killed_worker_runs_again_at_once(redis_server, tmp_path):
    app = app_on(redis_server)
    doomed = guichet_worker(redis_server, tmp_path / "doomed.log")
    try:
        worker.queue(app).enqueue(slow_the_first_time, "crash:runs", job_timeout=120)
        wait_for(lambda: get_redis(app).get("crash:runs") == "1", 15)  # running, and hanging
    finally:
        doomed.kill()
        doomed.wait(10)
    successor = guichet_worker(redis_server, tmp_path / "successor.log")
    started = time.monotonic()
    try:
        # rq would leave it "started" until its execution expired (the job's timeout + 60 s).
        wait_for(lambda: get_redis(app).get("crash:runs:done") == "2", 15)
        assert time.monotonic() - started < 10
    finally:
        stop(successor)
    assert "running in a worker that died: requeued" in (tmp_path / "successor.log").read_text()
