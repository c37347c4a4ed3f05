"""The seam every outside call goes through (utility.calls), on a test's own Redis client:
what utility.services does for an app, for tests that build their backends by hand."""
from __future__ import annotations

from typing import cast

import redis

from state import switches
from state.store import Store, TextRedis
from utility import calls, vending
from utility.billing import call_policy as billing_policy

BUILTIN_VENDING = vending.call_policy(vending.VendingSettings("builtin"))
BILLING = billing_policy()


def seam_on(client: redis.Redis, failures: int = 5, reset: float = 30.0) -> calls.Seam:
    """A seam whose switches and breakers live in ``client``'s Redis (fakeredis or real). It
    has no app, so no process copy of the switches: it reads them from Redis on each call
    (an app's seam reads its copy, state.switches.backends_down)."""

    def switched_off() -> frozenset[str]:
        return frozenset(name for name, state in switches.states(cast("TextRedis", client)).items() if state == "down")

    return calls.Seam(switched_off, Store.from_client(client).jobs, failures, reset)
