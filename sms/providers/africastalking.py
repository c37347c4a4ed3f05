"""Africa's Talking bulk SMS through its `africastalking` SDK 2.x (see shared PROTOCOLS.md).

We build the SDK's own `SMSService` instead of calling `africastalking.initialize()`:
that function swaps process-wide globals (and builds seven other services), so two apps
in one process (tests, a second tenant) would send with each other's credentials. The
request is the SDK's, byte for byte.

AFRICASTALKING_API_URL points the SDK at another host (a stand-in in tests, a proxy):
the SDK posts to `{_baseUrl}/messaging` where `_baseUrl` is `<host>/version1`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService

from sms.client import (
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    OutgoingSms,
    SendResult,
    SmsClient,
    SmsError,
    transport_error,
)
from sms.keywords import Inbound, given, given_phone, received
from sms.optout import ProviderOptOut
from sms.providers import setting, timeout

ACCEPTED = {100, 101, 102}  # Processed, Sent, Queued
# RiskHold, InvalidSenderId, InvalidPhoneNumber, UnsupportedNumberType, InsufficientBalance,
# UserInBlacklist, CouldNotRoute, DoNotDisturbRejection: sending again would be refused again.
REFUSED = {401, 402, 403, 404, 405, 406, 407, 409}
RETRY_LATER = {500, 501, 502}  # InternalServerError, GatewayError, RejectedByGateway


class AfricasTalkingClient(SmsClient):
    name = "africastalking"

    def __init__(self, username: str, api_key: str, sender_id: str | None = None,
                 api_url: str | None = None, read_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.service = SMSService(username, api_key)
        if api_url:
            self.service._baseUrl = api_url.rstrip("/") + "/version1"
        self.sender_id = sender_id
        self.timeouts = (CONNECT_TIMEOUT, read_timeout)

    def try_send(self, sms: OutgoingSms) -> SendResult:
        try:
            answer = self.service.send(
                sms.body, [sms.to], sender_id=sms.sender or self.sender_id, timeout=self.timeouts
            )
        except AfricasTalkingException as exc:  # a non-2xx answer: the message was not taken
            raise SmsError(f"africastalking: HTTP error: {str(exc)[:200]}", retryable=True) from exc
        except ValueError as exc:  # the SDK refuses a number that is not E.164
            raise SmsError(f"africastalking: {exc}", retryable=False) from exc
        except requests.RequestException as exc:
            raise transport_error(self.name, exc) from exc
        return parse_answer(answer)


def parse_answer(answer: object) -> SendResult:
    """The one recipient's outcome in an SMS answer, or SmsError."""
    # The SDK hands back a str when the content type is not exactly application/json
    # (an HTML error page from a proxy, a maintenance notice): nothing to rely on.
    if not isinstance(answer, dict):
        raise SmsError(f"africastalking: answer is not JSON: {str(answer)[:100]!r}", retryable=True)
    data = answer.get("SMSMessageData")
    recipients = data.get("Recipients") if isinstance(data, dict) else None
    if not isinstance(recipients, list):
        raise SmsError("africastalking: answer without SMSMessageData.Recipients", retryable=True)
    if not recipients:
        # Africa's Talking answers no recipient at all when it refuses the whole request
        # (e.g. Message "InvalidSenderId"): a configuration problem, not a passing one.
        reason = data.get("Message", "") if isinstance(data, dict) else ""
        raise SmsError(f"africastalking: no recipient accepted: {reason}", retryable=False)
    recipient = recipients[0]
    if not isinstance(recipient, dict):
        raise SmsError("africastalking: malformed recipient", retryable=True)
    try:
        code = int(recipient.get("statusCode", 0))
    except (TypeError, ValueError):
        code = 0
    status = str(recipient.get("status", ""))
    if code in ACCEPTED:
        message_id = str(recipient.get("messageId") or "")
        if not message_id or message_id == "None":
            raise SmsError(f"africastalking: accepted ({code}) without a messageId", retryable=False, maybe_sent=True)
        return SendResult("africastalking", message_id, status or str(code), str(recipient.get("cost", "")))
    if code in REFUSED:
        raise SmsError(f"africastalking: {code} {status}", retryable=False)
    if code in RETRY_LATER:
        raise SmsError(f"africastalking: {code} {status}", retryable=True)
    # A code this module does not know: the message was not reported taken; retrying is
    # the safer guess for a code Africa's Talking added since.
    raise SmsError(f"africastalking: unknown status {code} {status}", retryable=True)


def parse_inbound(form: Mapping[str, str]) -> Inbound:
    """An inbound SMS callback (form: from, to, text, date, id, linkId, networkCode, cost) as an
    Inbound; MalformedInbound (sms.keywords) when it is not one. ``linkId`` (premium, on-demand
    replies) and ``cost`` are not read: replies go out as ordinary messages through the outbox."""
    return received("africastalking", form, message_id="id", phone="from", to="to", text="text")


def parse_optout(form: Mapping[str, str]) -> ProviderOptOut:
    """A bulk SMS opt-out notification (form: senderId, phoneNumber): the subscriber told
    Africa's Talking they want no more messages from that sender ID (the opt-out
    instructions Africa's Talking appends to the first bulk message). MalformedInbound
    (sms.keywords) when it is not one."""
    sender_id = given(form, "senderId")
    return ProviderOptOut("africastalking", given_phone(form, "phoneNumber"), sender_id)


def from_config(config: Mapping[str, Any]) -> AfricasTalkingClient:
    need = "GUICHET_SMS_PROVIDER=africastalking"
    return AfricasTalkingClient(
        username=setting(config, "AFRICASTALKING_USERNAME", need) or "",
        api_key=setting(config, "AFRICASTALKING_API_KEY", need) or "",
        sender_id=setting(config, "AFRICASTALKING_SENDER_ID"),
        api_url=setting(config, "AFRICASTALKING_API_URL"),
        read_timeout=timeout(config),
    )
