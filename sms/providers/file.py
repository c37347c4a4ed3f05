"""The file provider: appends one JSON line per message to GUICHET_SMS_FILE.

For development and end-to-end tests that need the full text (the console provider masks
tokens). Each line: to, body, segments, at (UTC, ISO 8601), message_id.
"""
from __future__ import annotations

import datetime
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sms.client import OutgoingSms, SendResult, SmsClient, SmsError
from sms.gsm import sms_segments
from sms.providers import setting

# One lock per file for the whole process: clients built by different apps may share a file.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path.resolve()), threading.Lock())


class FileClient(SmsClient):
    name = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = _lock_for(self.path)

    def try_send(self, sms: OutgoingSms) -> SendResult:
        line = json.dumps(
            {
                "to": sms.to,
                "body": sms.body,
                "segments": sms_segments(sms.body),
                "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                "message_id": sms.message_id,
            },
            ensure_ascii=False,
        )
        try:
            with self.lock, self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")  # one write per line: readers never see half a message
        except OSError as exc:
            raise SmsError(f"file: cannot write {self.path}: {exc.strerror}", retryable=True) from exc
        return SendResult(self.name, f"file-{sms.message_id}", "written")


def from_config(config: Mapping[str, Any]) -> FileClient:
    return FileClient(setting(config, "SMS_FILE", "GUICHET_SMS_PROVIDER=file") or "")
