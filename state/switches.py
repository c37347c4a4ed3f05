"""Operator switches, kept in Redis so that every process sees them.

Backend switches: a built-in backend an operator (or a test, or a demo) has switched off.
The seam every outside call goes through (utility.calls) consults them, so that "vending
is down" can be shown end to end without breaking anything: customers are told the truth,
payments are still taken where that is safe, and orders wait to be fulfilled when the
switch goes back up. The seam reads them from the process's copy (``backends_down(app)``),
not from Redis: a switch set in this process (``set_down``) takes effect here at once, in
the other processes within SERVICES_SECONDS.

Service switches: a customer-facing service (buy, bill, campaigns) an operator has turned
off, with a message for customers in each language (POST /admin/services/<name>). They
override everything, backends and breakers alike: the service's main-menu entry shows the
operator's message instead. Read on a hop from an in-process copy (``services(app)``).
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask

from state import keys
from state.store import get_redis

if TYPE_CHECKING:
    from state.store import TextRedis

log = logging.getLogger(__name__)

BACKENDS = ("vending", "billing", "payments")


def is_down(client: TextRedis, backend: str) -> bool:
    return client.hget(keys.switches(), backend) == "down"


def set_down(client: TextRedis, backend: str, down: bool) -> None:
    """Switch a built-in backend off (or on again). Every copy of this process reads the
    switches again at its next look (``_changed_here``); other processes within SERVICES_SECONDS."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: one of {', '.join(BACKENDS)}")
    if down:
        client.hset(keys.switches(), backend, "down")
    else:
        client.hdel(keys.switches(), backend)
    _changed_here()


def states(client: TextRedis) -> dict[str, str]:
    down = client.hgetall(keys.switches())
    return {backend: down.get(backend, "up") for backend in BACKENDS}


# -- customer-facing services ------------------------------------------------------------------
SERVICES = ("buy", "bill", "campaigns")
MESSAGE_MAX = 120  # GSM-7 septets: the message fits a USSD screen with its title and "0. Retour"
SERVICES_SECONDS = 1.0  # how stale the in-process copy behind services() may be
EXTENSION = "guichet.switches.services"


@dataclass(frozen=True)
class ServiceSwitch:
    """One service as the operator left it: on (the default), or off with a message."""

    enabled: bool = True
    message: tuple[tuple[str, str], ...] = ()  # (language, text) while off; a tuple: immutable
    at: str = ""  # when it was switched off (ISO 8601, UTC)

    def text(self, lang: str) -> str | None:
        """The operator's message in ``lang``, else in the first language it was given in;
        None when the service is on or has no message (the menu's own words then)."""
        if self.enabled or not self.message:
            return None
        return dict(self.message).get(lang, self.message[0][1])

    def to_json(self) -> dict[str, object]:
        return {"enabled": self.enabled, "message": dict(self.message) or None, "at": self.at or None}

    @classmethod
    def from_json(cls, raw: str) -> ServiceSwitch:
        data = json.loads(raw)
        return cls(bool(data.get("enabled", True)), tuple(dict(data.get("message") or {}).items()),
                   str(data.get("at") or ""))


ON = ServiceSwitch()


