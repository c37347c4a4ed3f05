"""Jobs the fault tests queue; importable by a `guichet worker` in another process."""
from __future__ import annotations

import time

import redis

from state.store import get_redis


def remember(key: str, value: str = "done") -> str:
    get_redis().set(key, value)
    return value


def slow_the_first_time(key: str, seconds: float = 30.0) -> int:
    """Counts its runs in ``key``; the first one hangs (for its worker to be killed)."""
    runs = int(get_redis().incr(key))
    if runs == 1:
        time.sleep(seconds)
    get_redis().set(key + ":done", runs)
    return runs


def fail_on_redis_the_first_time(key: str) -> int:
    """Raises a Redis timeout on its first run, as a job does while Redis is frozen."""
    runs = int(get_redis().incr(key))
    if runs == 1:
        raise redis.TimeoutError("Timeout reading from socket")
    return runs


def find_the_lock_held_the_first_time(key: str) -> int:
    """Cannot get a lock on its first run, as a job does behind a holder an outage left."""
    from state.locks import LockTimeout

    runs = int(get_redis().incr(key))
    if runs == 1:
        raise LockTimeout("guichet:{order:X}:lock")
    return runs
