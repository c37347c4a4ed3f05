"""The SMS client every provider plugs into (GOV.UK Notify's pattern).

`SmsClient.send()` is the one entry point: it counts the segments the customer's
operator will bill, times the provider call and logs it (phone masked, body never), and
calls the provider's `try_send()`. Whatever goes wrong inside a provider comes out as one
exception type, `SmsError`, which says what the outbox may do next:

- ``retryable``: the provider did not take the message (refused for now, unreachable,
  overloaded). Sending again later is safe.
- ``maybe_sent``: we cannot tell whether the provider took it (the answer was lost: a
  read timeout, a connection cut after the request went out, a bug after the call).
  Sending again could text the customer twice, so the outbox does not (see sms.outbox).
- neither: a final refusal (invalid number, blacklisted, ...). Never retried.
"""
from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import requests
import urllib3.exceptions

from sms import DEFAULTS
from sms.gsm import sms_segments
from utility.customers import mask_phone
from utility.errors import OutsideError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: float = DEFAULTS["SMS_TIMEOUT"]  # seconds to wait for a provider's answer
CONNECT_TIMEOUT = 3.05  # seconds to open the connection (requests' advice: just over 3)


@dataclass(frozen=True)
class OutgoingSms:
    message_id: str  # the outbox's id, also our reference at the provider when it takes one
    to: str  # E.164
    body: str
    sender: str | None = None  # None: the provider's configured sender


@dataclass(frozen=True)
class SendResult:
    provider: str
    provider_id: str  # the provider's id for the message: delivery reports quote it
    status: str  # the provider's word for it ("Success", "queued", ...)
    cost: str = ""  # as the provider states it ("XAF 20.0000"); empty when not told


class SmsError(OutsideError):
    """A provider did not (or may not have) taken a message. See the module docstring.
    ``maybe_sent`` is the error base's ``unconfirmed`` (utility.errors)."""

    system = "sms"  # the seam stamps sms:<provider>

    def __init__(self, message: str, retryable: bool, maybe_sent: bool = False) -> None:
        retry = retryable and not maybe_sent
        super().__init__(message, retryable=retry,
                         code="maybe_sent" if maybe_sent else "unavailable" if retry else "refused")
        self.message = message
        self.maybe_sent = self.unconfirmed = maybe_sent

    @property
    def outcome(self) -> str:
        return "maybe sent" if self.maybe_sent else "retryable" if self.retryable else "final"


class SmsClient(ABC):
    """One SMS provider. Subclasses set ``name`` and implement ``try_send``."""

    name: str = ""

    def send(self, sms: OutgoingSms) -> SendResult:
        segments = sms_segments(sms.body)
        started = time.monotonic()
        try:
            result = self.try_send(sms)
        except SmsError as exc:
            elapsed = (time.monotonic() - started) * 1000
            log.warning(
                "sms %s to %s via %s: %s error after %.0f ms: %s",
                sms.message_id, mask_phone(sms.to), self.name, exc.outcome, elapsed, mask_digits(exc.message),
            )
            raise
        except Exception as exc:
            # A bug or an exception the provider module did not expect: we cannot tell
            # whether the message left, so it must not be sent again blindly.
            log.exception("sms %s to %s via %s: unexpected error", sms.message_id, mask_phone(sms.to), self.name)
            raise SmsError(f"{self.name}: unexpected {type(exc).__name__}", retryable=False, maybe_sent=True) from exc
        elapsed = (time.monotonic() - started) * 1000
        log.info(
            "sms %s to %s via %s: %s (%s), %d segment(s), %.0f ms",
            sms.message_id, mask_phone(sms.to), self.name, result.status, result.provider_id, segments, elapsed,
        )
        return result

    @abstractmethod
    def try_send(self, sms: OutgoingSms) -> SendResult:
        """Hand ``sms`` to the provider; raise SmsError (and only SmsError) when it fails."""


def transport_error(provider: str, exc: requests.RequestException) -> SmsError:
    """SmsError for an HTTP call that failed below the provider's API.

    Only a failure to connect proves the request never left; once it was written, a lost
    answer (read timeout, connection reset) may hide an accepted message.
    """
    if never_sent(exc):
        return SmsError(f"{provider}: cannot connect: {type(exc).__name__}", retryable=True)
    return SmsError(f"{provider}: no answer: {type(exc).__name__}", retryable=False, maybe_sent=True)


def never_sent(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        # NewConnectionError covers refused connections and failed DNS lookups.
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


_DIGIT_RUNS = re.compile(r"\d(?:[ -]?\d){5,}")


def mask_digits(text: str) -> str:
    """``text`` with every run of six or more digits (tokens, phone numbers) masked, for logs."""
    return _DIGIT_RUNS.sub("****", text)
