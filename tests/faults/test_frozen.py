"""A frozen Redis (SIGSTOP: it accepts connections and never answers) must cost a hop
and a probe a bounded time, well inside the gateway's ~15 s; the worker, which blocks
on purpose while it waits for a job, must not take its own wait for a frozen Redis."""
from __future__ import annotations

import logging
import time

import redis

from state import worker
from state.store import Store, get_redis, get_store
from tests.faults.conftest import app_on, wait_for
from tests.faults.jobs import remember

HOP = {"sessionId": "frozen-1", "serviceCode": "*384#", "phoneNumber": "+237699000001", "networkCode": "62401",
       "text": ""}


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_hop_and_readyz_answer_within_seconds_while_redis_is_frozen(redis_server):
    app = app_on(redis_server)  # the default timeouts: 2 s a command, 1 s to connect
    client = app.test_client()
    assert client.post("/ussd/africastalking", data=HOP).get_data(as_text=True).startswith("CON ")
    redis_server.pause()
    try:
        answer, took = timed(lambda: client.post("/ussd/africastalking", data={**HOP, "sessionId": "frozen-2"}))
        assert answer.status_code == 200 and answer.get_data(as_text=True).startswith("END "), answer.data
        assert took < 3.5, f"the hop took {took:.1f} s"
        probe, took = timed(lambda: client.get("/readyz"))
        assert probe.status_code == 503 and took < 3, f"/readyz: {probe.status_code} after {took:.1f} s"
    finally:
        redis_server.resume()
    assert client.post("/ussd/africastalking", data={**HOP, "sessionId": "frozen-3"}).data.startswith(b"CON ")
    assert client.get("/readyz").status_code == 200


def test_every_client_is_bounded_and_retries_a_broken_connection_once_only(redis_server):
    app = app_on(redis_server, REDIS_TIMEOUT=1.5, REDIS_CONNECT_TIMEOUT=0.5)
    store = get_store(app)
    for client in (store.data, store.jobs):
        settings = client.connection_pool.connection_kwargs
        assert (settings["socket_timeout"], settings["socket_connect_timeout"]) == (1.5, 0.5)
        retry = settings["retry"]
        assert retry.get_retries() == 1 and redis.TimeoutError not in retry._supported_errors
    # The worker blocks for its dequeue timeout on a connection of its own that outlasts it...
    rq_worker = worker.make_worker(app)
    assert rq_worker.connection.connection_pool.connection_kwargs["socket_timeout"] > rq_worker.dequeue_timeout
    # ...and rq's raising of that timeout never reaches the web's clients.
    assert store.jobs.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    assert Store.from_url(redis_server.url).data.connection_pool.connection_kwargs["socket_timeout"] == 2.0


def test_a_worker_idle_longer_than_the_socket_timeout_is_alive_and_takes_a_job(redis_server, caplog):
    caplog.set_level(logging.INFO)
    app = app_on(redis_server, REDIS_TIMEOUT=0.3, WORKER_DEQUEUE_TIMEOUT=1)
    background = worker.start_in_thread(app)
    try:
        time.sleep(2.5)  # two blocking waits for a job, each longer than the socket timeout
        worker.queue(app).enqueue(remember, "idle:job")
        wait_for(lambda: get_redis(app).get("idle:job") == "done", 3)
        assert background.loops["worker"].deaths == 0
    finally:
        background.stop()
    complaints = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in complaints if "Redis" in m or "died" in m or "Timeout" in m], complaints
