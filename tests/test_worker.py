"""The background worker runs queued jobs inside the app, on the same Redis as the web."""
from __future__ import annotations

import time

from flask import current_app

from state import worker
from state.store import get_redis


def remember(value: str) -> str:
    """A job that needs the app context: it writes through the app's own client."""
    get_redis().set("guichet:{test}:job", f"{value}/{current_app.config['UTILITY_NAME']}")
    return value


def test_a_queued_job_runs_in_the_app_context(app):
    job = worker.queue(app).enqueue(remember, "hello")
    worker.make_worker(app).work(burst=True)
    assert job.get_status() == "finished"
    assert get_redis(app).get("guichet:{test}:job") == "hello/Guichet"


def test_the_in_process_worker_thread_picks_up_jobs(app):
    background = worker.start_in_thread(app)
    try:
        worker.queue(app).enqueue(remember, "from-thread")
        deadline = time.monotonic() + 10
        while get_redis(app).get("guichet:{test}:job") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_redis(app).get("guichet:{test}:job") == "from-thread/Guichet"
        assert background.is_alive()
    finally:
        background.stop()
    assert not background.is_alive()


def test_worker_command_refuses_the_embedded_store(monkeypatch):
    from app import create_app

    monkeypatch.delenv("REDIS_URL", raising=False)
    result = create_app({"TESTING": True}).test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.output


def test_delayed_jobs_run_through_the_in_process_scheduler(app):
    import datetime

    background = worker.start_in_thread(app)
    try:
        worker.queue(app).enqueue_in(datetime.timedelta(seconds=1), remember, "later")
        deadline = time.monotonic() + 15
        while get_redis(app).get("guichet:{test}:job") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get_redis(app).get("guichet:{test}:job") == "later/Guichet"
    finally:
        background.stop()
