"""Short-lived locks in Redis, for work that must not run twice at once on one thing
(a USSD session, a meter's monthly usage)."""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from state.store import TextCommands, TextRedis

# Delete the lock only if it is still ours: a holder slower than the lock's expiry must
# not free the lock another has taken since.
#
# Sent whole with EVAL, never through redis-py's Script (register_script): on a pipeline
# a Script costs a SCRIPT EXISTS round trip before every execute, and EVALSHA needs NOSCRIPT
# handling after a restart or a SCRIPT FLUSH. The body is under 100 bytes and Redis caches
# it by its SHA1 on first use: measured on Redis 7, EVAL and EVALSHA cost the same (~2 us).
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LockTimeout(Exception):
    """The lock stayed held by someone else for longer than we could wait."""


def new_token() -> str:
    return secrets.token_hex(8)


def backoff(deadline: float, delay: float, what: str) -> float:
    """Sleep before trying a held lock again; raise once ``deadline`` has passed."""
    if time.monotonic() >= deadline:
        raise LockTimeout(what)
    time.sleep(delay)
    return min(delay * 2, 0.05)


def release(client: TextCommands, key: str, token: str) -> object:
    """Delete ``key`` if it still holds ``token``: at once on a client (1 if deleted, else
    0), or queued on a pipeline, to ride along with the holder's last writes."""
    return client.eval(RELEASE_SCRIPT, 1, key, token)


@contextmanager
def hold(client: TextRedis, key: str, wait: float = 5.0, expiry: float = 30.0) -> Iterator[None]:
    """Hold ``key`` as a lock; wait up to ``wait`` seconds for it, never hold past ``expiry``."""
    token = new_token()
    deadline = time.monotonic() + wait
    delay = 0.002
    while not client.set(key, token, nx=True, px=int(expiry * 1000)):
        delay = backoff(deadline, delay, key)
    try:
        yield
    finally:
        release(client, key, token)
