"""A Redis restart with background work in flight: every loop comes back by itself."""
from __future__ import annotations

import datetime
import logging
import signal
import time

from state import worker
from state.store import get_redis
from tests.faults.conftest import app_on, guichet_worker, wait_for
from tests.faults.jobs import remember


def test_a_redis_restart_stops_no_background_work_for_good(redis_server, caplog):
    caplog.set_level(logging.INFO, logger="state.worker")
    app = app_on(redis_server, REDIS_TIMEOUT=0.5)
    client = app.test_client()
    background = worker.start_in_thread(app)
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200, 5)
        # Delayed, due while Redis is down: only a scheduler that came back can run it.
        worker.queue(app).enqueue_in(datetime.timedelta(seconds=1.5), remember, "outage:delayed")
        redis_server.shutdown()
        response = client.get("/readyz")
        assert response.status_code == 503 and b"redis" in response.data
        time.sleep(2)  # the scheduler's next loops fail: it dies
        back = redis_server.start()
        waited = wait_for(lambda: get_redis(app).get("outage:delayed") == "done", 10)
        assert time.time() - back < 8, f"the delayed job ran {waited:.1f} s after Redis came back"
        worker.queue(app).enqueue(remember, "outage:now")  # and the worker took work again
        wait_for(lambda: get_redis(app).get("outage:now") == "done", 5)
        assert not background.down(required_only=False)
        assert client.get("/readyz").status_code == 200
    finally:
        background.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("background scheduler died after") for m in messages)
    assert any(m.startswith("background scheduler restarted") for m in messages)


def test_the_worker_command_recovers_from_a_redis_restart_and_stops_on_sigterm(redis_server, tmp_path):
    app = app_on(redis_server)
    process = guichet_worker(redis_server, tmp_path / "worker.log")
    try:
        worker.queue(app).enqueue(remember, "command:first")
        wait_for(lambda: get_redis(app).get("command:first") == "done", 15)
        redis_server.shutdown()
        time.sleep(1.5)
        redis_server.start()
        # Its scheduler runs in a thread of its own now (no forked process), supervised.
        worker.queue(app).enqueue_in(datetime.timedelta(seconds=1), remember, "command:delayed")
        wait_for(lambda: get_redis(app).get("command:delayed") == "done", 10)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(15)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
