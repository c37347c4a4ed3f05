"""Figures for the console, counted in each process's memory and added to Redis every few seconds.

A hop cannot spare a round trip to count itself (README "Serving"), and an SMS state change
should not pay one either. So each process adds up in a dict, and a daemon thread writes the
sums every FLUSH_EVERY seconds in one pipeline: HINCRBY for counts, PFADD for distinct
members (the sessions seen in a minute). Every key shares the tag ``{tally}``: one slot, one
pipeline, on a Redis Cluster too. What a process had not flushed when it died is lost; these
are figures to watch, the journal and the metrics are the records.

    hops     hash per UTC day, field "HH:MM": hops answered in that minute
    sessions HyperLogLog per UTC minute: the dialogues that had a hop in it
    sms      hash per UTC day: SMS state changes (queued, sent, delivered, failed, unconfirmed)
    orders   hash per UTC day: order transitions by destination state
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import redis
from flask import Flask, current_app, has_app_context

from state import keys
from state.store import TextRedis, get_redis

log = logging.getLogger(__name__)

FLUSH_EVERY = 5.0  # seconds: how stale the console's figures may be
KEPT_DAYS = 35  # a month of daily figures, and a few days to compare with
MINUTE_KEPT = 2 * 3600  # seconds a minute's distinct sessions are kept
EXTENSION = "guichet.tally"


def day_of(moment: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(moment))


def minute_of(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(moment))


class Tally:
    """One process's unflushed figures for one Redis."""

    def __init__(self, client: Callable[[], TextRedis]) -> None:
        self.client = client
        self._counts: Counter[tuple[str, str]] = Counter()
        self._members: dict[str, set[str]] = {}
        self._ttl: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid = 0  # the process whose flusher thread knows this tally (a fork starts its own)

    def count(self, key: str, field: str, ttl: int, amount: int = 1) -> None:
        with self._lock:
            self._counts[key, field] += amount
            self._ttl[key] = ttl
        self._ensure_flushing()

    def member(self, key: str, member: str, ttl: int) -> None:
        with self._lock:
            self._members.setdefault(key, set()).add(member)
            self._ttl[key] = ttl
        self._ensure_flushing()

    def flush(self) -> None:
        """Write what was counted since the last flush (a failed write is kept for the next)."""
        with self._lock:
            counts, members, ttl = self._counts, self._members, self._ttl
            self._counts, self._members, self._ttl = Counter(), {}, {}
        if not counts and not members:
            return
        try:
            pipe = self.client().pipeline(transaction=False)
            for (key, field), amount in counts.items():
                pipe.hincrby(key, field, amount)
            for key, found in members.items():
                pipe.pfadd(key, *found)
            for key, seconds in ttl.items():
                pipe.expire(key, seconds)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("tally: could not write the console's figures (%s); kept for the next try", exc)
            with self._lock:
                self._counts.update(counts)
                for key, found in members.items():
                    self._members.setdefault(key, set()).update(found)
                self._ttl.update(ttl)

    def _ensure_flushing(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            _flush_from_thread(self)


# One thread per process flushes every app's tally (a test run makes hundreds of apps); a fork
# (gunicorn's workers) starts its own at its first count.
_live: weakref.WeakSet[Tally] = weakref.WeakSet()
_flusher_pid = 0
_flusher_lock = threading.Lock()


def _flush_from_thread(tally: Tally) -> None:
    global _flusher_pid
    with _flusher_lock:
        _live.add(tally)
        if _flusher_pid == os.getpid():
            return
        _flusher_pid = os.getpid()
    threading.Thread(target=_flush_forever, name="tally-flush", daemon=True).start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY)
        for tally in list(_live):
            try:
                tally.flush()
            except Exception:  # never let the figures' thread die for one bad flush
                log.exception("tally: flush failed")


def of(app: Flask) -> Tally:
    tally: Tally | None = app.extensions.get(EXTENSION)
    if tally is None:
        tally = app.extensions.setdefault(EXTENSION, Tally(lambda: get_redis(app)))
    return tally


