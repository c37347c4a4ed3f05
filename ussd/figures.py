"""Each screen's figures of the day, drawn on the menu map (ussd.map): the hops that showed
it, the inputs refused on it (the polite retry), and the sessions that ended on it without
reaching an end (drop-offs: Africa's Talking's session-end report, Incomplete or Failed).

Counted in the process's memory and written to Redis with the console's other figures by
state.tally's flush, every few seconds: a hop pays a lock and a dict increment, never a round
trip. One hash per UTC day (keys.screen_figures), kept as long as the console's figures.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask

from state import keys, tally
from state.store import TextRedis

HOPS, DROP_OFFS, INVALID = "hops", "drop_offs", "invalid"
FIELDS = (HOPS, DROP_OFFS, INVALID)
KEPT = tally.KEPT_DAYS * 86400  # seconds


@dataclass
class Figures:
    hops: int = 0
    drop_offs: int = 0
    invalid: int = 0


def today() -> str:
    return tally.this_minute(time.time()).day


def _count(app: Flask, day: str, screen: str, what: str) -> None:
    tally.of(app).count(keys.screen_figures(day), f"{screen}:{what}", KEPT)


def hop(app: Flask, screen: str, refused: Iterable[str] = ()) -> None:
    """A hop showed ``screen``, after refusing an input on each of ``refused``."""
    day = today()
    _count(app, day, screen, HOPS)
    for where in refused:
        _count(app, day, where, INVALID)


def drop_off(app: Flask, screen: str) -> None:
    """A session ended on ``screen`` without the customer reaching an end."""
    _count(app, today(), screen, DROP_OFFS)


def read(client: TextRedis, day: str) -> dict[str, Figures]:
    """``day``'s figures by screen (YYYY-MM-DD, UTC), as flushed so far by every process."""
    found: dict[str, Figures] = {}
    for field, value in client.hgetall(keys.screen_figures(day)).items():
        screen, _, what = field.rpartition(":")
        if screen and what in FIELDS:
            setattr(found.setdefault(screen, Figures()), what, int(value))
    return found
