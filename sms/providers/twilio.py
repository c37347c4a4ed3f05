"""Twilio Programmable Messaging through its `twilio` SDK 9.x (see shared PROTOCOLS.md).

TWILIO_FROM is a sender (number or alphanumeric id) or a Messaging Service SID (MG...),
which lets Twilio pick the sender from the service's pool. TWILIO_API_URL points the SDK
at another host: it is the `base_url` of the SDK's `api` domain (https://api.twilio.com).
With GUICHET_PUBLIC_URL set, each message asks for status callbacks at
`<public url>/sms/twilio/status` (sms.views).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from sms.client import DEFAULT_TIMEOUT, OutgoingSms, SendResult, SmsClient, SmsError, transport_error
from sms.keywords import Inbound, received
from sms.providers import setting, timeout

STATUS_PATH = "/sms/twilio/status"

# Twilio error codes worth another try although their HTTP status is a 4xx.
RETRY_CODES = {
    20429,  # too many requests
    30001,  # queue overflow
}


class TwilioClient(SmsClient):
    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, sender: str, api_url: str | None = None,
                 status_callback: str | None = None, read_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=read_timeout))
        if api_url:
            self.client.api.base_url = api_url.rstrip("/")
            # TWILIO_EDGE/TWILIO_REGION in the environment would rewrite the host name.
            self.client.edge = self.client.region = None
        self.sender = sender
        self.status_callback = status_callback

    def try_send(self, sms: OutgoingSms) -> SendResult:
        sender = sms.sender or self.sender
        kwargs: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if sender.startswith("MG") and len(sender) == 34:
            kwargs["messaging_service_sid"] = sender
        else:
            kwargs["from_"] = sender
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise rest_error(exc.status, exc.code, str(getattr(exc, "msg", "") or getattr(exc, "title", ""))) from exc
        except requests.RequestException as exc:
            raise transport_error(self.name, exc) from exc
        except TwilioException as exc:  # the SDK's own complaint about its input
            raise SmsError(f"twilio: {exc}", retryable=False) from exc
        if not message.sid:
            raise SmsError("twilio: created without a sid", retryable=False, maybe_sent=True)
        cost = f"{message.price_unit or ''} {message.price}".strip() if message.price else ""
        return SendResult("twilio", message.sid, str(message.status or ""), cost)


def rest_error(status: int, code: int | None, message: str) -> SmsError:
    """SmsError for an error answer of Twilio's API."""
    retryable = (
        status >= 500
        or status == 429
        or code in RETRY_CODES
        # Our credentials, not the message: worth retrying while someone fixes them.
        or status == 401
    )
    return SmsError(f"twilio: HTTP {status} code {code}: {message[:200]}", retryable=retryable)


def parse_inbound(form: Mapping[str, str]) -> Inbound:
    """An inbound message webhook (form: MessageSid, AccountSid, From, To, Body, NumMedia,
    NumSegments, ...) as an Inbound; MalformedInbound (sms.keywords) when it is not one. A
    picture's media are not read: its Body, perhaps empty, is the text."""
    return received("twilio", form, message_id="MessageSid", phone="From", to="To", text="Body")


def from_config(config: Mapping[str, Any]) -> TwilioClient:
    need = "GUICHET_SMS_PROVIDER=twilio"
    public_url = setting(config, "PUBLIC_URL")
    return TwilioClient(
        account_sid=setting(config, "TWILIO_ACCOUNT_SID", need) or "",
        auth_token=setting(config, "TWILIO_AUTH_TOKEN", need) or "",
        sender=setting(config, "TWILIO_FROM", need) or "",
        api_url=setting(config, "TWILIO_API_URL"),
        status_callback=public_url.rstrip("/") + STATUS_PATH if public_url else None,
        read_timeout=timeout(config),
    )
