"""SMS fixtures: stand-in providers, an app that sends through them, and job helpers.

tests/sms/conftest.py loads these; other test folders can too, with
``pytest_plugins = ["tests.sms.fixtures"]`` in the top-level tests/conftest.py, to
capture every SMS an end-to-end flow sends (``africastalking_standin.received``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from flask import Flask
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app import create_app
from sms import outbox, views
from state import worker
from tests.sms.standin_africastalking import AfricasTalkingStandin
from tests.sms.standin_twilio import TwilioStandin


@pytest.fixture
def africastalking_standin() -> Iterator[AfricasTalkingStandin]:
    standin = AfricasTalkingStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def twilio_standin() -> Iterator[TwilioStandin]:
    standin = TwilioStandin().start()
    yield standin
    standin.stop()


def africastalking_config(standin: AfricasTalkingStandin) -> dict[str, object]:
    return {
        "SMS_PROVIDER": "africastalking",
        "AFRICASTALKING_USERNAME": standin.username,
        "AFRICASTALKING_API_KEY": standin.api_key,
        "AFRICASTALKING_SENDER_ID": "GUICHET",
        "AFRICASTALKING_API_URL": standin.url,
        "SMS_TIMEOUT": 5.0,
    }


def twilio_config(standin: TwilioStandin) -> dict[str, object]:
    return {
        "SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": standin.account_sid,
        "TWILIO_AUTH_TOKEN": standin.auth_token,
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_URL": standin.url,
        "SMS_TIMEOUT": 5.0,
    }


def sms_app_for(redis_client: redis.Redis, **config: object) -> Flask:
    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client, **config})
    views.init_app(app)  # idempotent, and needed until app.py calls it
    return app


@pytest.fixture
def sms_app(redis_client: redis.Redis, africastalking_standin: AfricasTalkingStandin) -> Flask:
    """An app whose SMS go to the Africa's Talking stand-in, with no send-rate limit."""
    return sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0)


@dataclass
class Clock:
    """outbox.clock, moved by hand."""

    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(outbox, "clock", fixed)
    return fixed


def run_jobs(app: Flask) -> None:
    """Run every job waiting in the queue now (and those they queue), then return."""
    worker.make_worker(app).work(burst=True)


def scheduled(app: Flask, include_sweeps: bool = False) -> list[Job]:
    """The jobs booked for later (enqueue_in/enqueue_at) on every queue, soonest first."""
    booked: list[tuple[float, Job]] = []
    for name in worker.QUEUES:
        queue = worker.queue(app, name)
        registry = ScheduledJobRegistry(queue=queue)
        for job_id, at in queue.connection.zrange(registry.key, 0, -1, withscores=True):
            job = queue.fetch_job(job_id.decode() if isinstance(job_id, bytes) else job_id)
            if job is not None:
                booked.append((at, job))
    jobs = [job for _at, job in sorted(booked, key=lambda pair: pair[0])]
    return [job for job in jobs if include_sweeps or not job.id.startswith("guichet-sms-sweep-")]


def run_scheduled(app: Flask, include_sweeps: bool = False) -> int:
    """Run the jobs booked for later as if their time had come; how many there were."""
    jobs = scheduled(app, include_sweeps)
    for job in jobs:
        queue = worker.queue(app, job.origin)
        ScheduledJobRegistry(queue=queue).remove(job)
        queue.enqueue_job(job)
    run_jobs(app)
    return len(jobs)
