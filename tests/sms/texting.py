"""A customer's phone texting our short code through Africa's Talking, and what it receives:
the helper of the self-service and opt-out stories (tests/sms/test_keywords_self_service.py,
tests/sms/test_optout.py)."""
from __future__ import annotations

import itertools

from flask import Flask

from tests.sms.fixtures import run_jobs
from tests.sms.standin_africastalking import AfricasTalkingStandin

SHORT_CODE = "8080"
_ids = itertools.count(1)


class Texting:
    def __init__(self, app: Flask, standin: AfricasTalkingStandin, number: str) -> None:
        self.app, self.standin, self.number = app, standin, number
        self.read = 0

    def texts(self, text: str, message_id: str | None = None) -> int:
        """Send ``text``; the gateway's callback carries ``message_id`` (a retry repeats it).
        The HTTP status our endpoint answered."""
        form = {"from": self.number, "to": SHORT_CODE, "text": text, "date": "2026-03-12 10:30:00",
                "id": message_id or f"ATXid_{next(_ids)}", "linkId": "", "networkCode": "62401"}
        return self.app.test_client().post("/sms/africastalking/inbound", data=form).status_code

    def inbox(self) -> list[str]:
        """Every SMS this phone has received so far."""
        run_jobs(self.app)
        return [sms.message for sms in self.standin.received if sms.to == self.number]

    def new(self) -> list[str]:
        """The SMS received since the last call of ``new``."""
        everything = self.inbox()
        fresh, self.read = everything[self.read:], len(everything)
        return fresh

    def asks(self, text: str) -> str:
        """Send ``text`` and return the one SMS that comes back."""
        assert self.texts(text) == 200
        [reply] = self.new()
        return reply