def set_service(client: TextRedis, name: str, enabled: bool, message: Mapping[str, str] | None = None) -> ServiceSwitch:
    """Turn service ``name`` on, or off with ``message`` (language -> text, checked by the
    caller: utility.admin). Every process sees it within SERVICES_SECONDS."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}: one of {', '.join(SERVICES)}")
    if enabled:
        client.hdel(keys.service_switches(), name)
        return ON
    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    switch = ServiceSwitch(False, tuple((message or {}).items()), at)
    client.hset(keys.service_switches(), name, json.dumps(switch.to_json(), ensure_ascii=False))
    return switch


def read_services(client: TextRedis) -> dict[str, ServiceSwitch]:
    """Every service as it stands in Redis now (one round trip)."""
    return _services_of(client.hgetall(keys.service_switches()))


def _services_of(stored: Mapping[str, str]) -> dict[str, ServiceSwitch]:
    read: dict[str, ServiceSwitch] = {}
    for name in SERVICES:
        raw = stored.get(name)
        try:
            read[name] = ServiceSwitch.from_json(raw) if raw else ON
        except (ValueError, TypeError, AttributeError):
            log.error("service switch %s: unreadable record %r: treated as on", name, raw[:100] if raw else raw)
            read[name] = ON
    return read


# Backend switches set in this process so far (set_down): a copy made before the last one
# reads Redis again at its next look, whichever app of the process set it. (A service
# switch is set by the admin API only, which forgets its app's copy itself.)
_changes = 0
_changes_lock = threading.Lock()


def _changed_here() -> None:
    global _changes
    with _changes_lock:
        _changes += 1


class _Copy:
    """A process's copy of both kinds of switch: one thread refreshes it, the others keep
    reading the copy they have meanwhile (as utility.campaigns' active())."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceSwitch] = {name: ON for name in SERVICES}
        self.backends_down: frozenset[str] = frozenset()
        self.copied_at = -math.inf
        self.changes = -1  # _changes when it was read
        self.refreshing = threading.Lock()


def _copy(app: Flask) -> _Copy:
    """The process's copy, read again (both hashes, one round trip) once it is
    SERVICES_SECONDS old, or at once after a switch was set in this process. While Redis
    cannot be read, the last copy serves (every service on, every backend up, when there
    was none)."""
    copy: _Copy | None = app.extensions.get(EXTENSION)
    if copy is None:
        copy = app.extensions.setdefault(EXTENSION, _Copy())
    set_here = copy.changes != _changes
    if not set_here and time.monotonic() - copy.copied_at < SERVICES_SECONDS:
        return copy
    # Merely old, one thread reads while the others go on with the copy. A switch set here
    # is waited for: the operator's next request must not be served from before it.
    if not copy.refreshing.acquire(blocking=set_here):
        return copy
    changes = _changes  # before reading: a switch set during the read is read again next time
    if changes == copy.changes and time.monotonic() - copy.copied_at < SERVICES_SECONDS:
        copy.refreshing.release()
        return copy  # read meanwhile by the thread this one waited for
    try:
        pipe = get_redis(app).pipeline(transaction=False)
        pipe.hgetall(keys.service_switches())
        pipe.hgetall(keys.switches())
        stored, backends = pipe.execute()
        copy.services = _services_of(stored)
        copy.backends_down = frozenset(name for name, state in backends.items() if state == "down")
    except redis.RedisError as exc:
        log.warning("switches: Redis did not answer (%s); the copy serves meanwhile", type(exc).__name__)
    finally:
        copy.copied_at = time.monotonic()
        copy.changes = changes
        copy.refreshing.release()
    return copy


def services(app: Flask) -> dict[str, ServiceSwitch]:
    """Each customer-facing service (buy, bill, campaigns) as the operator left it, from this
    process's copy: at most SERVICES_SECONDS old, no Redis round trip on most calls (what a
    USSD menu asks on every hop)."""
    return _copy(app).services


def backends_down(app: Flask) -> frozenset[str]:
    """The built-in backends an operator switched off, from the same copy: what a menu asks
    to change what it offers, and what the seam (utility.calls) asks before each call to a
    built-in backend, without a Redis round trip on most calls."""
    return _copy(app).backends_down


def forget_services(app: Flask) -> None:
    """The app's next read of the switches asks Redis: this process switched a service, or
    a switch was written to Redis some other way, which the copy would otherwise see within
    SERVICES_SECONDS. (set_down does this for every app of the process itself.)"""
    copy: _Copy | None = app.extensions.get(EXTENSION)
    if copy is not None:
        copy.changes = -1  # as after a set_down: the next read waits for Redis's answer
