"""The bulk queue under faults, as the receipts queue: a bulk worker SIGKILLed mid-job has its
job run again within seconds, and a Redis restart stops neither queue's work for good."""
from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from state import worker
from state.store import get_redis
from tests.faults.conftest import ROOT, app_on, guichet_worker, wait_for
from tests.faults.jobs import remember, slow_the_first_time

BULK = worker.BULK_QUEUE_NAME


def bulk_worker(server, log: Path) -> subprocess.Popen[bytes]:
    """`guichet worker --queue guichet-bulk` in a process of its own: bulk work on a machine of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["REDIS_URL"] = server.url
    return subprocess.Popen([sys.executable, "-c", "from app import main; main()", "worker", "--queue", BULK],
                            cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop(process) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(15)


def test_a_bulk_worker_killed_mid_job_has_its_job_run_again_at_once(redis_server, tmp_path):
    app = app_on(redis_server)
    doomed = bulk_worker(redis_server, tmp_path / "doomed.log")
    try:
        worker.queue(app, BULK).enqueue(slow_the_first_time, "bulk:runs", job_timeout=120)
        wait_for(lambda: get_redis(app).get("bulk:runs") == "1", 15)  # running, and hanging
        worker.queue(app).enqueue(remember, "bulk:receipt")  # not its queue: it never takes it
        time.sleep(0.5)
        assert get_redis(app).get("bulk:receipt") is None
    finally:
        doomed.kill()
        doomed.wait(10)
    successor = guichet_worker(redis_server, tmp_path / "successor.log")  # every queue
    started = time.monotonic()
    try:
        # rq would leave it "started" until its execution expired (the job's timeout + 60 s).
        wait_for(lambda: get_redis(app).get("bulk:runs:done") == "2", 15)
        assert time.monotonic() - started < 10
        wait_for(lambda: get_redis(app).get("bulk:receipt") == "done", 5)
    finally:
        assert stop(successor) == 0
    assert "running in a worker that died: requeued" in (tmp_path / "successor.log").read_text()


def test_a_redis_restart_stops_neither_queue_s_work_for_good(redis_server):
    app = app_on(redis_server, REDIS_TIMEOUT=0.5)
    client = app.test_client()
    background = worker.start_in_thread(app)
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, 5)
        assert {"worker", "bulk-worker"} <= set(background.loops)
        # Delayed, due while Redis is down: only a scheduler that came back can run them.
        worker.queue(app, BULK).enqueue_in(datetime.timedelta(seconds=1.5), remember, "outage:bulk-delayed")
        worker.queue(app).enqueue_in(datetime.timedelta(seconds=1.5), remember, "outage:receipt-delayed")
        redis_server.shutdown()
        time.sleep(2)
        back = redis_server.start()
        wait_for(lambda: get_redis(app).get("outage:bulk-delayed") == "done", 10)
        wait_for(lambda: get_redis(app).get("outage:receipt-delayed") == "done", 5)
        assert time.time() - back < 8
        # ...and both workers take work again, each from its own queue.
        worker.queue(app, BULK).enqueue(remember, "outage:bulk-now")
        worker.queue(app).enqueue(remember, "outage:receipt-now")
        wait_for(lambda: get_redis(app).get("outage:bulk-now") == "done", 5)
        wait_for(lambda: get_redis(app).get("outage:receipt-now") == "done", 5)
        # Every loop is back: each notices Redis within REDIS_WAIT of its own next ping, and one
        # that died late in the outage (the reclaimer, on its own period) may still be pinging.
        wait_for(lambda: not background.down(required_only=False), 5)
        assert client.get("/readyz").status_code == 200
    finally:
        background.stop()


def write_after(key: str, seconds: float) -> None:
    """A bulk job that reaches Redis again after ``seconds``: while it sleeps, Redis goes away."""
    if int(get_redis().incr(key + ":runs")) == 1:
        time.sleep(seconds)
    get_redis().set(key, "done")


def test_a_bulk_job_cut_off_by_a_redis_restart_runs_again_once_redis_answers(redis_server, caplog):
    app = app_on(redis_server, REDIS_TIMEOUT=0.5)
    background = worker.start_in_thread(app)
    try:
        worker.queue(app, BULK).enqueue(write_after, "outage:cut", 1.0)
        wait_for(lambda: get_redis(app).get("outage:cut:runs") == "1", 5)
        redis_server.shutdown()  # the job's write fails: Redis is away
        time.sleep(2)
        back = redis_server.start()
        wait_for(lambda: get_redis(app).get("outage:cut") == "done", 10)
        assert time.time() - back < 8
        assert get_redis(app).get("outage:cut:runs") == "2"
    finally:
        background.stop()
