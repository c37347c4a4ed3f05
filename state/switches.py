"""Operator switches: a backend an operator (or a test, or a demo) has switched off.

The built-in backends consult them, so that "vending is down" can be shown end to end
without breaking anything: customers are told the truth, payments are still taken
where that is safe, and orders wait to be fulfilled when the switch goes back up.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from state import keys

if TYPE_CHECKING:
    from state.store import TextRedis

BACKENDS = ("vending", "billing", "payments")


def is_down(client: TextRedis, backend: str) -> bool:
    return client.hget(keys.switches(), backend) == "down"


def set_down(client: TextRedis, backend: str, down: bool) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
    if down:
        client.hset(keys.switches(), backend, "down")
    else:
        client.hdel(keys.switches(), backend)


def states(client: TextRedis) -> dict[str, str]:
    down = client.hgetall(keys.switches())
    return {backend: down.get(backend, "up") for backend in BACKENDS}
