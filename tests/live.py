"""The app served for real: on a free port of 127.0.0.1, with its background worker beside
it, as `guichet serve` runs it. What the end-to-end and the browser tests talk to over HTTP.

``serve`` takes any configuration; ``serving`` is the end-to-end tests' shape of it (SMS
through the Africa's Talking SDK to a stand-in that records them).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

from app import create_app
from state import worker
from tests.conftest import ADMIN_KEY
from tests.redis_server import free_port
from tests.sms.fixtures import africastalking_config
from tests.sms.standin_africastalking import AfricasTalkingStandin
from utility.customers import Account
from utility.services import services


def wait_for(condition: Callable[[], object], seconds: float = 20) -> object:
    """``condition()``'s first true value, asked every 50 ms; AssertionError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@contextmanager
def serve(config: Mapping[str, object], customers: Sequence[Account] = ()) -> Iterator[Flask]:
    """``create_app(config)`` served on a free local port, its background worker in a thread,
    both stopped at the end. PUBLIC_URL is the served address, so the demo payment provider
    approves by calling our callback over HTTP; it approves after 0.2 s, not 3."""
    port = free_port()
    app = create_app({
        "TESTING": True,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DEMO_PAYMENT_DELAY": 0.2,
        "SMS_SWEEP_EVERY": 0,
        **config,
    })
    if customers:
        services(app).customers.upsert(customers)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    background = worker.start_in_thread(app)
    try:
        yield app
    finally:
        background.stop()
        server.shutdown()
        server.server_close()


@contextmanager
def serving(fake_redis, standin: AfricasTalkingStandin, customers: list[Account], **config: object) -> Iterator[Flask]:
    """The app on ``fake_redis`` with SMS through the Africa's Talking SDK to ``standin``."""
    with serve({"REDIS_CLIENT": fake_redis, "ADMIN_KEY": ADMIN_KEY, **africastalking_config(standin), **config},
               customers) as app:
        yield app
