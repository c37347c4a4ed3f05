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

from utility import calls
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
    (providers keep no per-request state), its calls through the seam (utility.calls)."""
    name = name or configured_name(app)
    factory = PROVIDERS.get(name)
    if factory is None:
        raise ValueError(f"unknown PAYMENT_PROVIDER {name!r}: use one of {', '.join(sorted(PROVIDERS))}")
    built: dict[str, PaymentProvider] = app.extensions.setdefault(EXTENSION, {})
    if name not in built:
        made = factory(app)
        built[name] = calls.guard(app, made, call_policy(made))
    return built[name]


# The interface's calls to the provider (base.PaymentProvider); parse_callback reads our own request.
CALLS = ("request", "status")


def call_policy(made: PaymentProvider) -> calls.CallPolicy:
    """How the seam calls a payment provider: ``status`` (a read) is asked twice before it
    fails; a request to pay never is from here (the provider keeps its reference, and the
    order tells the customer to try later). The embedded demo is switched off by an
    operator's switch (POST /admin/backends/payments), which stops new requests only."""
    system = f"payments:{made.name}"
    if isinstance(made, demo.DemoProvider):
        return calls.CallPolicy(system, CALLS, ProviderUnavailable, attempts=2, repeatable=frozenset({"status"}),
                                switch="payments", switched=frozenset({"request"}))
    timeout = made.settings.timeout if isinstance(made, mtn_momo.MtnMomo) else calls.CallPolicy.timeout
    return calls.CallPolicy(system, CALLS, ProviderUnavailable, timeout=timeout, attempts=2,
                            repeatable=frozenset({"status"}))


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
    "call_policy",
    "configured_name",
    "from_config",
    "provider",
]
