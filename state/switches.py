"""Operator switches: a backend an operator (or a test, or a demo) has switched off.

The built-in backends consult them, so that "vending is down" can be shown end to end
without breaking anything: customers are told the truth, payments are still taken
where that is safe, and orders wait to be fulfilled when the switch goes back up.
"""
from __future__ import annotations

import redis

from state import keys

BACKENDS = ("vending", "billing", "payments")


def is_down(client: redis.Redis, backend: str) -> bool:
    return client.hget(keys.switches(), backend) == "down"


def set_down(client: redis.Redis, backend: str, down: bool) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
    if down:
        client.hset(keys.switches(), backend, "down")
    else:
        client.hdel(keys.switches(), backend)


def states(client: redis.Redis) -> dict[str, str]:
    down = client.hgetall(keys.switches())
    return {backend: down.get(backend, "up") for backend in BACKENDS}
