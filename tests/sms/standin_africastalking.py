"""A stand-in Africa's Talking SMS API on 127.0.0.1, for driving the real SDK in tests.

It implements `POST /version1/messaging` as shared PROTOCOLS.md describes it: a form with
username, to (comma-separated), message and from, the key in the `apiKey` header, and a
JSON answer `{"SMSMessageData": {"Message": ..., "Recipients": [...]}}` with one entry per
recipient (statusCode, number, status, cost, messageId). It records every message it
receives, accepted or not.

It shares no code with the provider module on purpose: a misreading of the protocol in one
must not hide in the other. It can be told how to answer the next requests: a statusCode
per recipient, an HTTP 500, a 200 that is not JSON, an empty recipient list, or to hold
the answer until released (a lost answer: the client times out after the message landed).
"""
from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field

STATUS_WORDS = {
    100: "Processed", 101: "Success", 102: "Queued",
    401: "RiskHold", 402: "InvalidSenderId", 403: "InvalidPhoneNumber", 404: "UnsupportedNumberType",
    405: "InsufficientBalance", 406: "UserInBlacklist", 407: "CouldNotRoute", 409: "DoNotDisturbRejection",
    500: "InternalServerError", 501: "GatewayError", 502: "RejectedByGateway",
}
ACCEPTED = {100, 101, 102}
E164 = re.compile(r"^\+\d{1,3}\d{3,}$")


@dataclass(frozen=True)
class Received:
    username: str
    to: str  # one recipient
    message: str
    sender: str | None
    message_id: str | None  # what the stand-in answered; None when it was refused
    status_code: int
    api_key: str


@dataclass
class Behaviour:
    """How to answer: the first matching rule wins, ``default_status`` otherwise."""

    default_status: int = 101
    per_number: dict[str, int] = field(default_factory=dict)
    next_answers: list[str] = field(default_factory=list)  # "http500" | "text" | "empty" | "hold"


class AfricasTalkingStandin:
    def __init__(self, username: str = "guichet", api_key: str = "at-test-key") -> None:
        self.username = username
        self.api_key = api_key
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.requests = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets held answers go (on stop)
        self._ids = itertools.count(1)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="at-standin", daemon=True)

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AfricasTalkingStandin:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def answer_status(self, status_code: int, number: str | None = None) -> None:
        """Answer ``status_code`` for ``number`` (every recipient when None) from now on."""
        if number is None:
            self.behaviour.default_status = status_code
        else:
            self.behaviour.per_number[number] = status_code

    def then(self, *answers: str) -> None:
        """Answer the next requests like this, in order: http500, text, empty or hold."""
        self.behaviour.next_answers.extend(answers)

    def messages_to(self, number: str) -> list[Received]:
        return [m for m in self.received if m.to == number]

    @property
    def accepted(self) -> list[Received]:
        return [m for m in self.received if m.status_code in ACCEPTED]

    # -- the API ---------------------------------------------------------------------------
    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                with standin.lock:
                    standin.requests += 1
                if self.path != "/version1/messaging":
                    return self._send(404, b"Not Found", "text/plain")
                if self.headers.get("apiKey") != standin.api_key:
                    return self._send(401, b"The supplied authentication is invalid", "text/plain")
                if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
                    return self._send(400, b"Expected a form", "text/plain")
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
                if form.get("username") != standin.username:
                    return self._send(401, b"The supplied authentication is invalid", "text/plain")
                if not form.get("to") or "message" not in form:
                    return self._send(400, b"Missing to or message", "text/plain")
                with standin.lock:
                    special = standin.behaviour.next_answers.pop(0) if standin.behaviour.next_answers else ""
                if special == "http500":
                    return self._send(500, b"Internal Server Error", "text/plain")
                recipients = []
                for number in form["to"].split(","):
                    number = number.strip()
                    code = standin.behaviour.per_number.get(number, standin.behaviour.default_status)
                    if not E164.match(number):
                        code = 403
                    if special == "empty":  # the whole request refused, e.g. a bad sender id
                        code = 402
                    message_id = f"ATXid_{next(standin._ids):032x}" if code in ACCEPTED else None
                    with standin.lock:
                        standin.received.append(Received(
                            form["username"], number, form["message"], form.get("from"), message_id, code,
                            self.headers.get("apiKey", ""),
                        ))
                    recipients.append({
                        "statusCode": code,
                        "number": number,
                        "status": STATUS_WORDS.get(code, "Unknown"),
                        "cost": "XAF 20.0000" if code in ACCEPTED else "0",
                        "messageId": message_id or "None",
                    })
                if special == "text":
                    return self._send(200, b"Sent to 1/1 Total Cost: XAF 20", "text/plain")
                if special == "hold":
                    standin.release.wait(30)  # the client gave up long before: its answer is lost
                    return self._send(201, b"{}", "application/json")
                accepted = sum(1 for r in recipients if r["statusCode"] in ACCEPTED)
                data = {
                    "SMSMessageData": {
                        "Message": "InvalidSenderId" if special == "empty"
                        else f"Sent to {accepted}/{len(recipients)} Total Cost: XAF {20 * accepted}",
                        "Recipients": [] if special == "empty" else recipients,
                    }
                }
                return self._send(201, json.dumps(data).encode(), "application/json")

        return Handler
