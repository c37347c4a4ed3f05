"""Per-phone limits on actions that cost someone an SMS or a payment prompt.

A resend of the last token, a payment request sent to a payer's handset: each is one
Redis script call that counts the action in a sliding window and refuses it when any of
the action's limits (e.g. one a minute and three an hour) is reached. The key carries
the phone's hash tag, so a hop that checks a limit stays in the phone's slot.

Limits are configured as text (``"1/60,3/3600"``: one per 60 s and three per hour) or as
a list of ``[count, seconds]`` pairs; an empty value means no limit.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from state import keys

if TYPE_CHECKING:
    from state.store import TextRedis


@dataclass(frozen=True)
class Limit:
    count: int
    per: float  # seconds


class LimitReached(Exception):
    """The action is refused for now; ``retry_after`` seconds until it is allowed again."""

    def __init__(self, action: str, retry_after: float) -> None:
        super().__init__(f"{action} limit reached; allowed again in {retry_after:.0f} s")
        self.action = action
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        """Whole minutes to tell the customer (at least 1)."""
        return max(1, int(-(-self.retry_after // 60)))


def parse(value: Any) -> tuple[Limit, ...]:
    """``"1/60,3/3600"`` or ``[[1, 60], [3, 3600]]`` as limits; raises ValueError."""
    if value in (None, "", [], ()):
        return ()
    if isinstance(value, str):
        pairs: list[Any] = [item.split("/") for item in value.replace(" ", "").split(",") if item]
    else:
        pairs = list(value)
    limits = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"a limit is COUNT/SECONDS, not {pair!r}")
        count, per = int(pair[0]), float(pair[1])
        if count < 1 or per <= 0:
            raise ValueError(f"a limit needs a count >= 1 and a period > 0, not {pair!r}")
        limits.append(Limit(count, per))
    return tuple(limits)


# A sorted set of the action's timestamps. Refuse when a window already holds `count`
# entries (returning when its oldest leaves the window); else record this one.
_TAKE = """
local now = tonumber(ARGV[1])
local longest = 0
local wait = 0
for i = 3, #ARGV, 2 do
  local count, per = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if per > longest then longest = per end
  local inside = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - per), '+inf')
  if #inside >= count then
    local oldest = tonumber(redis.call('ZSCORE', KEYS[1], inside[#inside - count + 1]))
    local this_wait = oldest + per - now
    if this_wait > wait then wait = this_wait end
  end
end
if wait > 0 then return tostring(wait) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(longest * 1000) + 1000)
return '0'
"""


def take(
    client: TextRedis, phone: str, action: str, limits: tuple[Limit, ...], now: float | None = None
) -> None:
    """Count one ``action`` for ``phone``, or raise LimitReached (nothing is counted then)."""
    if not limits:
        return
    now = time.time() if now is None else now
    args: list[str] = [repr(now), f"{now:.6f}:{secrets.token_hex(4)}"]
    for limit in limits:
        args += [str(limit.count), repr(limit.per)]
    wait = float(client.eval(_TAKE, 1, keys.phone_limit(phone, action), *args))
    if wait > 0:
        raise LimitReached(action, wait)
