"""The payment interface: what every payment provider offers Guichet.

A provider is the embedded demo (utility.payments.demo) or an adapter for a real one
(utility.payments.mtn_momo). The order pipeline, the callback endpoint
(utility.payments.views) and the poller (utility.payments.poller) only ever see this
module.

Money is whole XAF (int). A payment is asked for once per order: ``request`` is
idempotent by ``order_ref``, so asking again (a retried hop, a retried job) returns the
same provider reference and never debits the customer a second time.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from utility.errors import OutsideError, Unavailable

if TYPE_CHECKING:
    import flask

# Configuration of payments, read from GUICHET_<NAME> like the rest (utility.payments exports
# it). Each default is stated here and nowhere else: app.DEFAULTS merges this mapping, and
# the providers' and the poller's settings take what a mapping lacks from here.
DEFAULTS: dict[str, Any] = {
    "PAYMENT_PROVIDER": "demo",  # demo | mtn_momo
    # PUBLIC_URL (sms.DEFAULTS): where providers reach us. Unset, the demo provider calls
    # back http://127.0.0.1:<port>, and live providers refuse to start (check_live_config).
    "PAYMENTS_SECRET": None,  # demo callback HMAC key; None: from SECRET_KEY, else random, kept in Redis
    "DEMO_PAYMENT_DELAY": 3.0,  # seconds between the demo's request and its "approval"
    "PAYMENT_POLL_AFTER": 30.0,  # seconds pending before the first status call
    "PAYMENT_POLL_MAX_INTERVAL": 120.0,
    "PAYMENT_EXPIRY": 600.0,  # then failed, reason expired
    "PAYMENT_POLL_EVERY": 10.0,  # seconds between two poller rounds
    "MTN_MOMO_BASE_URL": "https://sandbox.momodeveloper.mtn.com",  # MTN's sandbox
    "MTN_MOMO_SUBSCRIPTION_KEY": None,
    "MTN_MOMO_API_USER": None,
    "MTN_MOMO_API_KEY": None,
    "MTN_MOMO_TARGET_ENVIRONMENT": "sandbox",  # e.g. mtncameroon in production
    "MTN_MOMO_CALLBACK_URL": None,  # None: no callback, polling only
    "MTN_MOMO_CURRENCY": None,  # required outside the sandbox (XAF in Cameroon); EUR in the sandbox
    "MTN_MOMO_CALLBACK_IPS": "",  # comma-separated CIDRs; empty: any source (never trusted anyway)
    "MTN_MOMO_TIMEOUT": 10.0,  # seconds per HTTP call
    "MTN_MOMO_STATUS_RATE": 10,  # status GETs per second, all processes together
}

State = Literal["pending", "successful", "failed"]
PENDING: State = "pending"
SUCCESSFUL: State = "successful"
FAILED: State = "failed"
FINAL_STATES = frozenset({SUCCESSFUL, FAILED})

# Why a payment failed, whatever the provider calls it. The customer's message is picked
# from these, so a provider maps its own codes onto them and never invents new ones.
REASONS = (
    "declined",  # the payer said no on the handset
    "insufficient_funds",
    "expired",  # nobody approved in time (the provider's timeout, or our poller's)
    "payer_not_found",  # no wallet for that number
    "payer_limit",  # the payer's daily/monthly limit
    "payer_inactive",  # the payer's wallet exists but is not active (blocked, dormant)
    "provider_unavailable",
    "other",
)

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# Order references travel in headers, URLs and Redis key names: keep them plain.
ORDER_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True)
class PaymentRequest:
    """Ask ``payer`` for ``amount`` for one order."""

    order_ref: str  # the order's idempotency key
    payer: str  # E.164, e.g. +237670000001
    amount: int  # XAF, whole
    currency: str = "XAF"
    note: str = ""  # shown to the payer when the provider allows it

    def __post_init__(self) -> None:
        # A malformed request is a bug in the caller, not a payment that failed.
        if not ORDER_REF.fullmatch(self.order_ref):
            raise ValueError(f"order_ref must match {ORDER_REF.pattern}")
        if not E164.fullmatch(self.payer):
            raise ValueError("payer must be an E.164 number (+ and 7 to 15 digits)")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount <= 0:
            raise ValueError("amount must be a positive whole number")


@dataclass(frozen=True)
class PaymentResult:
    """What is known about a payment request now."""

    provider: str
    provider_ref: str
    order_ref: str
    state: State
    reason: str = ""  # one of REASONS when failed

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class WakeUp:
    """A callback that only says "look at this payment now": the provider's status call
    tells what happened, not the callback's body. Asking takes longer than some providers
    wait for the callback's answer (MTN: 2 s), so the endpoint acknowledges at once and
    the status call runs in a job (poller.settle_job)."""

    provider: str
    provider_ref: str
    order_ref: str


# -- errors ----------------------------------------------------------------------------------
class PaymentError(OutsideError):
    """A payment request that cannot be made, or a provider that cannot be asked."""

    system = "payments"  # the seam stamps payments:<provider>
    code = "payment_error"
    retryable = False


class ProviderUnavailable(PaymentError, Unavailable):
    """The provider cannot be reached or answered with an error of its own; the same call
    may succeed later. At request time the caller tells the customer to try later rather
    than leave the order pending forever; the provider keeps the reference, so asking
    again for the same order is the same request, and the poller settles a request that
    reached the provider after all."""

    code = "provider_unavailable"
    retryable = True


class ProviderMisconfigured(PaymentError):
    """The provider refused the request because of how we are set up with it (currency,
    callback host, target environment, what our account may do), not because of this
    payment: no request exists at the provider, and asking again fails the same way until
    an operator fixes the configuration. ``code`` is the provider's error code."""

    retryable = False

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code)


class BadPaymentCallback(Exception):
    """A callback we refuse: malformed (400) or not from the provider (403)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# -- the interface ----------------------------------------------------------------------------
class PaymentProvider(Protocol):
    name: str

    def request(self, payment: PaymentRequest) -> PaymentResult:
        """Ask the payer for the money. Returns state "pending" with the provider's
        reference (or "failed" when the provider refuses the request outright).
        Idempotent by ``order_ref``. Raises ProviderUnavailable when it cannot tell."""
        ...

    def status(self, provider_ref: str) -> PaymentResult:
        """Ask the provider where the payment stands (polling: callbacks get lost)."""
        ...

    def parse_callback(self, request: flask.Request) -> PaymentResult | WakeUp:
        """What a provider's callback tells, as far as it can be trusted: a result when
        the callback itself is proof (the demo's is signed), a WakeUp when only a status
        call can tell (MTN's). Must be quick: no call to the provider here.
        Raises BadPaymentCallback for a malformed or unauthenticated one."""
        ...


# -- helpers for parse_callback ---------------------------------------------------------------
MAX_CALLBACK_BYTES = 16 * 1024  # provider callbacks are a few hundred bytes


def callback_body(request: flask.Request, limit: int = MAX_CALLBACK_BYTES) -> bytes:
    """The raw body of a callback, refused (400) when it is larger than any real one."""
    if (request.content_length or 0) > limit:
        raise BadPaymentCallback(f"body over {limit} bytes")
    body = request.get_data(cache=True)
    if len(body) > limit:
        raise BadPaymentCallback(f"body over {limit} bytes")
    return body


def callback_json(body: bytes) -> dict[str, object]:
    """A callback body as a JSON object, or BadPaymentCallback (400)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise BadPaymentCallback("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadPaymentCallback("body is not a JSON object")
    return data
