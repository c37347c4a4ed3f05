"""A stand-in Twilio Messages API on 127.0.0.1, for driving the real `twilio` SDK in tests.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth (account sid,
auth token) and a form (To, From or MessagingServiceSid, Body, StatusCallback); it answers
201 with the Message resource as JSON, or Twilio's error document
(`{"code", "message", "more_info", "status"}`) when told to. Every accepted message is
recorded. It shares no code with the provider module.
"""
from __future__ import annotations

import base64
import http.server
import itertools
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass

PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")


@dataclass(frozen=True)
class Received:
    to: str
    body: str
    sender: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    sid: str


class TwilioStandin:
    def __init__(self, account_sid: str = "AC" + "0" * 31 + "1", auth_token: str = "tw-test-token") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.received: list[Received] = []
        self.next_errors: list[tuple[int, int, str]] = []  # (HTTP status, Twilio code, message)
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="twilio-standin", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TwilioStandin:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, status: int, code: int, message: str = "error") -> None:
        self.next_errors.append((status, code, message))

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _json(self, status: int, document: dict[str, object]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: int, message: str) -> None:
                self._json(status, {"code": code, "message": message,
                                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                match = PATH.match(self.path)
                if not match:
                    return self._error(404, 20404, "The requested resource was not found")
                expected = base64.b64encode(f"{standin.account_sid}:{standin.auth_token}".encode()).decode()
                if match["sid"] != standin.account_sid or self.headers.get("Authorization") != f"Basic {expected}":
                    return self._error(401, 20003, "Authenticate")
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
                with standin.lock:
                    failure = standin.next_errors.pop(0) if standin.next_errors else None
                if failure:
                    return self._error(*failure)
                if not form.get("To") or not form.get("Body"):
                    return self._error(400, 21602, "Message body is required.")
                if not form.get("From") and not form.get("MessagingServiceSid"):
                    return self._error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
                sid = f"SM{next(standin._ids):032x}"
                with standin.lock:
                    standin.received.append(Received(form["To"], form["Body"], form.get("From"),
                                                     form.get("MessagingServiceSid"), form.get("StatusCallback"), sid))
                self._json(201, {
                    "account_sid": standin.account_sid, "api_version": "2010-04-01", "body": form["Body"],
                    "date_created": "Thu, 12 Mar 2026 10:00:00 +0000", "date_sent": None, "date_updated": None,
                    "direction": "outbound-api", "error_code": None, "error_message": None,
                    "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
                    "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD",
                    "sid": sid, "status": "queued", "to": form["To"],
                    "uri": f"/2010-04-01/Accounts/{standin.account_sid}/Messages/{sid}.json",
                })

        return Handler
