"""SMS providers: one module each, registered by name in PROVIDERS.

A provider module has a `from_config(config) -> SmsClient`. Adding one is a new module
here and one line in PROVIDERS; `GUICHET_SMS_PROVIDER=<name>` picks it. Modules are
imported on first use, so a deployment never loads an SDK it does not use.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from sms import DEFAULTS
from sms.client import DEFAULT_TIMEOUT, SmsClient, SmsError
from utility.calls import CallPolicy

PROVIDERS: dict[str, str] = {
    "africastalking": "sms.providers.africastalking",
    "twilio": "sms.providers.twilio",
    "console": "sms.providers.console",
    "file": "sms.providers.file",
}

class ConfigError(ValueError):
    """The SMS configuration cannot work (unknown provider, missing credentials)."""


def provider_name(config: Mapping[str, Any]) -> str:
    return str(config.get("SMS_PROVIDER") or DEFAULTS["SMS_PROVIDER"]).strip().lower()


def client_from_config(config: Mapping[str, Any]) -> SmsClient:
    """The SmsClient that ``config`` (a Flask config) chooses with SMS_PROVIDER."""
    name = provider_name(config)
    module = PROVIDERS.get(name)
    if module is None:
        raise ConfigError(f"unknown SMS provider {name!r}: choose one of {', '.join(sorted(PROVIDERS))}")
    client: SmsClient = importlib.import_module(module).from_config(config)
    return client


def setting(config: Mapping[str, Any], name: str, required_for: str = "") -> str | None:
    """A text setting, or None when unset.

    Flask parses GUICHET_* variables as JSON, so an all-digit key or sender id arrives
    as an int: give it back as the text it was.
    """
    value = config.get(name)
    if value is None or value == "":
        if required_for:
            raise ConfigError(f"{required_for} needs GUICHET_{name}")
        return None
    return str(value)


def timeout(config: Mapping[str, Any]) -> float:
    """Seconds to wait for a provider's answer (SMS_TIMEOUT)."""
    return float(config.get("SMS_TIMEOUT") or DEFAULT_TIMEOUT)


def call_policy(config: Mapping[str, Any]) -> CallPolicy:
    """How the seam (utility.calls) calls the SMS provider: ``send``, never repeated from
    there (the outbox decides, at most once) and without a breaker: the outbox's own
    retries and send rate already pace a provider that is down."""
    return CallPolicy(f"sms:{provider_name(config)}", ("send",), _unavailable, timeout=timeout(config),
                      breaker=False)


def _unavailable(message: str) -> SmsError:
    return SmsError(message, retryable=True)
