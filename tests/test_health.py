import logging
import threading
import time

import fakeredis

from app import create_app
from state import worker


def test_healthz_answers_while_serving(client):
    assert client.get("/healthz").status_code == 200


def test_readyz_follows_redis():
    server = fakeredis.FakeServer()
    app = create_app({"TESTING": True, "REDIS_CLIENT": fakeredis.FakeRedis(server=server, decode_responses=True)})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    server.connected = False
    response = client.get("/readyz")
    assert response.status_code == 503
    assert b"redis" in response.data


def wait_for_status(client, path: str, status: int, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(path)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"{path} never answered {status}: {response.data!r}"
        time.sleep(0.01)


def test_readyz_names_a_required_loop_while_it_is_down_and_it_comes_back(app, client, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="state.worker")
    broken = threading.Event()
    broken.set()
    enqueue = worker.ThreadScheduler.enqueue_scheduled_jobs

    def buggy(self):
        if broken.is_set():
            raise RuntimeError("a bug in the scheduler")
        return enqueue(self)

    monkeypatch.setattr(worker.ThreadScheduler, "enqueue_scheduled_jobs", buggy)
    background = worker.start_in_thread(app)
    try:
        response = wait_for_status(client, "/readyz", 503)
        # "(restarting in N s)" follows once the supervisor has booked the restart.
        assert response.get_data(as_text=True).startswith("background down: scheduler down")
        assert client.get("/healthz").status_code == 200  # restarting it is the supervisor's job
        broken.clear()
        wait_for_status(client, "/readyz", 200)
    finally:
        background.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("background scheduler died after" in m and "a bug in the scheduler" in m for m in messages)
    assert any(m.startswith("background scheduler restarted") for m in messages)


def test_readyz_stays_ready_when_an_optional_loop_is_down(app, client):
    worker.register_periodic(app, "flaky", 60, lambda _app: 1 / 0, lease=False)
    background = worker.start_in_thread(app)
    try:
        response = wait_for_status(client, "/readyz", 200)
        deadline = time.monotonic() + 5
        while "degraded" not in response.get_data(as_text=True) and time.monotonic() < deadline:
            response = client.get("/readyz")
        assert response.status_code == 200 and "degraded: flaky down" in response.get_data(as_text=True)
    finally:
        background.stop()


def test_healthz_fails_when_a_supervisor_itself_is_gone(app, client):
    background = worker.start_in_thread(app)
    try:
        background.loops["ghost"] = worker.Supervised(app, "ghost", lambda stopping: None, required=False)
        response = client.get("/healthz")  # never started: nothing watches what it should
        assert response.status_code == 503 and b"ghost" in response.data
    finally:
        background.stop()
