"""The seam every outside call goes through (utility.calls), on a test's own Redis client:
what utility.services does for an app, for tests that build their backends by hand."""
from __future__ import annotations

import redis

from state.store import Store
from utility import calls, vending
from utility.billing import call_policy as billing_policy

BUILTIN_VENDING = vending.call_policy(vending.VendingSettings("builtin"))
BILLING = billing_policy()


def seam_on(client: redis.Redis, failures: int = 5, reset: float = 30.0) -> calls.Seam:
    """A seam whose switches and breakers live in ``client``'s Redis (fakeredis or real)."""
    return calls.Seam(client, Store.from_client(client).jobs, failures, reset)
