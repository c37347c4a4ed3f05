"""A process's copy of a few records kept in Redis, by key (the campaigns, the incidents):
what a menu or a keyword reads on every hop without a round trip.

The copy is read again once it is ``fresh_for`` seconds old, by one thread while the others
go on with the copy they have. A key not in the copy (made in another process a moment ago)
reads again, at most once every ``miss_every`` seconds. While Redis does not answer, the
last copy serves and is tried again ``miss_every`` seconds later; without one, the error
goes up. A process that changed a record ``forget``s its copy, so its next read is fresh
(others catch up within ``fresh_for``).
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import redis

log = logging.getLogger(__name__)

T = TypeVar("T")


class KeyedCopy(Generic[T]):
    def __init__(self, name: str, read: Callable[[], dict[str, T]], clock: Callable[[], float],
                 fresh_for: float, miss_every: float) -> None:
        self.name = name  # for the log: "campaigns", "incidents"
        self.read = read
        self.clock = clock
        self.fresh_for = fresh_for
        self.miss_every = miss_every
        self._copy: dict[str, T] | None = None
        self._copied_at = -math.inf
        self._refreshing = threading.Lock()

    def get(self, force: bool = False) -> dict[str, T]:
        copy = self._copy
        if copy is not None and not force and self.clock() - self._copied_at < self.fresh_for:
            return copy
        # One thread re-reads; the others go on with the copy they have, if any.
        if not self._refreshing.acquire(blocking=copy is None):
            return copy if copy is not None else {}
        try:
            try:
                fresh = self.read()
            except redis.RedisError:
                if copy is None:
                    raise
                log.warning("%s: Redis did not answer, the copy of %.0f s ago serves meanwhile",
                            self.name, self.clock() - self._copied_at)
                self._copied_at = self.clock() - self.fresh_for + self.miss_every  # try again soon
                return copy
            self._copy, self._copied_at = fresh, self.clock()
            return fresh
        finally:
            self._refreshing.release()

    def lookup(self, key: str) -> T | None:
        """The record of ``key``; one not in the copy reads again, at most every ``miss_every``."""
        found = self.get().get(key)
        if found is None and self.clock() - self._copied_at >= self.miss_every:
            found = self.get(force=True).get(key)
        return found

    def forget(self) -> None:
        self._copied_at = -math.inf
