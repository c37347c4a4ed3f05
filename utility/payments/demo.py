"""The embedded demo provider: mobile money without a mobile-money operator.

It behaves like a real provider, over the same paths, so a demo exercises what
production runs: ``request`` records the payment pending and queues a job; a few
seconds later (GUICHET_DEMO_PAYMENT_DELAY, default 3) the job "approves on the handset"
and POSTs the result to Guichet's own callback URL (GUICHET_PUBLIC_URL +
/payments/demo/callback), signed, as a provider would. The callback endpoint verifies the
signature and hands the result to the order pipeline; if the POST never arrives, the
poller's ``status`` call finds the result anyway.

- A payer number ending in 9 is declined for insufficient funds.
- ``set_available(False)`` switches the provider down (kept in Redis, so every process
  sees it): a ``request`` then raises ProviderUnavailable, as during an operator outage
  (the seam checks the switch: utility.calls, utility.payments.call_policy).

The callback body is JSON ``{provider_ref, order_ref, status, reason}`` (status SUCCESSFUL
or FAILED, reason one of base.REASONS) with ``X-Guichet-Signature``: the hex HMAC-SHA256 of
the body under the payments secret. The secret is GUICHET_PAYMENTS_SECRET when set, else
derived from the app's SECRET_KEY, else a random one made once and kept in Redis, so the
web processes and the worker (which may be other processes on the same Redis) agree on it.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import flask
from flask import Flask, current_app

from state import keys, switches
from state.store import TextRedis, get_redis
from utility.customers import mask_phone
from utility.payments.base import (
    DEFAULTS,
    FAILED,
    PENDING,
    REASONS,
    SUCCESSFUL,
    BadPaymentCallback,
    PaymentError,
    PaymentRequest,
    PaymentResult,
    State,
    callback_body,
    callback_json,
)
from utility.payments.records import PaymentRecords, needs_redis

log = logging.getLogger(__name__)

NAME = "demo"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
CALLBACK_PATH = "/payments/demo/callback"
SIGNATURE_HEADER = "X-Guichet-Signature"
CALLBACK_TIMEOUT = 5.0  # seconds for the job's POST to our own endpoint
STATUSES: dict[str, State] = {"SUCCESSFUL": SUCCESSFUL, "FAILED": FAILED, "PENDING": PENDING}


@dataclass(frozen=True)
class DemoSettings:
    delay: float = DEFAULTS["DEMO_PAYMENT_DELAY"]  # seconds between the request and the "approval"
    callback_url: str = DEFAULT_PUBLIC_URL + CALLBACK_PATH
    secret: bytes | None = None  # None: a random secret kept in Redis


def settings_from(config: flask.Config | dict[str, object]) -> DemoSettings:
    public_url = str(config.get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    secret = config.get("PAYMENTS_SECRET")
    key = config.get("SECRET_KEY")
    if secret:
        derived: bytes | None = str(secret).encode()
    elif key:
        # Not the SECRET_KEY itself: a leaked demo signature must say nothing about it.
        raw = key if isinstance(key, bytes) else str(key).encode()
        derived = hmac.new(raw, b"guichet payments callback", hashlib.sha256).digest()
    else:
        derived = None
    delay = config.get("DEMO_PAYMENT_DELAY")
    return DemoSettings(
        delay=DEFAULTS["DEMO_PAYMENT_DELAY"] if delay is None else float(delay),  # type: ignore[arg-type]
        callback_url=public_url + CALLBACK_PATH,
        secret=derived,
    )


class DemoProvider:
    name = NAME

    def __init__(self, client: TextRedis, settings: DemoSettings, schedule: Callable[[float, str], object]) -> None:
        """``schedule(delay, provider_ref)`` runs ``approve_job(provider_ref)`` ``delay``
        seconds from now (the app's rq queue; tests may pass their own)."""
        self.redis = client
        self.settings = settings
        self.schedule = schedule
        self.records = PaymentRecords(client, NAME)
        self._secret = settings.secret

    # -- the switch ----------------------------------------------------------------------------
    def _settings_key(self) -> str:
        return keys.payment(NAME, "settings")

    def set_available(self, available: bool) -> None:
        # The operators' switch (state.switches), shared with the built-in vending and billing.
        switches.set_down(self.redis, "payments", not available)
        log.warning("demo payment provider switched %s", "up" if available else "DOWN")

    def available(self) -> bool:
        return not switches.is_down(self.redis, "payments")

    # -- the interface ---------------------------------------------------------------------------
    @needs_redis
    def request(self, payment: PaymentRequest) -> PaymentResult:
        # Switched off (set_available), the seam (utility.calls) does not call this.
        ref = self.records.claim(payment.order_ref, str(uuid.uuid4()))
        record = self.records.get(ref)
        if record is not None:
            self.records.check_same(record, payment)
            return self.records.result_of(ref, record)  # asked again: same reference, no new job
        record = self.records.create(ref, payment, payment.currency)
        self.records.mark_sent(ref)
        self.records.journal_request(ref, record)
        self.schedule(self.settings.delay, ref)
        log.info("demo payment %s asked of %s for order %s", ref, mask_phone(payment.payer), payment.order_ref)
        return self.records.result_of(ref, record)

    @needs_redis
    def status(self, provider_ref: str) -> PaymentResult:
        record = self.records.get(provider_ref)
        if record is None:
            raise PaymentError(f"no demo payment {provider_ref}")
        decided = record.get("demo_status")
        if not decided:
            return self.records.result_of(provider_ref, record)
        learned = self.records.learn(provider_ref, STATUSES[decided], record.get("demo_reason", ""), via="status")
        assert learned is not None
        return learned.result

    def parse_callback(self, request: flask.Request) -> PaymentResult:
        body = callback_body(request)
        given = request.headers.get(SIGNATURE_HEADER, "")
        # Bytes, not str: compare_digest raises TypeError on a non-ASCII str, and a header
        # may hold anything (the endpoint would answer "noted" instead of refusing it).
        presented = given.strip().lower().encode("utf-8", "replace")
        if not given or not hmac.compare_digest(presented, self.sign(body).encode("ascii")):
            raise BadPaymentCallback("bad or missing signature", status=403)
        data = callback_json(body)
        ref, order_ref = data.get("provider_ref"), data.get("order_ref")
        if not isinstance(ref, str) or not ref or not isinstance(order_ref, str) or not order_ref:
            raise BadPaymentCallback("missing field: provider_ref or order_ref")
        status = data.get("status")
        if not isinstance(status, str) or status not in STATUSES:
            raise BadPaymentCallback("status must be SUCCESSFUL, FAILED or PENDING")
        state = STATUSES[status]
        reason = ""
        if state == FAILED:
            reason = str(data.get("reason")) if data.get("reason") in REASONS else "other"
        record = self.records.get(ref)
        if record is None:
            return PaymentResult(NAME, ref, order_ref, state, reason)  # not ours: the endpoint acknowledges it
        if record.get("order_ref") != order_ref:
            raise BadPaymentCallback("order_ref does not match the payment")
        learned = self.records.learn(ref, state, reason, via="callback")
        assert learned is not None
        return learned.result

    # -- the "operator" side ---------------------------------------------------------------------
    def secret(self) -> bytes:
        if self._secret is None:
            self.redis.hsetnx(self._settings_key(), "secret", secrets.token_hex(32))
            self._secret = str(self.redis.hget(self._settings_key(), "secret")).encode()
        return self._secret

    def sign(self, body: bytes) -> str:
        return hmac.new(self.secret(), body, hashlib.sha256).hexdigest()

    def approve(self, provider_ref: str) -> bool:
        """The payer's answer on the handset, then the callback, as the provider sends it.
        Returns whether the callback was delivered."""
        record = self.records.get(provider_ref)
        if record is None:
            log.warning("demo approval for unknown payment %s", provider_ref)
            return False
        # Decided by the payer's number alone, so a re-run job decides the same.
        declined = record.get("payer", "").endswith("9")
        status, reason = ("FAILED", "insufficient_funds") if declined else ("SUCCESSFUL", "")
        # What status() answers from now on: the provider's side of the payment.
        self.redis.hset(self.records.key(provider_ref), mapping={"demo_status": status, "demo_reason": reason})
        order_ref = record.get("order_ref", "")
        payload = {"provider_ref": provider_ref, "order_ref": order_ref, "status": status, "reason": reason}
        body = json.dumps(payload, separators=(",", ":")).encode()
        call = urllib.request.Request(
            self.settings.callback_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: self.sign(body)},
        )
        try:
            with urllib.request.urlopen(call, timeout=CALLBACK_TIMEOUT) as answer:
                answer.read()
        except (urllib.error.URLError, OSError) as exc:
            # Like a real provider's lost callback: the poller's status call settles it.
            log.warning("demo callback for %s to %s failed: %s", provider_ref, self.settings.callback_url, exc)
            return False
        return True


def approve_job(provider_ref: str) -> bool:
    """The rq job behind the demo's delay (runs in the app context)."""
    from utility.payments import provider

    demo = provider(current_app._get_current_object(), NAME)  # type: ignore[attr-defined]
    assert isinstance(demo, DemoProvider)
    return demo.approve(provider_ref)


def from_app(app: Flask) -> DemoProvider:
    from state import worker

    def schedule(delay: float, provider_ref: str) -> object:
        return worker.queue(app).enqueue_in(datetime.timedelta(seconds=delay), approve_job, provider_ref)

    return DemoProvider(get_redis(app), settings_from(app.config), schedule)
