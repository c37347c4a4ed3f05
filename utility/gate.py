"""What every request passes before its view: a request rate per source address, and a
bound on its body.

**Rates.** Each route group has its limit, ``COUNT/SECONDS`` (``RATE_LIMIT_USSD``, ``_SMS``,
``_PAYMENTS``, ``_ADMIN``; ``0``: none): a token bucket per source address that holds COUNT
requests and refills in SECONDS. The source is the peer's address, or the client's through
TRUSTED_PROXIES only (utility.access.source); IPv6 addresses count by their /64, which one
subscriber holds whole. Health probes and unknown paths are not counted.

The buckets live in this process, not in Redis: a USSD hop is about a millisecond of work,
and a round trip to count it would be paid by every hop; the gate costs a hop about 5 µs
(timeit, a 2-CPU machine). So each serving process counts alone, and
what one address may send is the limit times the serving processes (WEB_CONCURRENCY), give
or take how the server spreads connections. The memory is bounded: at most MAX_SOURCES
buckets a process; past that, full buckets (as good as new) are dropped first, then the
oldest, which may hand a flooding address a fresh bucket: the bound is what it is for.

Over the limit, a USSD hop gets what its gateway expects, a polite END (the admission
control's "busy" text, via the gateway's ``respond``); anything else 429 with Retry-After.
Aggregators post every customer's traffic from a few addresses: the USSD and SMS defaults
sit above what one process serves, so they never bind a gateway's rush (admission control,
ussd.admission, sheds that); what they do is turn a flood from one address into cheap
refusals (microseconds, no Redis) past that rate. They do not keep a stranger from taking a
process's capacity below it: GATEWAY_IPS and CALLBACK_TOKEN (403) are what keep strangers out. A limited call is not audited: a flood of
them would write to Redis what the limit exists to spare it, and push the real entries out
of the capped audit stream; one warning is logged when an address goes over.

**Bodies.** MAX_CONTENT_LENGTH bounds every body (64 KB); the views marked ``@upload`` (a
customer file, an allow-list) take MAX_UPLOAD_LENGTH. Callbacks keep their own, tighter caps
(a USSD hop 4 KB, answered 400 as its gateway documents); this bound is what is left when a
body comes without a Content-Length (chunked), or to a view with no cap of its own. Over it,
413 with the bound in the reason, JSON on /admin; never a 500.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from state import metrics
from utility import access

log = logging.getLogger(__name__)

# path prefix -> route group; the group's limit is RATE_LIMIT_<GROUP> (app.DEFAULTS).
GROUPS = {"ussd": "RATE_LIMIT_USSD", "sms": "RATE_LIMIT_SMS", "payments": "RATE_LIMIT_PAYMENTS",
          "admin": "RATE_LIMIT_ADMIN"}
MAX_SOURCES = 10_000  # buckets a limiter keeps (a few MB at most)
EXTENSION = "guichet.gate"
UPLOAD = "guichet_upload"  # the attribute @upload sets on a view

View = TypeVar("View", bound=Callable[..., Any])


def upload(view: View) -> View:
    """Mark a view that takes a file (MAX_UPLOAD_LENGTH instead of MAX_CONTENT_LENGTH).
    functools.wraps copies the mark, so it may sit above or below @require_admin."""
    setattr(view, UPLOAD, True)
    return view


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    @classmethod
    def parse(cls, value: Any, name: str) -> Rate | None:
        """``"100/10"`` (100 requests, refilled in 10 s); ``0``, ``""`` or None: no limit."""
        if value in (None, "", 0, "0"):
            return None
        count, slash, seconds = str(value).partition("/")
        try:
            rate = cls(int(count), float(seconds) if slash else 1.0)
        except ValueError:
            raise ValueError(f"GUICHET_{name} is {value!r}: give COUNT/SECONDS, like 100/10, or 0 for none") from None
        if rate.count < 1 or not rate.seconds > 0:
            raise ValueError(f"GUICHET_{name} is {value!r}: COUNT and SECONDS must be above 0")
        return rate

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


class Limiter:
    """Token buckets per (group, source), in this process; thread-safe."""

    def __init__(self, rates: Mapping[str, Rate], clock: Callable[[], float] = time.monotonic,
                 max_sources: int = MAX_SOURCES) -> None:
        self.rates = dict(rates)
        self.clock = clock
        self.max_sources = max_sources
        self.limited = 0  # requests turned away, for the curious (a shell, a test)
        self._buckets: dict[tuple[str, str], list[float]] = {}  # [tokens, when, over: 1.0 | 0.0]
        self._lock = threading.Lock()

    def wait(self, group: str, source: str) -> float:
        """0 when the request may go on (a token taken); else the seconds until it may."""
        rate = self.rates.get(group)
        if rate is None:
            return 0.0
        per_second = rate.count / rate.seconds
        now = self.clock()
        key = (group, source)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_sources:
                    self._prune(now)
                bucket = self._buckets[key] = [float(rate.count), now, 0.0]
            tokens = min(float(rate.count), bucket[0] + (now - bucket[1]) * per_second)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0], bucket[2] = tokens - 1.0, 0.0
                return 0.0
            bucket[0] = tokens
            self.limited += 1
            first = bucket[2] == 0.0
            bucket[2] = 1.0
        if first:
            log.warning("%s over the %s request limit (%s a process): turned away until it slows down",
                        source, group, rate)
        return (1.0 - tokens) / per_second

    def _prune(self, now: float) -> None:
        """Drop the buckets that are full again (nothing lost: a new one is the same), then,
        if that is not enough, the oldest half."""
        for key, bucket in list(self._buckets.items()):
            rate = self.rates[key[0]]
            if now - bucket[1] >= rate.seconds:
                del self._buckets[key]
        if len(self._buckets) >= self.max_sources:
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def _group(path: str) -> str | None:
    head = path[1:].partition("/")[0]
    return head if head in GROUPS else None


def _counted_as(source: str) -> str:
    """A source as it is counted: an IPv6 address by its /64."""
    if ":" not in source:
        return source
    try:
        return str(ipaddress.ip_network(f"{source}/64", strict=False))
    except ValueError:
        return source


def limiter(app: Flask) -> Limiter:
    built: Limiter = app.extensions[EXTENSION]
    return built


def init_app(app: Flask) -> None:
    """Parse the limits once (bad ones fail when the app is made), and put the gate in
    front of every view: app-level, so it runs before the blueprints' own checks."""
    rates = {group: rate for group, name in GROUPS.items() if (rate := Rate.parse(app.config[name], name))}
    app.extensions[EXTENSION] = Limiter(rates)
    int(app.config["MAX_UPLOAD_LENGTH"])  # a bad value fails now, not on an upload
    app.before_request(_gate)
    app.register_error_handler(RequestEntityTooLarge, _too_large)


