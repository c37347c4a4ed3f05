"""A stand-in MTN MoMo Collection API on 127.0.0.1, for the adapter's tests.

It keeps the contract the adapter relies on, and is strict where MTN is:
- ``POST /collection/token/``: the subscription key and Basic api_user:api_key are
  checked (401 otherwise); tokens live ``token_ttl`` seconds as far as the client is told,
  and the server can end them early (``expire_tokens``) or refuse every one
  (``reject_tokens``);
- ``POST /collection/v1_0/requesttopay``: bearer token, subscription key and
  X-Target-Environment checked; X-Reference-Id must be a UUID v4 never seen before
  (409 RESOURCE_ALREADY_EXIST otherwise); the body is validated (amount a string of
  digits, externalId, MSISDN payer) with 400 and an error code; 202 with no body;
- what is wrong with our setup rather than with the payment comes back as MTN sends it,
  HTTP 500 with ``{code, message}``: INVALID_CURRENCY (not the account's ``currency``),
  INVALID_CALLBACK_URL_HOST (an X-Callback-Url whose host is not ``callback_host``, or
  http outside the sandbox), NOT_ALLOWED_TARGET_ENVIRONMENT (not ``environment``),
  NOT_ALLOWED (``not_allowed``: the API user may not use the product);
- ``GET /collection/v1_0/requesttopay/{ref}``: 404 RESOURCE_NOT_FOUND for an unknown
  reference, else the payment as MTN shows it, its outcome scripted per payer number
  (SUCCESSFUL, FAILED with a reason, PENDING forever, or PENDING for the first N GETs);
  ``reason`` as a plain code or as MTN's schema object ``{code, message}``;
- the callback: ``deliver_callback(ref)`` POSTs (or PUTs) the status body once to the
  payment's X-Callback-Url, as MTN does, and never again.

It can be told to misbehave on the next call of an endpoint: answer 500, hang past the
client's timeout, answer slowly (``slow_seconds``, a status GET on a bad day), or record
a request to pay and then hang (the answer is lost).

It shares no code with the adapter on purpose: a misreading of the API in one must not
hide in the other.
"""
from __future__ import annotations

import base64
import http.server
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

REQUEST_PATH = "/collection/v1_0/requesttopay"
# Refusals about the caller's setup, not the payment: MTN answers those with HTTP 500.
SETUP_ERRORS = frozenset({"INVALID_CURRENCY", "INVALID_CALLBACK_URL_HOST"})
STATUS_PATH = re.compile(r"/collection/v1_0/requesttopay/([^/?]+)")


@dataclass
class Script:
    status: str = "SUCCESSFUL"  # SUCCESSFUL | FAILED | PENDING (forever)
    reason: str = ""  # MTN's code, when FAILED
    pending_polls: int = 0  # GETs answered PENDING before the outcome shows


