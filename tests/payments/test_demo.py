"""The embedded demo provider: pending at once, approved a moment later by a signed
callback that really travels over HTTP to the app, payers ending in 9 declined,
and a switch to play an operator outage."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from app import create_app
from state import journal, keys, worker
from tests.payments.conftest import Recorder, served, wire
from utility.payments import RESULTS_HANDLER, provider
from utility.payments.base import PaymentRequest, PaymentResult, ProviderUnavailable
from utility.payments.demo import DemoProvider, DemoSettings, settings_from


def test_the_demo_approves_after_its_delay_by_posting_its_callback(redis_client):
    app = wire(create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "DEMO_PAYMENT_DELAY": 0.2}))
    recorder = Recorder()
    app.extensions[RESULTS_HANDLER] = recorder
    with served(app) as base:
        app.config["PUBLIC_URL"] = base  # before the provider is built: its callback URL
        demo = provider(app)
        background = worker.start_in_thread(app)
        try:
            paid = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000))
            short = demo.request(PaymentRequest("ORDER002", "+237670000009", 1000))
            assert (paid.state, short.state) == ("pending", "pending")
            deadline = time.monotonic() + 20
            while len(recorder.results) < 2 and time.monotonic() < deadline:
                recorder.arrived.wait(0.1)
        finally:
            background.stop()
    assert sorted(recorder.results, key=lambda r: r.order_ref) == [
        PaymentResult("demo", paid.provider_ref, "ORDER001", "successful", ""),
        PaymentResult("demo", short.provider_ref, "ORDER002", "failed", "insufficient_funds"),
    ]
    learned = [e for e in journal.read(redis_client) if e["kind"] == "payment.state"]
    assert sorted((e["order"], e["via"]) for e in learned) == [("ORDER001", "callback"), ("ORDER002", "callback")]
    assert all(redis_client.hget(keys.payment("demo", r.provider_ref), "notified") == "1" for r in recorder.results)


@pytest.fixture
def scheduled() -> list[tuple[float, str]]:
    return []


@pytest.fixture
def demo(redis_client, scheduled) -> DemoProvider:
    return DemoProvider(redis_client, DemoSettings(delay=3.0, callback_url="http://127.0.0.1:9/payments/demo/callback"),
                        lambda delay, ref: scheduled.append((delay, ref)))


def test_a_request_is_recorded_pending_and_its_approval_scheduled(demo: DemoProvider, scheduled, redis_client):
    result = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000))
    assert result.state == "pending" and scheduled == [(3.0, result.provider_ref)]
    stored = redis_client.hgetall(keys.payment("demo", result.provider_ref))
    assert (stored["order_ref"], stored["payer"], stored["amount"], stored["state"]) == ("ORDER001", "+237670000001", "1000", "pending")
    assert [e["kind"] for e in journal.read(redis_client)] == ["payment.requested"]


def test_asking_again_for_an_order_schedules_no_second_approval(demo: DemoProvider, scheduled):
    first = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000))
    assert demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)) == first
    assert len(scheduled) == 1


def test_status_answers_from_redis(demo: DemoProvider):
    ref = demo.request(PaymentRequest("ORDER001", "+237670000009", 1000)).provider_ref
    assert demo.status(ref).state == "pending"
    assert demo.approve(ref) is False  # nobody listens on :9: the callback is lost...
    assert demo.status(ref) == PaymentResult("demo", ref, "ORDER001", "failed", "insufficient_funds")  # ...polling finds it


def test_the_demo_can_be_switched_down(demo: DemoProvider, scheduled, redis_client):
    from tests.seam import seam_on
    from utility.payments import call_policy

    demo = seam_on(redis_client).guard(demo, call_policy(demo))  # the switch is the seam's, as in provider()
    demo.set_available(False)
    with pytest.raises(ProviderUnavailable) as caught:
        demo.request(PaymentRequest("ORDER001", "+237670000001", 1000))
    assert caught.value.retryable and scheduled == []
    # Another process on the same Redis sees the switch too.
    other = DemoProvider(redis_client, DemoSettings(), lambda delay, ref: None)
    assert not other.available()
    demo.set_available(True)
    assert demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).state == "pending"


def signed(demo: DemoProvider, payload: dict[str, str], key: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    signature = hmac.new(key, body, hashlib.sha256).hexdigest() if key else demo.sign(body)
    return body, {"Content-Type": "application/json", "X-Guichet-Signature": signature}


def test_a_badly_signed_callback_is_refused(demo_app, recorder):
    demo = provider(demo_app)
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    payload = {"provider_ref": ref, "order_ref": "ORDER001", "status": "SUCCESSFUL", "reason": ""}
    client = demo_app.test_client()

    body, headers = signed(demo, payload, key=b"not the secret")
    answer = client.post("/payments/demo/callback", data=body, headers=headers)
    assert (answer.status_code, answer.text) == (403, "bad or missing signature\n")
    answer = client.post("/payments/demo/callback", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 403
    body, headers = signed(demo, payload)
    tampered = body.replace(b"SUCCESSFUL", b"FAILED")
    assert client.post("/payments/demo/callback", data=tampered, headers=headers).status_code == 403
    assert recorder.results == []

    assert client.post("/payments/demo/callback", data=body, headers=headers).status_code == 200
    assert [r.state for r in recorder.results] == ["successful"]


@pytest.mark.parametrize("signature", ["é" * 64, "ÿ" + "0" * 63, "signé", "€" * 64], ids=["e-acute", "y-umlaut", "short", "euro"])
def test_a_non_ascii_signature_is_refused_not_noted(demo_app, recorder, redis_client, signature):
    """compare_digest refuses non-ASCII str with TypeError: that must be a 403, not a
    crash the endpoint swallows as 200 "noted"."""
    demo = provider(demo_app)
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    body = json.dumps({"provider_ref": ref, "order_ref": "ORDER001", "status": "SUCCESSFUL", "reason": ""}).encode()
    answer = demo_app.test_client().post(
        "/payments/demo/callback", data=body, headers={"Content-Type": "application/json", "X-Guichet-Signature": signature}
    )
    assert (answer.status_code, answer.text) == (403, "bad or missing signature\n")
    assert recorder.results == []
    assert redis_client.hget(keys.payment("demo", ref), "state") == "pending"


def test_the_secret_comes_from_config_or_is_shared_through_redis(redis_client):
    assert settings_from({"PAYMENTS_SECRET": "s3cret"}).secret == b"s3cret"
    derived = settings_from({"SECRET_KEY": "app-key"}).secret
    assert derived and derived != b"app-key" and derived == settings_from({"SECRET_KEY": "app-key"}).secret
    assert settings_from({}).secret is None
    one = DemoProvider(redis_client, DemoSettings(), lambda delay, ref: None)
    two = DemoProvider(redis_client, DemoSettings(), lambda delay, ref: None)  # another process
    assert one.sign(b"x") == two.sign(b"x")
    assert len(one.secret()) == 64


def test_settings_read_the_delay_and_public_url():
    settings = settings_from({"DEMO_PAYMENT_DELAY": 0, "PUBLIC_URL": "https://guichet.example/"})
    assert settings.delay == 0.0
    assert settings.callback_url == "https://guichet.example/payments/demo/callback"
    assert settings_from({}).callback_url == "http://127.0.0.1:8000/payments/demo/callback"


def test_redis_down_is_the_provider_unavailable(demo: DemoProvider, redis_client):
    server = redis_client.connection_pool.connection_kwargs["server"]
    server.connected = False
    try:
        with pytest.raises(ProviderUnavailable):
            demo.request(PaymentRequest("ORDER001", "+237670000001", 1000))
    finally:
        server.connected = True
