"""The console provider: logs each message instead of sending it (development, demos).

Phone numbers and digit runs (tokens) are masked like everywhere else in the logs; use
the file provider to see full bodies.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sms.client import OutgoingSms, SendResult, SmsClient, mask_digits
from sms.gsm import sms_segments
from utility.customers import mask_phone

log = logging.getLogger(__name__)


class ConsoleClient(SmsClient):
    name = "console"

    def try_send(self, sms: OutgoingSms) -> SendResult:
        log.info(
            "SMS to %s (%d segment(s)):\n%s", mask_phone(sms.to), sms_segments(sms.body), mask_digits(sms.body)
        )
        return SendResult(self.name, f"console-{sms.message_id}", "logged")


def from_config(config: Mapping[str, Any]) -> ConsoleClient:
    return ConsoleClient()
