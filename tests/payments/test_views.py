"""POST|PUT /payments/<provider>/callback: 200 for whatever we could read (new, duplicate,
unknown payment, our own failures), 400/403 with a one-line reason for the rest, never a
5xx. Driven with the demo provider's signed callbacks."""
from __future__ import annotations

import json

import pytest

from state import journal, keys
from tests.payments.conftest import Recorder
from utility.payments import RESULTS_HANDLER, provider
from utility.payments.base import PaymentRequest, PaymentResult
from utility.payments.poller import PollSettings, poll_pending

URL = "/payments/demo/callback"


@pytest.fixture
def demo(demo_app):
    return provider(demo_app)


@pytest.fixture
def client(demo_app):
    return demo_app.test_client()


def post(client, demo, payload: object, method: str = "POST", raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Guichet-Signature": demo.sign(body)}
    return client.open(URL, method=method, data=body, headers=headers)


def paid(ref: str, order: str = "ORDER001") -> dict[str, str]:
    return {"provider_ref": ref, "order_ref": order, "status": "SUCCESSFUL", "reason": ""}


def test_a_result_is_handed_over_once_and_duplicates_are_acknowledged(client, demo, recorder):
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    answers = [post(client, demo, paid(ref)) for _ in range(3)]
    assert [(a.status_code, a.text) for a in answers] == [(200, "handed_over\n"), (200, "duplicate\n"), (200, "duplicate\n")]
    assert recorder.results == [PaymentResult("demo", ref, "ORDER001", "successful", "")]


def test_put_is_taken_like_post(client, demo, recorder):
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    assert post(client, demo, paid(ref), method="PUT").status_code == 200
    assert len(recorder.results) == 1


def test_a_pending_callback_hands_nothing_over(client, demo, recorder):
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    answer = post(client, demo, {**paid(ref), "status": "PENDING"})
    assert (answer.status_code, answer.text) == (200, "pending\n") and recorder.results == []


def test_a_callback_for_an_unknown_payment_is_acknowledged_and_journaled(client, demo, recorder, redis_client):
    answer = post(client, demo, paid("no-such-ref", "NOSUCH01"))
    assert answer.status_code == 200 and recorder.results == []
    [entry] = [e for e in journal.read(redis_client) if e["kind"] == "payment.unknown"]
    assert (entry["provider_ref"], entry["order"]) == ("no-such-ref", "NOSUCH01")


@pytest.mark.parametrize(
    ("payload", "raw", "reason"),
    [
        (None, b"{not json", "body is not JSON"),
        (None, b"[1, 2]", "body is not a JSON object"),
        ({"order_ref": "ORDER001", "status": "SUCCESSFUL"}, None, "missing field: provider_ref or order_ref"),
        ({"provider_ref": "r", "order_ref": "ORDER001", "status": "MAYBE"}, None, "status must be SUCCESSFUL, FAILED or PENDING"),
        (None, b'{"pad": "' + b"x" * 17_000 + b'"}', "body over 16384 bytes"),
    ],
    ids=["not-json", "not-object", "missing-field", "bad-status", "too-big"],
)
def test_malformed_callbacks_get_400_and_a_reason(client, demo, recorder, payload, raw, reason):
    answer = post(client, demo, payload, raw=raw)
    assert (answer.status_code, answer.text) == (400, reason + "\n")
    assert recorder.results == []


def test_a_callback_naming_another_order_is_refused(client, demo, recorder):
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    answer = post(client, demo, paid(ref, "ORDER999"))
    assert (answer.status_code, answer.text) == (400, "order_ref does not match the payment\n")


def test_only_the_configured_provider_takes_callbacks(client):
    assert client.post("/payments/mtn_momo/callback", json={}).status_code == 404
    assert client.post("/payments/nosuch/callback", json={}).status_code == 404
    assert client.get(URL).status_code == 405


def test_our_handler_failing_is_still_200_and_the_poller_retries(demo_app, client, demo, redis_client):
    flaky = Recorder(fail_times=1)
    demo_app.extensions[RESULTS_HANDLER] = flaky
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    answer = post(client, demo, paid(ref))
    assert (answer.status_code, answer.text) == (200, "handler_failed\n")
    assert redis_client.hget(keys.payment("demo", ref), "notified") == "0"
    later = float(redis_client.hget(keys.payment("demo", ref), "created_at")) + 3600
    assert poll_pending(demo_app, flaky, settings=PollSettings(), now=later) == [flaky.results[0]]
    assert flaky.calls == 2 and flaky.results[0].state == "successful"


def test_no_handler_yet_is_200_and_the_poller_hands_over(demo_app, client, demo, redis_client):
    del demo_app.extensions[RESULTS_HANDLER]
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    assert post(client, demo, paid(ref)).text == "no_handler\n"
    late = Recorder()
    later = float(redis_client.hget(keys.payment("demo", ref), "created_at")) + 3600
    assert [r.provider_ref for r in poll_pending(demo_app, late, now=later)] == [ref]


def test_a_crash_while_reading_is_200_not_500(demo_app, client, demo, monkeypatch, recorder):
    def broken(request):
        raise RuntimeError("bug")

    monkeypatch.setattr(demo, "parse_callback", broken)
    answer = client.post(URL, json={})
    assert (answer.status_code, answer.text) == (200, "noted\n")


def test_redis_down_while_handing_over_is_200_not_500(demo_app, client, demo, redis_client, recorder):
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    body = json.dumps(paid(ref)).encode()
    headers = {"Content-Type": "application/json", "X-Guichet-Signature": demo.sign(body)}
    redis_client.connection_pool.connection_kwargs["server"].connected = False
    try:
        answer = client.post(URL, data=body, headers=headers)
    finally:
        redis_client.connection_pool.connection_kwargs["server"].connected = True
    assert answer.status_code == 200 and recorder.results == []