@dataclass
class Payment:
    reference: str
    body: dict[str, Any]
    callback_url: str
    gets: int = 0
    decided: bool = False  # the payer has answered (a callback was due)
    callback_sent: bool = False


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class StandinMomo:
    subscription_key: str = "standin-subscription-key"
    api_user: str = field(default_factory=lambda: str(uuid.uuid4()))
    api_key: str = "standin-api-key"
    environment: str = "sandbox"
    currency: str = "EUR"
    token_ttl: int = 3600
    reason_as_object: bool = False
    hang_seconds: float = 1.5  # longer than the tests' client timeout
    slow_seconds: float = 3.0  # longer than MTN waits for a callback's answer (2 s)
    callback_host: str | None = None  # the host registered for the API user; None: any
    not_allowed: bool = False  # the API user has no right to the product

    def __post_init__(self) -> None:
        self.tokens: set[str] = set()
        self.reject_tokens = False
        self.scripts: dict[str, Script] = {}
        self.payments: dict[str, Payment] = {}
        self.calls: list[Call] = []
        self.faults: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> StandinMomo:
        standin = self

        class Handler(Endpoint):
            pass

        Handler.standin = standin
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False  # a hanging handler must not hold the test up
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="standin-momo", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- scripting -------------------------------------------------------------------------------
    def script(self, msisdn: str, status: str = "SUCCESSFUL", reason: str = "", pending_polls: int = 0) -> None:
        self.scripts[msisdn.lstrip("+")] = Script(status, reason, pending_polls)

    def fail_next(self, endpoint: str, how: str, times: int = 1) -> None:
        """endpoint: token | requesttopay | status; how: 500 | hang | slow | accept_then_hang."""
        self.faults.setdefault(endpoint, []).extend([how] * times)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (MTN ending them early)."""
        self.tokens.clear()

    def decide(self, reference: str, status: str, reason: str = "") -> None:
        """The payer answers now (also after a PENDING script)."""
        payment = self.payments[reference]
        self.scripts[payment.body["payer"]["partyId"]] = Script(status, reason)
        payment.decided = True

    # -- what was asked ----------------------------------------------------------------------------
    def count(self, endpoint: str, status: int | None = None) -> int:
        def kind(call: Call) -> str:
            if call.path == "/collection/token/":
                return "token"
            return "requesttopay" if call.method == "POST" else "status"

        return sum(1 for c in self.calls if kind(c) == endpoint and (status is None or c.status == status))

    def requests_to_pay(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path == REQUEST_PATH]

    # -- MTN's side of a payment ---------------------------------------------------------------------
    def status_body(self, payment: Payment, count_get: bool = False) -> dict[str, Any]:
        script = self.scripts.get(payment.body["payer"]["partyId"], Script())
        if count_get:
            payment.gets += 1
        pending = script.status == "PENDING" or (not payment.decided and payment.gets <= script.pending_polls)
        status = "PENDING" if pending else script.status
        body: dict[str, Any] = {
            "amount": payment.body["amount"],
            "currency": payment.body["currency"],
            "externalId": payment.body["externalId"],
            "payer": payment.body["payer"],
            "payerMessage": payment.body.get("payerMessage", ""),
            "payeeNote": payment.body.get("payeeNote", ""),
            "status": status,
        }
        if status == "SUCCESSFUL":
            body["financialTransactionId"] = str(abs(hash(payment.reference)) % 10**9)
        if status == "FAILED":
            code = script.reason or "INTERNAL_PROCESSING_ERROR"
            body["reason"] = {"code": code, "message": code.replace("_", " ").lower()} if self.reason_as_object else code
        return body

    def deliver_callback(self, reference: str, method: str = "POST") -> int | None:
        """The payer has answered: send the one callback MTN sends. None when there is
        nothing to send (no callback URL, or already sent: MTN never sends it twice)."""
        payment = self.payments[reference]
        payment.decided = True
        if not payment.callback_url or payment.callback_sent:
            return None
        payment.callback_sent = True
        body = json.dumps(self.status_body(payment)).encode()
        call = urllib.request.Request(payment.callback_url, data=body, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(call, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


class Endpoint(http.server.BaseHTTPRequestHandler):
    standin: StandinMomo
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests

    # -- plumbing -----------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None) -> None:
        raw = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a hang we were told to do)

    def _record(self, body: Any, status: int) -> None:
        with self.standin.lock:
            self.standin.calls.append(Call(self.command, self.path, dict(self.headers.items()), body, status))

    def _fault(self, endpoint: str) -> str:
        with self.standin.lock:
            queue = self.standin.faults.get(endpoint)
            return queue.pop(0) if queue else ""

    def _answer(self, body: Any, status: int, payload: Any = None) -> None:
        self._record(body, status)
        self._send(status, payload)

    def _hang(self) -> None:
        time.sleep(self.standin.hang_seconds)

    def _authorized(self, body: Any) -> bool:
        standin = self.standin
        if self.headers.get("Ocp-Apim-Subscription-Key") != standin.subscription_key:
            self._answer(body, 401, {"statusCode": 401, "message": "Access denied due to invalid subscription key."})
            return False
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if standin.reject_tokens or token not in standin.tokens:
            self._answer(body, 401, {"code": "UNAUTHORIZED", "message": "Access token expired or invalid"})
            return False
        if self.headers.get("X-Target-Environment") != standin.environment:
            self._answer(body, 500, {"code": "NOT_ALLOWED_TARGET_ENVIRONMENT", "message": "Access to target environment is forbidden."})
            return False
        if standin.not_allowed:
            self._answer(body, 500, {"code": "NOT_ALLOWED", "message": "Authorization failed. Insufficient permissions."})
            return False
        return True

    # -- endpoints -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        raw = self._body()
        if self.path == "/collection/token/":
            self._token(raw)
        elif self.path == REQUEST_PATH:
            self._request_to_pay(raw)
        else:
            self._answer(raw, 404, {"code": "RESOURCE_NOT_FOUND", "message": "no such operation"})

    def do_GET(self) -> None:
        match = STATUS_PATH.fullmatch(self.path)
        if not match:
            self._answer(None, 404, {"code": "RESOURCE_NOT_FOUND", "message": "no such operation"})
            return
        fault = self._fault("status")
        if fault == "500":
            self._answer(None, 500, {"code": "INTERNAL_PROCESSING_ERROR", "message": "An internal error occurred"})
            return
        if fault == "hang":
            self._hang()
        if fault == "slow":
            time.sleep(self.standin.slow_seconds)
        if not self._authorized(None):
            return
        with self.standin.lock:
            payment = self.standin.payments.get(match.group(1))
            payload = self.standin.status_body(payment, count_get=True) if payment else None
        if payload is None:
            self._answer(None, 404, {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."})
        else:
            self._answer(None, 200, payload)

    def _token(self, raw: bytes) -> None:
        standin = self.standin
        fault = self._fault("token")
        if fault == "500":
            self._answer(raw, 500, None)
            return
        if fault == "hang":
            self._hang()
        if self.headers.get("Ocp-Apim-Subscription-Key") != standin.subscription_key:
            self._answer(raw, 401, {"statusCode": 401, "message": "Access denied due to invalid subscription key."})
            return
        expected = base64.b64encode(f"{standin.api_user}:{standin.api_key}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._answer(raw, 401, {"error": "login_failed"})
            return
        token = secrets.token_urlsafe(24)
        with standin.lock:
            standin.tokens.add(token)
        self._answer(raw, 200, {"access_token": token, "token_type": "access_token", "expires_in": standin.token_ttl})

    def _request_to_pay(self, raw: bytes) -> None:
        standin = self.standin
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        fault = self._fault("requesttopay")
        if fault == "500":
            self._answer(body, 500, {"code": "INTERNAL_PROCESSING_ERROR", "message": "An internal error occurred"})
            return
        if fault == "hang":
            self._hang()
            self._answer(body, 500, None)  # nobody is listening any more
            return
        if not self._authorized(body):
            return
        reference = self.headers.get("X-Reference-Id", "")
        problem = self._invalid(reference, body)
        if problem:
            status = 500 if problem in SETUP_ERRORS else 400
            self._answer(body, status, {"code": problem, "message": problem.replace("_", " ").lower()})
            return
        with standin.lock:
            if reference in standin.payments:
                conflict = True
            else:
                conflict = False
                standin.payments[reference] = Payment(reference, body, self.headers.get("X-Callback-Url", ""))
        if conflict:
            self._answer(body, 409, {"code": "RESOURCE_ALREADY_EXIST", "message": "Duplicated reference id. Creation of resource failed."})
            return
        self._record(body, 202)
        if fault == "accept_then_hang":
            self._hang()  # taken, but the answer comes too late for anyone to hear it
        self._send(202, None)

    def _invalid(self, reference: str, body: Any) -> str:
        try:
            parsed = uuid.UUID(reference)
        except ValueError:
            return "INVALID_REFERENCE_ID"
        if parsed.version != 4 or str(parsed) != reference.lower():
            return "INVALID_REFERENCE_ID"
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json" or not isinstance(body, dict):
            return "INVALID_BODY"
        amount = body.get("amount")
        if not isinstance(amount, str) or not amount.isdigit() or int(amount) <= 0:
            return "INVALID_AMOUNT"
        if body.get("currency") != self.standin.currency:
            return "INVALID_CURRENCY"
        if not isinstance(body.get("externalId"), str) or not body["externalId"]:
            return "INVALID_EXTERNAL_ID"
        payer = body.get("payer")
        if not isinstance(payer, dict) or payer.get("partyIdType") != "MSISDN":
            return "INVALID_PAYER"
        party = payer.get("partyId")
        if not isinstance(party, str) or not re.fullmatch(r"[0-9]{8,15}", party):
            return "PAYER_NOT_FOUND"
        for name in ("payerMessage", "payeeNote"):
            if not isinstance(body.get(name, ""), str) or len(body.get(name, "")) > 160:
                return "INVALID_MESSAGE"
        callback = self.headers.get("X-Callback-Url")
        if callback is not None:
            parsed_url = urllib.parse.urlsplit(callback)
            if parsed_url.scheme not in ("http", "https") or not parsed_url.hostname:
                return "INVALID_CALLBACK_URL_HOST"
            if self.standin.callback_host is not None and parsed_url.hostname != self.standin.callback_host:
                return "INVALID_CALLBACK_URL_HOST"
            if self.standin.environment != "sandbox" and parsed_url.scheme != "https":
                return "INVALID_CALLBACK_URL_HOST"  # production takes https callbacks only
        return ""