def _gate() -> Response | None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    group = _group(request.path)
    if group is not None:
        source = _counted_as(access.source(request, access.trusted_proxies(app)))
        wait = limiter(app).wait(group, source)
        if wait:
            return _limited(group, source, wait)
    view = app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, UPLOAD, False):
        request.max_content_length = int(app.config["MAX_UPLOAD_LENGTH"])
    if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        _read_chunked_body()
    return None


def _read_chunked_body() -> None:
    """A body sent without a Content-Length (chunked), read now up to one byte past its
    bound. Werkzeug stops reading such a body at the bound without a word: a view would get
    the first 64 KB of a 70 KB body (a customer file cut short, imported as if whole). Read
    here, it is kept for the view (get_data, form), or refused with 413. Before the view: a
    body refused this way is not audited (no key has been looked at yet). Rare: gateways and
    providers send a Content-Length, and a hop pays nothing for this."""
    bound = request.max_content_length
    if bound is None:
        return
    request.max_content_length = bound + 1
    try:
        data = request.get_data(cache=True)  # LimitedStream: bound + 1 bytes at most
    finally:
        request.max_content_length = bound
    if len(data) > bound:
        raise RequestEntityTooLarge()


def _limited(group: str, source: str, wait: float) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if request.endpoint == "ussd.hop":
        answer = _ussd_busy()
        if answer is not None:
            return answer
    retry = str(max(1, math.ceil(wait)))
    reason = f"too many requests from {source}: at most {limiter(app).rates[group]} here; retry in {retry} s"
    response = jsonify(error=reason) if group == "admin" else Response(reason + "\n", mimetype="text/plain")
    response.status_code = 429
    response.headers["Retry-After"] = retry
    return response


def _ussd_busy() -> Response | None:
    """The gateway's polite END with the busy text (what admission control answers), so the
    handset shows a message, not an error; None for a path that names no gateway."""
    from ussd.gateways import GATEWAYS
    from ussd.screens import Screen
    from ussd.views import busy_text

    gateway = (request.view_args or {}).get("gateway", "")
    adapter = GATEWAYS.get(gateway)
    if adapter is None:
        return None
    metrics.hop(gateway, "", "limited")
    return adapter.respond(Screen(busy_text(), end=True))


def _too_large(exc: RequestEntityTooLarge) -> Response:
    """413 with the bound in the reason (Werkzeug's page says none)."""
    bound = request.max_content_length
    if bound is not None and (request.content_length or 0) > bound:
        reason = f"body over {bound} bytes"
    elif bound is not None and request.content_length is None:
        reason = f"body over {bound} bytes (sent without a Content-Length)"
    else:
        reason = (f"form over its bounds: {request.max_form_memory_size} bytes a field, "
                  f"{request.max_form_parts} parts")
    response = jsonify(error=reason) if request.path.startswith("/admin/") else Response(
        reason + "\n", mimetype="text/plain")
    response.status_code = 413
    return response
