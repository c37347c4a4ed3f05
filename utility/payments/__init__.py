"""Mobile-money payments: the interface (base), the records every provider keeps in Redis
(records), the providers (demo: embedded, the default; mtn_momo: MTN MoMo Collection),
the callback endpoint (views) and the poller that settles what callbacks miss (poller).

`from_config` picks the provider with GUICHET_PAYMENT_PROVIDER. Adding a provider is one
module here plus one line in PROVIDERS: a ``from_app(app)`` factory returning an object
with ``name``, ``request``, ``status`` and ``parse_callback`` (base.PaymentProvider).
A provider whose callbacks cannot be trusted returns a ``WakeUp`` from ``parse_callback``
and the endpoint settles the payment from ``status`` in a job (poller.settle_job).
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from utility.payments import demo, mtn_momo
from utility.payments.base import (
    DEFAULTS,
    BadPaymentCallback,
    PaymentError,
    PaymentProvider,
    PaymentRequest,
    PaymentResult,
    ProviderMisconfigured,
    ProviderUnavailable,
    WakeUp,
)

PROVIDERS: dict[str, Callable[[Flask], PaymentProvider]] = {
    demo.NAME: demo.from_app,
    mtn_momo.NAME: mtn_momo.from_app,
}

EXTENSION = "guichet.payments"
# The order pipeline registers its handler of final payment results here:
# ``app.extensions[RESULTS_HANDLER] = orders.on_payment_result``.
RESULTS_HANDLER = "guichet.payment_results"


def provider(app: Flask, name: str | None = None) -> PaymentProvider:
    """The app's provider ``name`` (default: the configured one), built once per app
    (providers keep no per-request state)."""
    name = name or configured_name(app)
    factory = PROVIDERS.get(name)
    if factory is None:
        raise ValueError(f"unknown PAYMENT_PROVIDER {name!r}: use one of {', '.join(sorted(PROVIDERS))}")
    built: dict[str, PaymentProvider] = app.extensions.setdefault(EXTENSION, {})
    if name not in built:
        built[name] = factory(app)
    return built[name]


def configured_name(app: Flask) -> str:
    return str(app.config.get("PAYMENT_PROVIDER") or DEFAULTS["PAYMENT_PROVIDER"])


def from_config(app: Flask) -> PaymentProvider:
    return provider(app)


__all__ = [
    "DEFAULTS",
    "PROVIDERS",
    "RESULTS_HANDLER",
    "BadPaymentCallback",
    "PaymentError",
    "PaymentProvider",
    "PaymentRequest",
    "PaymentResult",
    "ProviderMisconfigured",
    "ProviderUnavailable",
    "WakeUp",
    "configured_name",
    "from_config",
    "provider",
]
