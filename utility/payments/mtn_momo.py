"""MTN MoMo Open API, Collection product: request-to-pay, status, callback.

Where each shape was confirmed (public sources, 2024-2025):
- Token: ``POST /collection/token/`` with ``Authorization: Basic base64(api_user:api_key)``
  and ``Ocp-Apim-Subscription-Key``; 200 ``{access_token, token_type, expires_in}`` (seconds),
  401 ``{error}``. MTN's API reference, CreateAccessToken
  (momoapi.mtn.com/docs/services/remittance/operations/CreateAccessToken; the same
  operation per product), and sparkplug/momoapi-node src/auth.ts (``/collection/token/``).
- Request to pay: ``POST /collection/v1_0/requesttopay``, headers ``X-Reference-Id`` (UUID
  v4, ours), ``X-Target-Environment``, optional ``X-Callback-Url``, the subscription key and
  the bearer token; body ``{amount (string), currency, externalId, payer: {partyIdType:
  MSISDN, partyId}, payerMessage, payeeNote}``; answer 202 with no body.
  momoapi.mtn.com/docs/services/collection/operations/requesttopay-POST.
- Errors carry ``{code, message}`` (sparkplug/momoapi-node src/errors.ts); 409
  ``RESOURCE_ALREADY_EXIST`` for a reused X-Reference-Id and 404 ``RESOURCE_NOT_FOUND`` for
  an unknown one on the status GET (MTN's "Common Error Codes" page,
  ericssondeveloperapi.developer.azure-api.net/content/html_widgets/xdn5j.html).
  Configuration mistakes come back as HTTP 500 with such a body: INVALID_CALLBACK_URL_HOST,
  INVALID_CURRENCY, NOT_ALLOWED_TARGET_ENVIRONMENT, NOT_ALLOWED (sparkplug/momoapi-node
  src/common.ts ``FailureReason``; the mtnmomo crate's RequestToPayReason). They are
  not an outage: the request was never taken, and asking again fails the same way.
- Status: ``GET /collection/v1_0/requesttopay/{referenceId}``: 200 even for a failed
  payment, ``{amount, currency, financialTransactionId, externalId, payer, payerMessage,
  payeeNote, status, reason}`` with status PENDING | SUCCESSFUL | FAILED
  (momodeveloper.mtn.com/docs/services/collection/operations/requesttopay-referenceId-GET).
  ``reason`` is an object ``{code, message}`` in MTN's schema (ErrorReason, e.g.
  olaobajuabraham/disbursement docs/Model/ErrorReason.md, generated from it) and a plain
  code in what clients actually read (sparkplug/momoapi-node errors.ts
  ``getTransactionError``; wutsi-platform-payment MTNRequestToPayResponse): both are read.
  The codes: sparkplug/momoapi-node src/common.ts ``FailureReason``, and MTN's newer
  failure reasons (momodeveloper.mtn.com "Improved Failure Reasons and Error Codes"):
  COULD_NOT_PERFORM_TRANSACTION (the payer did not approve within MTN's 5 minutes),
  SENDER_ACCOUNT_NOT_ACTIVE.
- Callback: to X-Callback-Url, by POST or PUT (the listener must allow both), with a body
  like the status GET's; polling is the documented fallback
  (momodeveloper.mtn.com/api-documentation/callback). MTN waits 2 s for the answer, then
  retries every second (20 times), then every 2 minutes, then hourly, with the callback
  URL blocked meanwhile (older versions of that page: sent once, never retried). Sandbox
  callbacks are http only, production https only, and the callback host must be the one
  registered for the API user.

So a callback is only a wake-up here, and is answered at once: ``parse_callback`` finds
the payment by its externalId (our order_ref; the body has no reference id of ours) and
returns a WakeUp; the endpoint queues a job whose status GET says what happened (never
what the body claims) and hands a final result over (poller.settle). A status GET can take
seconds (MTN_MOMO_TIMEOUT, the rate window): inside the request it would cost MTN's 2 s
and then the callback URL. MTN_MOMO_CALLBACK_IPS (CIDRs) refuses callbacks from elsewhere
with 403; empty accepts any, which is safe because nothing in the body is trusted. Behind
a reverse proxy, ``request.remote_addr`` is the proxy's unless the app trusts
X-Forwarded-For (werkzeug ProxyFix).

The X-Reference-Id is made once per order and kept (``records.claim``): asking again for
the order sends the same reference, so a request whose answer was lost is never a second
debit: MTN answers 409 and the payment is looked up instead. A timeout or a 5xx raises
ProviderUnavailable and leaves the reference pending: the poller's status GET settles it
(a 404 past ``not_found_grace`` means the request never reached MTN: failed,
provider_unavailable). A configuration error (above) raises ProviderMisconfigured: the
order fails at once and the reference is never sent again nor polled.

The sandbox takes only EUR; elsewhere MTN_MOMO_CURRENCY must be set (XAF in Cameroon):
``settings_from`` refuses a live setup without it, and ``startup_problems`` lists what a
live setup lacks for ``guichet serve``/``guichet worker`` to say at start-up.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import flask
from flask import Flask

from state import keys
from state.store import TextRedis, get_redis
from utility.access import Network, parse_networks
from utility.customers import mask_phone, mask_tail
from utility.payments.base import (
    DEFAULTS,
    FAILED,
    PENDING,
    SUCCESSFUL,
    BadPaymentCallback,
    PaymentError,
    PaymentRequest,
    PaymentResult,
    ProviderMisconfigured,
    ProviderUnavailable,
    State,
    WakeUp,
    callback_body,
    callback_json,
)
from utility.payments.records import PaymentRecords, needs_redis

log = logging.getLogger(__name__)

NAME = "mtn_momo"
# The defaults are MTN's sandbox: its target environment (any other is live money) and URL.
SANDBOX: str = DEFAULTS["MTN_MOMO_TARGET_ENVIRONMENT"]
SANDBOX_URL: str = DEFAULTS["MTN_MOMO_BASE_URL"]
SANDBOX_CURRENCY = "EUR"  # the only currency the sandbox takes
TOKEN_PATH = "/collection/token/"
REQUEST_PATH = "/collection/v1_0/requesttopay"

# MTN's failure reasons -> ours. Anything else (INTERNAL_PROCESSING_ERROR,
# TRANSACTION_CANCELED, PAYER_FAILED, ...) is "other".
REASONS = {
    "APPROVAL_REJECTED": "declined",
    "EXPIRED": "expired",
    "PAYER_NOT_FOUND": "payer_not_found",
    "NOT_ENOUGH_FUNDS": "insufficient_funds",
    "PAYER_LIMIT_REACHED": "payer_limit",
    "SERVICE_UNAVAILABLE": "provider_unavailable",
    "COULD_NOT_PERFORM_TRANSACTION": "expired",  # MTN's 5 minutes to approve ran out
    "SENDER_ACCOUNT_NOT_ACTIVE": "payer_inactive",
}

# MTN's answers that mean "we are set up wrong", whatever the HTTP status (500 mostly):
# failing fast says so, where treating them as an outage would retry and poll a request
# MTN never took. PAYEE_* name our own collection account.
CONFIGURATION_ERRORS = frozenset({
    "INVALID_CALLBACK_URL_HOST",
    "INVALID_CURRENCY",
    "NOT_ALLOWED_TARGET_ENVIRONMENT",
    "NOT_ALLOWED",
    "PAYEE_NOT_FOUND",
    "PAYEE_NOT_ALLOWED_TO_RECEIVE",
})

@dataclass(frozen=True)
class MomoSettings:
    subscription_key: str
    api_user: str
    api_key: str
    base_url: str = SANDBOX_URL
    target_environment: str = SANDBOX
    callback_url: str = ""  # empty: no X-Callback-Url (polling only)
    currency: str = SANDBOX_CURRENCY  # the sandbox only takes EUR; XAF in Cameroon
    callback_networks: tuple[Network, ...] = ()  # empty: callbacks from anywhere (never trusted anyway)
    timeout: float = DEFAULTS["MTN_MOMO_TIMEOUT"]  # seconds per HTTP call
    status_rate: int = DEFAULTS["MTN_MOMO_STATUS_RATE"]  # status GETs per second, all processes (MTN caps them)
    rate_wait: float = 1.0  # how long a status GET may wait for a free slot
    not_found_grace: float = 120.0  # a 404 this long after an unacknowledged request: it never arrived


CREDENTIALS = ("MTN_MOMO_SUBSCRIPTION_KEY", "MTN_MOMO_API_USER", "MTN_MOMO_API_KEY")


def _environment(config: Mapping[str, Any]) -> str:
    return str(config.get("MTN_MOMO_TARGET_ENVIRONMENT") or SANDBOX)


def settings_from(config: Mapping[str, Any]) -> MomoSettings:
    missing = [name for name in CREDENTIALS if not config.get(name)]
    if missing:
        raise ValueError("PAYMENT_PROVIDER=mtn_momo needs " + ", ".join("GUICHET_" + name for name in missing))
    environment = _environment(config)
    currency = str(config.get("MTN_MOMO_CURRENCY") or "")
    if not currency:
        if environment != SANDBOX:
            # EUR is the sandbox's: with real money it would be refused at best.
            raise ValueError(
                f"MTN_MOMO_CURRENCY must be set for MTN_MOMO_TARGET_ENVIRONMENT={environment} "
                "(the currency of the MTN account, e.g. XAF in Cameroon); EUR is the sandbox's only"
            )
        currency = SANDBOX_CURRENCY
    return MomoSettings(
        subscription_key=str(config["MTN_MOMO_SUBSCRIPTION_KEY"]),
        api_user=str(config["MTN_MOMO_API_USER"]),
        api_key=str(config["MTN_MOMO_API_KEY"]),
        base_url=str(config.get("MTN_MOMO_BASE_URL") or SANDBOX_URL).rstrip("/"),
        target_environment=environment,
        callback_url=str(config.get("MTN_MOMO_CALLBACK_URL") or ""),
        currency=currency,
        callback_networks=parse_networks(config.get("MTN_MOMO_CALLBACK_IPS")),
        timeout=float(config.get("MTN_MOMO_TIMEOUT") or DEFAULTS["MTN_MOMO_TIMEOUT"]),
        status_rate=int(config.get("MTN_MOMO_STATUS_RATE") or DEFAULTS["MTN_MOMO_STATUS_RATE"]),
    )


def startup_problems(config: Mapping[str, Any]) -> list[str]:
    """What keeps this MTN MoMo setup from taking real money safely, one sentence per
    variable, for the start-up of ``guichet serve`` and ``guichet worker``. Empty when
    another provider is configured, or when all is well. The live checks apply outside
    the sandbox only (the sandbox wants http callbacks and EUR)."""
    if str(config.get("PAYMENT_PROVIDER") or NAME) != NAME:
        return []
    problems = [
        f"{name} is not set: PAYMENT_PROVIDER=mtn_momo cannot ask for payments"
        for name in CREDENTIALS
        if not config.get(name)
    ]
    environment = _environment(config)
    if environment == SANDBOX:
        return problems
    if not config.get("MTN_MOMO_CURRENCY"):
        problems.append(
            f"MTN_MOMO_CURRENCY is not set for MTN_MOMO_TARGET_ENVIRONMENT={environment}: set the currency "
            "of the MTN account (XAF in Cameroon); EUR is the sandbox's only"
        )
    callback_url = str(config.get("MTN_MOMO_CALLBACK_URL") or "")
    if callback_url and not callback_url.lower().startswith("https://"):
        problems.append(
            f"MTN_MOMO_CALLBACK_URL is not https ({callback_url}): MTN refuses http callbacks outside "
            "the sandbox (INVALID_CALLBACK_URL_HOST) and every request to pay would fail"
        )
    base_url = str(config.get("MTN_MOMO_BASE_URL") or SANDBOX_URL).rstrip("/")
    if base_url == SANDBOX_URL:
        problems.append(
            f"MTN_MOMO_BASE_URL is the sandbox's ({SANDBOX_URL}) but MTN_MOMO_TARGET_ENVIRONMENT is "
            f"{environment}: set the production API URL MTN gave you"
        )
    elif not base_url.lower().startswith("https://"):
        problems.append(f"MTN_MOMO_BASE_URL is not https ({base_url}): the API key would travel in clear")
    return problems


def read_status(payload: object) -> tuple[State, str]:
    """A status GET (or callback) body as our state and reason."""
    if not isinstance(payload, dict):
        return PENDING, ""
    status = str(payload.get("status", "")).upper()
    if status == SUCCESSFUL.upper():
        return SUCCESSFUL, ""
    if status == FAILED.upper():
        reason = payload.get("reason")
        if isinstance(reason, dict):
            reason = reason.get("code")
        return FAILED, REASONS.get(str(reason or "").upper(), "other")
    if status != PENDING.upper():
        log.warning("MTN MoMo status %r read as pending", status[:40])
    return PENDING, ""


class MtnMomo:
    name = NAME

    def __init__(
        self,
        client: TextRedis,
        settings: MomoSettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = client
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.records = PaymentRecords(client, NAME, clock)

    # -- the interface ---------------------------------------------------------------------------
    @needs_redis
    def request(self, payment: PaymentRequest) -> PaymentResult:
        currency = self._currency(payment)
        ref = self.records.claim(payment.order_ref, str(uuid.uuid4()))
        record = self.records.get(ref)
        first = record is None
        if record is None:
            record = self.records.create(ref, payment, currency)
        else:
            self.records.check_same(record, payment)
            if record.get("sent") == "accepted" or record.get("state") != PENDING:
                return self.records.result_of(ref, record)  # asked again: MTN already has it
        return self._send(ref, payment, record, first)

    @needs_redis
    def status(self, provider_ref: str) -> PaymentResult:
        return self._status(provider_ref, via="status")

    def parse_callback(self, request: flask.Request) -> WakeUp:
        """Which payment the callback is about; what it says is left to a status GET in a
        job (see the module's docstring): only Redis is asked here, never MTN."""
        self._check_source(request)
        data = callback_json(callback_body(request))
        external = data.get("externalId")
        ref = data.get("referenceId")  # not in MTN's documented body, but read if some sender adds it
        if not isinstance(ref, str) or not _is_uuid(ref):
            if not isinstance(external, (str, int)) or str(external) == "":
                raise BadPaymentCallback("missing field: externalId")
            ref = self.records.ref_for_order(str(external)) or ""
        record = self.records.get(ref)
        if record is None:
            # Not a payment of ours: the endpoint acknowledges it and asks nothing.
            return WakeUp(NAME, ref, str(external or ""))
        if external is not None and str(external) != record.get("order_ref"):
            raise BadPaymentCallback("externalId does not match the payment")
        log.info("callback for %s (order %s) says %s: asking MTN", ref, record.get("order_ref"),
                 str(data.get("status", ""))[:20])
        return WakeUp(NAME, ref, record.get("order_ref", ""))

    # -- request to pay ----------------------------------------------------------------------------
    def _currency(self, payment: PaymentRequest) -> str:
        if self.settings.target_environment == SANDBOX:
            return self.settings.currency  # sandbox money: whatever currency the sandbox takes
        if payment.currency != self.settings.currency:
            raise PaymentError(f"MTN MoMo is set up for {self.settings.currency}, not {payment.currency}")
        return payment.currency

    def _send(self, ref: str, payment: PaymentRequest, record: dict[str, str], first: bool = True) -> PaymentResult:
        """``first``: no earlier attempt for this reference, whose answer we never had."""
        headers = {"X-Reference-Id": ref, "Content-Type": "application/json"}
        if self.settings.callback_url:
            headers["X-Callback-Url"] = self.settings.callback_url
        note = (payment.note or f"Order {payment.order_ref}")[:160]
        body = {
            "amount": str(payment.amount),
            "currency": record.get("currency", self.settings.currency),
            "externalId": payment.order_ref,
            "payer": {"partyIdType": "MSISDN", "partyId": payment.payer.lstrip("+")},
            "payerMessage": note,
            "payeeNote": note,
        }
        self.records.journal_request(ref, record)
        try:
            status, payload = self._api("POST", REQUEST_PATH, headers, body)
        except ProviderUnavailable as exc:
            self._unconfirmed(ref, payment, record, exc)
            raise
        code, message = error_of(payload)
        if code in CONFIGURATION_ERRORS:
            raise self._misconfigured(ref, payment, record, status, code, message, first)
        if status >= 500 or status in (401, 403):
            what = f"MTN MoMo answered the request to pay with HTTP {status} {code}"
            unavailable = ProviderUnavailable(what.rstrip())
            self._unconfirmed(ref, payment, record, unavailable)
            raise unavailable
        if status == 202:
            self.records.mark_sent(ref)
            log.info("request to pay %s sent to %s for order %s", ref, mask_phone(payment.payer), payment.order_ref)
            return self.records.result_of(ref, record)
        if status == 409:
            return self._adopt(ref, payment)
        # Refused outright (400: invalid number, amount...): it will not be paid.
        log.warning(
            "MTN MoMo refused request to pay %s (order %s): HTTP %s %s", ref, payment.order_ref, status, code[:60]
        )
        self.records.mark_sent(ref, "refused")  # answered: never to be sent again
        learned = self.records.learn(ref, FAILED, REASONS.get(code.upper(), "other"), via="request")
        assert learned is not None
        return learned.result

    def _unconfirmed(self, ref: str, payment: PaymentRequest, record: dict[str, str], exc: ProviderUnavailable) -> None:
        # It may have reached MTN: the reference stays pending for the next attempt
        # (same reference -> 409 if it did) and for the poller.
        self.records.journal_request(ref, record, "payment.unavailable", error=str(exc)[:200])
        log.warning("request to pay %s (order %s) not confirmed: %s", ref, payment.order_ref, exc)

    def _misconfigured(
        self,
        ref: str,
        payment: PaymentRequest,
        record: dict[str, str],
        status: int,
        code: str,
        message: str,
        first: bool,
    ) -> PaymentError:
        """MTN refused the request for how we are set up: nothing exists at MTN, so the
        payment fails now, is never sent again and never polled; the operator is told loudly.

        Unless an earlier attempt with this reference went unanswered: that one may have
        reached MTN before the configuration changed, so the reference stays pending for
        the poller and the caller hears "unavailable" (an order failed that way is still
        fulfilled if the money turns up; one failed as refused would not be)."""
        log.error(
            "MTN MoMo refused request to pay %s (order %s, payer %s) for our configuration: HTTP %s %s: %s"
            " (check MTN_MOMO_CURRENCY, MTN_MOMO_CALLBACK_URL, MTN_MOMO_TARGET_ENVIRONMENT and the API user's rights)",
            ref, payment.order_ref, mask_phone(payment.payer), status, code, message,
        )
        self.records.journal_request(ref, record, "payment.misconfigured", code=code, http_status=status)
        if not first:
            return ProviderUnavailable(f"MTN MoMo refused a retried request to pay ({code}); the first may be there")
        self.records.refuse(ref, "other", code)
        return ProviderMisconfigured(f"MTN MoMo refused the request to pay: {code}", code)

    def _adopt(self, ref: str, payment: PaymentRequest) -> PaymentResult:
        """409: MTN already has this reference. It can only be our own earlier attempt
        whose answer was lost; check that it is this order's before taking it."""
        status, payload = self._get_status(ref)
        if status != 200 or not isinstance(payload, dict):
            raise ProviderUnavailable(f"MTN MoMo has reference {ref} but its status GET answered HTTP {status}")
        if str(payload.get("externalId", "")) != payment.order_ref:
            log.error("MTN MoMo reference %s belongs to another payment (externalId differs)", ref)
            raise PaymentError(f"reference {ref} already used by another payment")
        self.records.mark_sent(ref)
        state, reason = read_status(payload)
        learned = self.records.learn(ref, state, reason, via="request")
        assert learned is not None
        log.info("request to pay %s had already reached MTN (409): %s", ref, learned.result.state)
        return learned.result

    # -- status ----------------------------------------------------------------------------------
    def _status(self, ref: str, via: str) -> PaymentResult:
        record = self.records.get(ref)
        status, payload = self._get_status(ref)
        if status == 200 and isinstance(payload, dict):
            state, reason = read_status(payload)
            if record is None:
                return PaymentResult(NAME, ref, str(payload.get("externalId", "")), state, reason)
            if not record.get("sent"):
                self.records.mark_sent(ref)  # it reached MTN after all
            learned = self.records.learn(ref, state, reason, via=via)
            assert learned is not None
            return learned.result
        if status == 404:
            if record is None:
                raise PaymentError(f"MTN MoMo knows no payment {ref}")
            age = self.clock() - float(record.get("created_at") or 0)
            if record.get("sent") != "accepted" and age > self.settings.not_found_grace:
                learned = self.records.learn(ref, FAILED, "provider_unavailable", via=via)
                assert learned is not None
                return learned.result
            return self.records.result_of(ref, record)
        code, message = error_of(payload)
        if code in CONFIGURATION_ERRORS:
            # Not an outage either: the poller keeps asking (the payment may exist at MTN,
            # taken before the configuration changed), but the operator must hear of it.
            log.error("MTN MoMo refused the status GET of %s for our configuration: HTTP %s %s: %s",
                      ref, status, code, message)
            raise ProviderMisconfigured(f"MTN MoMo refused the status GET: {code}", code)
        raise ProviderUnavailable(f"MTN MoMo status GET answered HTTP {status} {code}".rstrip())

    def _get_status(self, ref: str) -> tuple[int, Any]:
        self._status_slot()
        return self._api("GET", f"{REQUEST_PATH}/{ref}", {}, None)

    def _status_slot(self) -> None:
        """One of ``status_rate`` status calls this second, across every process (a fixed
        one-second window in Redis); waits up to ``rate_wait`` for the next second."""
        deadline = self.clock() + self.settings.rate_wait
        while True:
            now = self.clock()
            second = int(now)
            key = keys.payment(NAME, f"rate:{second}")
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 2)
            count = pipe.execute()[0]
            if count <= self.settings.status_rate:
                return
            if now >= deadline:
                raise ProviderUnavailable(f"MTN MoMo status rate limit ({self.settings.status_rate}/s) reached")
            self.sleep(max(0.001, min(second + 1 - now, deadline - now)))

    # -- callbacks -------------------------------------------------------------------------------
    def _check_source(self, request: flask.Request) -> None:
        networks = self.settings.callback_networks
        if not networks:
            return
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            raise BadPaymentCallback("callback from an unknown address", status=403) from None
        if not any(address in network for network in networks):
            raise BadPaymentCallback("callback from an address not allowed", status=403)

    # -- HTTP ------------------------------------------------------------------------------------
    def _api(self, method: str, path: str, headers: dict[str, str], body: object) -> tuple[int, Any]:
        """A call with the bearer token; a 401 refreshes the token and tries once more
        (MTN may end a token before its expires_in)."""
        status, payload = self._http(method, path, {**headers, **self._auth(self._token())}, body)
        if status == 401:
            log.info("MTN MoMo refused our token: getting a new one")
            status, payload = self._http(method, path, {**headers, **self._auth(self._token(refresh=True))}, body)
        return status, payload

    def _auth(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "X-Target-Environment": self.settings.target_environment,
            "Ocp-Apim-Subscription-Key": self.settings.subscription_key,
        }

    def _token(self, refresh: bool = False) -> str:
        key = keys.provider_token(NAME)
        if not refresh:
            cached: str | None = self.redis.get(key)
            if cached:
                return cached
        basic = base64.b64encode(f"{self.settings.api_user}:{self.settings.api_key}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": self.settings.subscription_key}
        status, payload = self._http("POST", TOKEN_PATH, headers, None)
        if status in (401, 403):
            # Wrong API user/key or subscription key: a configuration problem, loud in the
            # log; to the customer it is the same as MTN being down.
            log.error("MTN MoMo refused our API user, API key or subscription key (HTTP %s)", status)
            raise ProviderUnavailable("MTN MoMo refused our credentials")
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            raise ProviderUnavailable(f"MTN MoMo token endpoint answered HTTP {status}")
        try:
            expires_in = int(payload.get("expires_in") or 3600)
        except (TypeError, ValueError):
            expires_in = 3600
        # A bit under its life, so a token is never sent in its last seconds.
        ttl = max(1, expires_in - max(1, min(60, expires_in // 10)))
        self.redis.set(key, token, ex=ttl)
        return token

    def _http(self, method: str, path: str, headers: dict[str, str], body: object) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        call = urllib.request.Request(self.settings.base_url + path, data=data, method=method, headers=headers)
        what = f"MTN MoMo {method} {path.split('/requesttopay/')[0]}"
        try:
            with urllib.request.urlopen(call, timeout=self.settings.timeout) as answer:
                return answer.status, _json(answer.read())
        except urllib.error.HTTPError as exc:  # an answer all the same: 4xx/5xx with its body
            try:
                raw = exc.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
            return exc.code, _json(raw)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ProviderUnavailable(f"{what}: {exc.__class__.__name__}: {exc}"[:300]) from exc


# Digit runs long enough to be a phone number: masked before MTN's words reach our logs.
_NUMBER = re.compile(r"\+?[0-9]{7,}")


def error_of(payload: object) -> tuple[str, str]:
    """MTN's ``{code, message}`` error body as (CODE, message for the log), or ("", "")."""
    if not isinstance(payload, dict):
        return "", ""
    code = str(payload.get("code") or "").strip().upper()[:60]
    message = str(payload.get("message") or "")[:200]
    return code, _NUMBER.sub(lambda number: mask_tail(number.group()), message)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def from_app(app: Flask) -> MtnMomo:
    return MtnMomo(get_redis(app), settings_from(app.config))