# -- what is counted -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Minute:
    """A minute's names, worked out once a minute rather than on every hop."""

    number: int  # minutes since the epoch
    day: str  # YYYY-MM-DD (UTC)
    hops_key: str
    hhmm: str
    sessions_key: str


def _minute_named(number: int) -> _Minute:
    moment = number * 60
    day = day_of(moment)
    return _Minute(number, day, keys.tally(f"hops:{day}"), time.strftime("%H:%M", time.gmtime(moment)),
                   keys.tally(f"sessions:{minute_of(moment)}"))


_this_minute = _minute_named(0)


def this_minute(moment: float) -> _Minute:
    global _this_minute
    named = _this_minute
    if named.number != int(moment // 60):
        named = _this_minute = _minute_named(int(moment // 60))  # a plain swap: threads agree on either
    return named


def hop(app: Flask, session_id: str, now: float | None = None) -> None:
    """A hop answered: its minute's count, and its dialogue among the minute's sessions."""
    minute = this_minute(time.time() if now is None else now)
    tally = of(app)
    tally.count(minute.hops_key, minute.hhmm, KEPT_DAYS * 86400)
    tally.member(minute.sessions_key, session_id, MINUTE_KEPT)


def event(app: Flask | None, what: str, state: str, now: float | None = None) -> None:
    """An SMS or an order reached ``state`` (``what``: "sms" or "orders"); ``app`` None: the
    current app's, if there is one (a domain object that does not know its app)."""
    if app is None:
        if not has_app_context():
            return
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    moment = time.time() if now is None else now
    of(app).count(keys.tally(f"{what}:{day_of(moment)}"), state, KEPT_DAYS * 86400)


# -- read back -----------------------------------------------------------------------------------
def _last_minutes(minutes: int, now: float | None) -> list[float]:
    """The starts of the last ``minutes`` minutes, this one included, oldest first."""
    end = (time.time() if now is None else now) // 60 * 60
    return [end - 60 * back for back in range(minutes - 1, -1, -1)]


def hops_per_minute(client: TextRedis, minutes: int = 60, now: float | None = None) -> list[tuple[float, int]]:
    """The last ``minutes`` minutes, oldest first: (the minute's start, hops answered)."""
    starts = _last_minutes(minutes, now)
    days = sorted({day_of(start) for start in starts})
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(keys.tally(f"hops:{day}"))
    by_day = dict(zip(days, pipe.execute(), strict=True))
    return [(start, int(by_day[day_of(start)].get(time.strftime("%H:%M", time.gmtime(start)), 0)))
            for start in starts]


def sessions_per_minute(client: TextRedis, minutes: int = 60, now: float | None = None) -> list[tuple[float, int]]:
    """The last ``minutes`` minutes, oldest first: (the minute's start, dialogues with a hop in it)."""
    starts = _last_minutes(minutes, now)
    pipe = client.pipeline(transaction=False)
    for start in starts:
        pipe.pfcount(keys.tally(f"sessions:{minute_of(start)}"))
    return [(start, int(count)) for start, count in zip(starts, pipe.execute(), strict=True)]


def sessions_in_flight(client: TextRedis, window: int, now: float | None = None) -> int:
    """Distinct dialogues with a hop in the last ``window`` seconds (a session's lifetime)."""
    end = time.time() if now is None else now
    minutes = {minute_of(end - back) for back in range(0, max(window, 60) + 1, 60)}
    return int(client.pfcount(*(keys.tally(f"sessions:{minute}") for minute in sorted(minutes))))


def day_counts(client: TextRedis, what: str, day: str | None = None) -> dict[str, int]:
    """Today's (or ``day``'s) SMS or order counts by state."""
    found = client.hgetall(keys.tally(f"{what}:{day or day_of(time.time())}"))
    return {state: int(count) for state, count in found.items()}

