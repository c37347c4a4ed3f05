"""Delivery reports: `POST /sms/africastalking/delivery` and `POST /sms/twilio/status`.

Each report updates the message's ``delivery`` (sms.outbox.record_delivery), journaled.
An id we do not know (another system's message, or expired) is acknowledged with 200
and logged; a malformed report gets 400 with a one-line reason; nothing gives a 5xx
(a report is informative: a Redis outage loses it, logged, rather than failing the
provider). Twilio's reports are signed (X-Twilio-Signature, checked when
TWILIO_AUTH_TOKEN is set); Africa's Talking's are not, so they may carry a shared secret
(`?secret=`, checked when SMS_CALLBACK_SECRET is set).
"""
from __future__ import annotations

import hmac
import logging

import click
import redis
from flask import Blueprint, Flask, Response, current_app, request
from flask.cli import AppGroup
from twilio.request_validator import RequestValidator

from sms import outbox
from sms.providers import setting
from state.store import get_redis

log = logging.getLogger(__name__)

bp = Blueprint("sms", __name__, url_prefix="/sms")

MAX_BODY = 4096  # octets; a delivery report is a few hundred
MAX_FIELD = 200

# Africa's Talking delivery statuses -> our ``delivery``; others are kept as they come.
AFRICASTALKING_DELIVERY = {"Success": "delivered", "Failed": "failed", "Rejected": "failed"}
# Twilio's MessageStatus -> our ``delivery``.
TWILIO_DELIVERY = {"delivered": "delivered", "read": "delivered", "undelivered": "failed", "failed": "failed",
                   "canceled": "failed"}


def _answer(text: str = "", status: int = 200) -> Response:
    return Response(text + ("\n" if text else ""), status=status, mimetype="text/plain")


class BadReport(Exception):
    pass


def _field(name: str, required: bool = True) -> str:
    value = request.form.get(name, "").strip()
    if required and not value:
        raise BadReport(f"missing field: {name}")
    if len(value) > MAX_FIELD:
        raise BadReport(f"{name} over {MAX_FIELD} characters")
    return value


def _record(provider: str, provider_id: str, status: str, delivery: str, error: str) -> Response:
    try:
        message = outbox.record_delivery(get_redis(), provider, provider_id, status, delivery, error)
    except redis.RedisError:
        log.exception("could not record the %s delivery report of %s", provider, provider_id)
        return _answer()
    if message is None:
        log.info("%s delivery report for an unknown message %s (%s): acknowledged", provider, provider_id, status)
    else:
        log.info("sms %s: %s says %s", message.id, provider, status)
    return _answer()


def africastalking_refusal() -> Response | None:
    """403 when SMS_CALLBACK_SECRET is set and this Africa's Talking callback does not carry it
    as ``?secret=`` (delivery reports, inbound SMS: sms.inbound); None when it may go on."""
    secret = setting(current_app.config, "SMS_CALLBACK_SECRET")
    if secret and not hmac.compare_digest(request.args.get("secret", "").encode(), secret.encode()):
        log.warning("africastalking callback %s with a wrong secret from %s", request.path, request.remote_addr)
        return _answer("forbidden", 403)
    return None


@bp.post("/africastalking/delivery")
def africastalking_delivery() -> Response:
    if (request.content_length or 0) > MAX_BODY:
        return _answer(f"body over {MAX_BODY} octets", 400)
    if (refused := africastalking_refusal()) is not None:
        return refused
    try:
        provider_id, status = _field("id"), _field("status")
        error = _field("failureReason", required=False)
        for name in ("phoneNumber", "networkCode"):  # unused, but a report must be sane
            _field(name, required=False)
        retries = _field("retryCount", required=False)
        if retries and not retries.isdigit():
            raise BadReport("retryCount is not a number")
    except BadReport as exc:
        return _answer(str(exc), 400)
    delivery = AFRICASTALKING_DELIVERY.get(status, status.lower())
    return _record("africastalking", provider_id, status, delivery, error)


def _public_url() -> str:
    """The URL Twilio signed: the public base (we may sit behind a proxy) + our path."""
    base = setting(current_app.config, "PUBLIC_URL")
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def twilio_refusal(required: bool = False) -> Response | None:
    """403 when this Twilio callback is not signed with TWILIO_AUTH_TOKEN over our public URL
    (status callbacks, inbound SMS: sms.inbound); None when it may go on. Without the token
    nothing can be checked: the callback goes on, unless the caller ``required`` a signature."""
    token = setting(current_app.config, "TWILIO_AUTH_TOKEN")
    if not token:
        if required:
            log.warning("twilio callback %s refused: TWILIO_AUTH_TOKEN is not set to check it", request.path)
            return _answer("signature cannot be checked", 403)
        return None
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(token).validate(_public_url(), request.form.to_dict(), signature):
        log.warning("twilio callback %s with a bad signature from %s", request.path, request.remote_addr)
        return _answer("invalid signature", 403)
    return None


@bp.post("/twilio/status")
def twilio_status() -> Response:
    if (request.content_length or 0) > MAX_BODY:
        return _answer(f"body over {MAX_BODY} octets", 400)
    if (refused := twilio_refusal()) is not None:
        return refused
    try:
        provider_id, status = _field("MessageSid"), _field("MessageStatus")
        error = _field("ErrorCode", required=False)
    except BadReport as exc:
        return _answer(str(exc), 400)
    delivery = TWILIO_DELIVERY.get(status.lower(), status.lower())
    return _record("twilio", provider_id, status, delivery, error)


sms_cli = AppGroup("sms", help="The SMS outbox.")


@sms_cli.command("sweep")
def sweep_command() -> None:
    """Mark messages stuck in "sending" unconfirmed and requeue lost queued ones."""
    result = outbox.sweep_stale(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"{len(result.unconfirmed)} unconfirmed, {len(result.requeued)} requeued")
    for message_id in result.unconfirmed:
        click.echo(f"unconfirmed {message_id}")


def init_app(app: Flask) -> None:
    """Register the delivery-report endpoints and `guichet sms`. (The SMS defaults are in
    app.DEFAULTS; what reads a setting an app lacks falls back to sms.DEFAULTS itself.)"""
    if bp.name not in app.blueprints:  # idempotent: tests may call it on a factory-made app
        app.register_blueprint(bp)
        app.cli.add_command(sms_cli)
