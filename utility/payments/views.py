"""Payment providers' callbacks: ``POST|PUT /payments/<provider>/callback``.

The provider parses (and authenticates) its callback. A result it can trust (the demo's
signed one) goes at once to the handler the order pipeline registered in
``app.extensions["guichet.payment_results"]``. A wake-up (MTN's: only a status call can
tell what happened) is answered at once and settled by a job (poller.settle_job): MTN
waits 2 s for our answer, then retries and blocks our callback URL, and a status call can
take longer than that. The payment is also put due in the poller's index, in case the job
is lost. What the provider gets back:

- 200 for everything we could read: a new result, a duplicate, a late one, a wake-up
  queued ("checking"), one for a payment we do not know (acknowledged and logged, never
  an error: an error would only make a provider retry what we cannot use);
- 400 (malformed) or 403 (not from the provider) with a one-line reason;
- never a 5xx: a failure on our side is logged and answered 200, because the poller
  settles the payment from the provider's status whatever happened here.

PUT is accepted too: MTN asks listeners to allow both (see mtn_momo).
"""
from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, abort, current_app, request

from state import journal, worker
from state.store import get_redis
from utility.payments.base import BadPaymentCallback, PaymentResult, WakeUp
from utility.payments.poller import settle_job
from utility.payments.records import PaymentRecords

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__, url_prefix="/payments")


def _answer(text: str, status: int = 200) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


@bp.route("/<name>/callback", methods=["POST", "PUT"])
def callback(name: str) -> Response:
    from utility.payments import RESULTS_HANDLER, configured_name, provider

    # Only the provider in use takes callbacks: another's would be for payments we
    # never asked (and building it may need credentials we do not have).
    if name != configured_name(current_app):
        abort(404)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        chosen = provider(app, name)
        result = chosen.parse_callback(request)
    except BadPaymentCallback as exc:
        log.info("refused %s payment callback from %s: %s", name, request.remote_addr, exc.reason)
        return _answer(exc.reason, exc.status)
    except Exception:
        log.exception("%s payment callback could not be read; the poller will settle it", name)
        return _answer("noted")
    said = result.state if isinstance(result, PaymentResult) else "wake-up"
    try:
        records = PaymentRecords(get_redis(app), name)
        if records.get(result.provider_ref) is None:
            log.warning(
                "%s callback for a payment we do not know (ref %s, order %s)", name, result.provider_ref, result.order_ref
            )
            journal.append(get_redis(app), "payment.unknown", provider=name, provider_ref=result.provider_ref,
                           order=result.order_ref, state=said)
            return _answer("unknown payment, noted")
        if isinstance(result, WakeUp):
            outcome = _queue_settlement(app, records, result)
        else:
            outcome = records.hand_over(result.provider_ref, app.extensions.get(RESULTS_HANDLER))
    except Exception:
        log.exception("%s payment callback for %s not handed over; the poller will", name, result.provider_ref)
        return _answer("noted")
    log.info("%s callback for %s (order %s): %s, %s", name, result.provider_ref, result.order_ref, said, outcome)
    return _answer(outcome)


def _queue_settlement(app: Flask, records: PaymentRecords, wake_up: WakeUp) -> str:
    """The status call in a job, not here. First the poller's index (only while the
    payment is still to settle): if the job is lost, the poller's next round looks."""
    records.look_soon(wake_up.provider_ref, records.clock())
    journal.append(records.redis, "payment.callback", provider=wake_up.provider, provider_ref=wake_up.provider_ref,
                   order=wake_up.order_ref)
    worker.queue(app).enqueue(settle_job, wake_up.provider, wake_up.provider_ref)
    return "checking"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
