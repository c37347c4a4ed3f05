"""Fixtures for payments: the stand-in MTN MoMo, an app wired to it, a clock the tests
move by hand, a recorder of handed-over results, the app served on a real port (for
callbacks that travel over HTTP), and a way to run the jobs callbacks queue."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.serving import make_server

from app import create_app
from state import worker
from tests.payments.standin_momo import StandinMomo
from utility.payments import EXTENSION, RESULTS_HANDLER, views
from utility.payments.base import PaymentResult
from utility.payments.mtn_momo import MtnMomo, settings_from


def wire(app: Flask) -> Flask:
    """The payments blueprint, until create_app registers it itself."""
    if "payments" not in app.blueprints:
        views.init_app(app)
    return app


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """Stands in for the order pipeline's handler of payment results."""

    def __init__(self, fail_times: int = 0) -> None:
        self.results: list[PaymentResult] = []
        self.fail_times = fail_times
        self.calls = 0
        self.arrived = threading.Event()

    def __call__(self, result: PaymentResult) -> str:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError("the order pipeline is having a bad day")
        self.results.append(result)
        self.arrived.set()
        return "ok"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def momo() -> Iterator[StandinMomo]:
    standin = StandinMomo().start()
    yield standin
    standin.stop()


def momo_config(momo: StandinMomo, **extra: Any) -> dict[str, Any]:
    return {
        "PAYMENT_PROVIDER": "mtn_momo",
        "MTN_MOMO_BASE_URL": momo.url,
        "MTN_MOMO_SUBSCRIPTION_KEY": momo.subscription_key,
        "MTN_MOMO_API_USER": momo.api_user,
        "MTN_MOMO_API_KEY": momo.api_key,
        "MTN_MOMO_TARGET_ENVIRONMENT": "sandbox",
        "MTN_MOMO_CURRENCY": "EUR",
        "MTN_MOMO_CALLBACK_URL": "http://127.0.0.1:9/payments/mtn_momo/callback",
        "MTN_MOMO_TIMEOUT": 0.5,
        **extra,
    }


@pytest.fixture
def momo_app(redis_client: redis.Redis, momo: StandinMomo, recorder: Recorder) -> Flask:
    app = wire(create_app({"TESTING": True, "REDIS_CLIENT": redis_client, **momo_config(momo)}))
    app.extensions[RESULTS_HANDLER] = recorder
    return app


def install(app: Flask, provider: Any) -> Any:
    """Make ``provider`` the one the app's endpoint and poller use."""
    app.extensions.setdefault(EXTENSION, {})[provider.name] = provider
    return provider


@pytest.fixture
def mtn(momo_app: Flask, redis_client: redis.Redis, clock: Clock) -> MtnMomo:
    return install(momo_app, MtnMomo(redis_client, settings_from(momo_app.config), clock=clock, sleep=clock.advance))


@pytest.fixture
def demo_app(redis_client: redis.Redis, recorder: Recorder) -> Flask:
    # Port 9 (discard): nothing listens, so a demo callback outside the served tests
    # fails at once instead of reaching whatever runs on :8000.
    app = wire(create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "PUBLIC_URL": "http://127.0.0.1:9"}))
    app.extensions[RESULTS_HANDLER] = recorder
    return app


def run_jobs(app: Flask) -> None:
    """Run every job waiting in the app's queue now (a callback's settlement), then return."""
    worker.make_worker(app).work(burst=True)


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app on a real local port (threaded), for callbacks sent over HTTP."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="guichet-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
