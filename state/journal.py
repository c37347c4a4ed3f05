"""The journal: an append-only Redis stream of every state change.

Support staff and reconciliation read it to answer "what happened to this session /
this payment?". Entries are flat string fields so `XRANGE` output reads on its own.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from state import keys

if TYPE_CHECKING:
    from state.store import TextCommands, TextRedis

MAX_ENTRIES = 1_000_000  # approximate cap: the journal is an audit trail, not a database


def entry(kind: str, **fields: Any) -> dict[str, str]:
    """One journal entry: ``kind`` (what changed) and its fields, all as strings."""
    record = {"kind": kind, "at": f"{time.time():.3f}"}
    record.update({name: "" if value is None else str(value) for name, value in fields.items()})
    return record


def append(pipe: TextCommands, kind: str, **fields: Any) -> None:
    """Queue one entry on ``pipe`` (a client or a pipeline: journal with the change it records)."""
    write(pipe, entry(kind, **fields))


def write(pipe: TextCommands, record: dict[str, str]) -> None:
    """Queue an entry made earlier (``entry``) on ``pipe``."""
    pipe.xadd(keys.journal(), record, maxlen=MAX_ENTRIES, approximate=True)


def read(client: TextRedis, count: int = 100) -> list[dict[str, str]]:
    """The latest ``count`` entries, oldest first."""
    rows = client.xrevrange(keys.journal(), count=count)
    return [fields for _id, fields in reversed(rows)]
