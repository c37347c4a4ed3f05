"""The seam every call to an outside system goes through: vending, billing, each payment
provider, each SMS provider.

Where a backend is built (utility.services, utility.payments.provider, sms.outbox.get_client)
it is handed to ``guard(app, backend, policy)``, which wraps each of its outside calls (the
interface's methods the policy names; the object's other attributes are untouched) so that
every call goes, in this order, through:

1. the operator switch, for the built-in backends only (state.switches, POST
   /admin/backends/<name>: a simulated outage for demos and drills): switched off, the
   backend is not called and the family's "unavailable" error is raised. It is read from
   the process's copy (switches.backends_down: no round trip on most calls), which a switch
   set in this process refreshes at once, and another process's within a second;
2. the breaker (pybreaker, its state in Redis, shared by every process): after
   BREAKER_FAILURES retryable failures or timeouts in a row it opens and the backend is not
   called (the family's "unavailable" error again) until BREAKER_RESET seconds have passed;
   then calls go through as probes, and the first success closes it. An answer, even a
   refusal (an unknown meter, an amount too low), proves the system is up: only retryable
   failures and timeouts count. So does nothing that is our own Redis blinking;
3. the call, repeated (``attempts``) only for the methods the policy says are safe to
   repeat, with ``backoff`` between tries: a vend, a payment request or an SMS is never
   sent twice from here (their adapters know when that is safe, and job-level retries
   decide when to come back);
4. the metric: ``record(system, outcome, seconds)`` for each call.

An OutsideError that passes through is stamped with the precise ``system`` and with
``timed_out`` when the call failed after its whole time bound (``timeout``: the policy
states it once; the adapter's own sockets are built with the same setting, since a
blocking call cannot safely be abandoned from outside: a vend cut off mid-flight would
lose its token).

``backoff(attempt, base, cap)`` is the one retry schedule of the code base: the seam's
repeats, XMLVend's exchanges, and the job-level schedules (orders waiting for their
backend, the payment poller, the SMS outbox, campaign fulfilment), each with its own
base and cap.

``states(app)`` tells each breaker's state from an in-process copy at most
STATES_SECONDS old (no Redis round trip on most calls): what a USSD menu asks on a hop.
"""
from __future__ import annotations

import datetime
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pybreaker
import redis
import requests
from flask import Flask, current_app

from state import keys, metrics, switches
from state.store import caused_by_redis_outage, get_store
from utility.errors import OutsideError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Configuration of the breakers, read from GUICHET_<NAME> like the rest (app.DEFAULTS merges it).
DEFAULTS: dict[str, Any] = {
    "BREAKER_FAILURES": 5,  # retryable failures or timeouts in a row that open a system's breaker
    "BREAKER_RESET": 30.0,  # seconds an open breaker refuses calls before it lets a probe through
}

EXTENSION = "guichet.calls"
STATES_SECONDS = 1.0  # how stale the in-process copy behind states() may be
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_STATES = {pybreaker.STATE_CLOSED: CLOSED, pybreaker.STATE_OPEN: OPEN, pybreaker.STATE_HALF_OPEN: HALF_OPEN}

# Time, for tests to replace: the jitter of every backoff (in [0, 1)) and the seam's wait
# between two tries of a repeatable call.
jitter: Callable[[], float] = random.random
pause: Callable[[float], None] = time.sleep


# -- the one backoff -------------------------------------------------------------------------
def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1: the first retry): ``base``,
    doubling with each attempt, at most ``cap``; then "equal jitter": somewhere between half
    of that and all of it, so that calls which failed together (every order paid during an
    outage, every SMS of a provider hiccup) do not all come back at the same instant."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 64))
    return ceiling / 2 + jitter() * ceiling / 2


# -- the policy ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CallPolicy:
    """How the seam calls one outside system. Each family states its own beside its
    interface (utility.vending.call_policy, utility.billing.call_policy,
    utility.payments.call_policy, sms.providers.call_policy)."""

    system: str  # vending | billing | payments:<provider> | sms:<provider>
    methods: tuple[str, ...]  # the interface's methods that call the system
    unavailable: Callable[[str], OutsideError]  # the family's "cannot answer now", raised when not called
    timeout: float = 5.0  # seconds a call may take (the adapter's sockets use the same setting)
    attempts: int = 1  # tries of a repeatable method, at most
    repeatable: frozenset[str] = frozenset()  # methods safe to call again at once (reads)
    backoff_base: float = 0.25  # seconds before the second try, doubling...
    backoff_cap: float = 2.0  # ...up to this: a caller (a USSD hop, a job) waits meanwhile
    breaker: bool = True  # a circuit breaker around the system
    switch: str | None = None  # the operator switch of a built-in backend (state.switches.BACKENDS)
    switched: frozenset[str] = frozenset()  # the methods that switch stops (reading what is stored is not)

    def __post_init__(self) -> None:
        unknown = (self.repeatable | self.switched) - set(self.methods)
        if unknown:
            raise ValueError(f"{self.system}: {', '.join(sorted(unknown))} not among its methods")
        if self.attempts < 1:
            raise ValueError(f"{self.system}: attempts must be at least 1")


# -- the metric ----------------------------------------------------------------------------
@dataclass
class Tally:
    """Calls of one system with one outcome, in this process."""

    calls: int = 0
    seconds: float = 0.0  # their total duration
    slowest: float = 0.0


_tallies: dict[tuple[str, str], Tally] = {}
_tallies_lock = threading.Lock()

# What became of a call: it answered (ok), said no (refused), could not answer (unavailable),
# ran out of time (timeout), may or may not have acted (unconfirmed), raised something no
# adapter should (error); or it was not made: breaker open (open), operator switch (off).
OUTCOMES = ("ok", "refused", "unavailable", "timeout", "unconfirmed", "error", "open", "off")


def record(system: str, outcome: str, seconds: float) -> None:
    """Count one call of ``system``: its outcome (OUTCOMES) and how long it took. In this
    process; GET /admin/calls reads them, and GET /metrics (state.metrics) counts them too."""
    metrics.call(system, outcome, seconds)
    with _tallies_lock:
        tally = _tallies.setdefault((system, outcome), Tally())
        tally.calls += 1
        tally.seconds += seconds
        tally.slowest = max(tally.slowest, seconds)


def tallies() -> dict[str, dict[str, Tally]]:
    """A copy of this process's counts: system -> outcome -> Tally."""
    with _tallies_lock:
        copied: dict[str, dict[str, Tally]] = {}
        for (system, outcome), tally in sorted(_tallies.items()):
            copied.setdefault(system, {})[outcome] = Tally(tally.calls, tally.seconds, tally.slowest)
        return copied


def outcome_of(error: BaseException) -> str:
    if not isinstance(error, OutsideError):
        return "error"
    if error.timed_out:
        return "timeout"
    if error.retryable:
        return "unavailable"
    return "unconfirmed" if error.unconfirmed else "refused"


def _timed_out_below(error: BaseException) -> bool:
    """Whether a timeout is what ``error`` was raised from (a socket's, requests')."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, (TimeoutError, requests.Timeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def counts_against_breaker(error: BaseException) -> bool:
    """A failure that says the system is down: retryable, or out of time. Not a refusal
    (the system answered), not a bug of ours, not our own Redis being away."""
    return (isinstance(error, OutsideError) and (error.retryable or error.timed_out)
            and not caused_by_redis_outage(error))


# -- breakers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BreakerState:
    """One breaker as every process sees it (read from Redis)."""

    system: str
    state: str  # closed | open | half_open (open, and its probe is due)
    failures: int  # retryable failures or timeouts in a row
    opened_at: datetime.datetime | None
    next_probe: datetime.datetime | None  # when an open breaker lets a call through again

    def to_json(self) -> dict[str, object]:
        def when(moment: datetime.datetime | None) -> str | None:
            return moment.isoformat(timespec="seconds") if moment else None

        return {"system": self.system, "state": self.state, "failures": self.failures,
                "opened_at": when(self.opened_at), "next_probe": when(self.next_probe)}


def _storage_key(system: str, name: str) -> str:
    """A key pybreaker's CircuitRedisStorage keeps under keys.breaker(system) (state,
    fail_counter, opened_at): read here in one pipeline for every breaker at once."""
    return f"{keys.breaker(system)}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:{name}"


class _SharedStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, read at most once every READ_EVERY seconds per process.

    As pybreaker ships it, every guarded call reads the state from Redis and every success
    writes the failure count back to 0: two or three round trips more on each hop that
    calls a backend. Here the state and the failure count are read together, at most once
    a second; a success writes the count back only when it is not 0 already (as last read
    or written here); a failure, opening and closing write through at once. Another process
    sees a change within a second, as the menus do (``states``). The price: a success in one
    process may not clear, for up to a second, a failure another process just counted."""

    READ_EVERY = 1.0
    clock = staticmethod(time.monotonic)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._read_at = -float("inf")
        self._state_copy = pybreaker.STATE_CLOSED
        self._failures = 0
        super().__init__(*args, **kwargs)

    def _refresh(self) -> None:
        if self.clock() - self._read_at < self.READ_EVERY:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self._namespace("state"))
            pipe.get(self._namespace("fail_counter"))
            state, failures = pipe.execute()
        except redis.RedisError:
            self.logger.exception("RedisError: falling back to default circuit state")
            self._state_copy, self._failures = self._fallback_circuit_state, 0
            return
        if state is None:  # gone (a flushed Redis): written again as pybreaker does
            self._initialize_redis_state(self._fallback_circuit_state)
            state = self._fallback_circuit_state.encode()
        self._state_copy = state.decode() if isinstance(state, bytes) else str(state)
        self._failures = int(failures or 0)
        self._read_at = self.clock()

    @property
    def state(self) -> str:
        self._refresh()
        return self._state_copy

    @state.setter
    def state(self, state: str) -> None:
        pybreaker.CircuitRedisStorage.state.fset(self, state)  # type: ignore[attr-defined]
        self._state_copy = str(state)

    def increment_counter(self) -> None:
        super().increment_counter()
        self._failures += 1
        self._read_at = -float("inf")  # the next look reads what every process counted

    def reset_counter(self) -> None:
        self._refresh()
        if self._failures:
            super().reset_counter()
            self._failures = 0


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_close: list[Callable[[str], None]]) -> None:
        self.on_close = on_close

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: pybreaker.CircuitBreakerState | None,
                     new_state: pybreaker.CircuitBreakerState) -> None:
        # Each process logs what it notices; the change itself happened once, in Redis.
        before = old_state.name if old_state else "?"
        logger = log.warning if new_state.name == pybreaker.STATE_OPEN else log.info
        logger("breaker %s: %s -> %s", cb.name, before, new_state.name)
        if new_state.name != pybreaker.STATE_CLOSED or old_state is None or old_state.name == pybreaker.STATE_CLOSED:
            return
        for callback in self.on_close:
            try:
                callback(str(cb.name))
            except Exception:  # what follows a closing must not fail the call that closed it
                log.exception("breaker %s: a callback on its closing failed", cb.name)


class Seam:
    """The outside calls of one app: its breakers (state in Redis) and switches."""

    def __init__(self, switched_off: Callable[[], frozenset[str]], breakers_redis: redis.Redis, failures: int,
                 reset: float) -> None:
        self.switched_off = switched_off  # the operator switches that are off now (switches.backends_down)
        self.breakers_redis = breakers_redis  # bytes replies: pybreaker's Redis storage decodes them itself
        self.failures = failures
        self.reset_seconds = reset
        self._policies: dict[str, CallPolicy] = {}  # systems with a breaker, as guarded
        self._switches: dict[str, str] = {}  # system -> the operator switch of its built-in backend
        self._on_close: list[Callable[[str], None]] = []
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()
        self._copy: dict[str, str] = {}
        self._copied_at = -float("inf")

    # -- wrapping ----------------------------------------------------------------------------
    def guard(self, backend: T, policy: CallPolicy) -> T:
        """Route ``backend``'s outside calls (``policy.methods``) through the seam; returns
        the same object, so what it is and its other attributes stay as they were."""
        for name in policy.methods:
            method = getattr(backend, name, None)
            if method is None:
                continue  # a backend without that call (a minimal one): nothing to wrap
            if getattr(method, "guarded_by", None):
                raise ValueError(f"{policy.system}: {name} is guarded already")
            setattr(backend, name, self._through(policy, name, method))
        if policy.breaker:
            self._policies[policy.system] = policy
        if policy.switch is not None:
            self._switches[policy.system] = policy.switch
        return backend

    def _through(self, policy: CallPolicy, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        switch = policy.switch if name in policy.switched else None
        attempts = policy.attempts if name in policy.repeatable else 1

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(policy, method, args, kwargs, switch=switch, attempts=attempts)

        call.guarded_by = policy.system  # type: ignore[attr-defined]
        return call

    # -- one call ------------------------------------------------------------------------------
    def call(self, policy: CallPolicy, method: Callable[..., T], args: tuple[Any, ...], kwargs: Mapping[str, Any],
             *, switch: str | None = None, attempts: int = 1) -> T:
        if switch is not None and self._switched_off(policy, switch):
            record(policy.system, "off", 0.0)
            raise _not_called(policy, f"{policy.system} is switched off by an operator")
        breaker = self.breaker(policy.system) if policy.breaker else None
        for attempt in range(1, attempts + 1):
            try:
                if breaker is None:
                    return self._once(policy, method, args, kwargs)
                # calling(), not call(): pybreaker's call() holds the breaker's lock for the
                # whole call, which would queue every thread of the process behind one slow vend.
                with breaker.calling():
                    return self._once(policy, method, args, kwargs)
            except pybreaker.CircuitBreakerError:
                record(policy.system, "open", 0.0)
                raise _not_called(policy, f"{policy.system} is not called: its breaker is open after repeated failures"
                                  ) from None
            except OutsideError as exc:
                if attempt == attempts or not exc.retryable or exc.timed_out or caused_by_redis_outage(exc):
                    raise
                wait = backoff(attempt, policy.backoff_base, policy.backoff_cap)
                log.info("%s: %s (%s); try %d of %d in %.2f s", policy.system, getattr(method, "__name__", "call"),
                         exc.code, attempt + 1, attempts, wait)
                pause(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _once(self, policy: CallPolicy, method: Callable[..., T], args: tuple[Any, ...],
              kwargs: Mapping[str, Any]) -> T:
        started = time.monotonic()
        try:
            result = method(*args, **kwargs)
        except OutsideError as exc:
            seconds = time.monotonic() - started
            exc.system = policy.system
            if not caused_by_redis_outage(exc) and (seconds >= policy.timeout or _timed_out_below(exc)):
                exc.timed_out = True
            record(policy.system, outcome_of(exc), seconds)
            raise  # stamped before the breaker looks at it (counts_against_breaker)
        except Exception:
            record(policy.system, "error", time.monotonic() - started)
            raise
        record(policy.system, "ok", time.monotonic() - started)
        return result

    def _switched_off(self, policy: CallPolicy, switch: str) -> bool:
        try:
            return switch in self.switched_off()
        except redis.RedisError as exc:  # a reader that asks Redis each time (a test's seam)
            # The built-in backends keep everything in Redis: without it they cannot serve.
            raise _not_called(policy, f"{policy.system}: Redis unavailable: {type(exc).__name__}") from exc

    # -- breakers ------------------------------------------------------------------------------
    def when_closed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(system)`` when a breaker of this app closes (a probe succeeded, or an
        operator reset it): the system is back. Every process that notices may call it."""
        self._on_close.append(callback)

    def systems(self) -> list[str]:
        """The systems with a breaker, as guarded in this app so far."""
        return sorted(self._policies)

    def breaker(self, system: str) -> pybreaker.CircuitBreaker | None:
        """The system's breaker, made on first use (its storage writes its initial state
        to Redis); None when Redis cannot be reached to make it: the call then goes through
        unguarded, as pybreaker itself does when its storage fails (closed)."""
        made = self._breakers.get(system)
        if made is not None or system not in self._policies:
            return made
        with self._lock:
            made = self._breakers.get(system)
            if made is None:
                try:
                    storage = _SharedStorage(pybreaker.STATE_CLOSED, self.breakers_redis,
                                             namespace=keys.breaker(system))
                    made = pybreaker.CircuitBreaker(
                        fail_max=self.failures, reset_timeout=self.reset_seconds,
                        exclude=[lambda error: not counts_against_breaker(error)],
                        listeners=[_Listener(self._on_close)], state_storage=storage, name=system,
                        # The failure that trips it keeps its own error (the family's), with its reason.
                        throw_new_error_on_trip=False,
                    )
                except redis.RedisError as exc:
                    log.warning("breaker %s: Redis unavailable (%s); called without it for now",
                                system, type(exc).__name__)
                    return None
                self._breakers[system] = made
            return made

    def read(self) -> list[BreakerState]:
        """Every breaker as it stands in Redis now, in one round trip."""
        systems = self.systems()
        pipe = self.breakers_redis.pipeline(transaction=False)
        for system in systems:
            for name in ("state", "fail_counter", "opened_at"):
                pipe.get(_storage_key(system, name))
        replies = pipe.execute()
        now = datetime.datetime.now(datetime.UTC)
        read: list[BreakerState] = []
        for index, system in enumerate(systems):
            state, failures, opened = (_text(reply) for reply in replies[3 * index: 3 * index + 3])
            opened_at = (datetime.datetime.fromtimestamp(int(opened), datetime.UTC) if opened else None)
            shown = _STATES.get(state or pybreaker.STATE_CLOSED, CLOSED)
            next_probe = None
            if shown == OPEN and opened_at is not None:
                next_probe = opened_at + datetime.timedelta(seconds=self.reset_seconds)
                if next_probe <= now:
                    shown = HALF_OPEN  # the next call probes
            read.append(BreakerState(system, shown, int(failures or 0), opened_at, next_probe))
        return read

    def states(self) -> dict[str, str]:
        """system -> closed | open | half_open, from this process's copy (STATES_SECONDS)."""
        if time.monotonic() - self._copied_at < STATES_SECONDS:
            return self._copy
        try:
            fresh = {breaker.system: breaker.state for breaker in self.read()}
        except redis.RedisError:
            # Redis away: the copy serves (or nothing is known to be open); tried again soon.
            self._copied_at = time.monotonic()
            return self._copy
        self._copy, self._copied_at = fresh, time.monotonic()
        return fresh

    def out(self, system: str, switched_off: frozenset[str]) -> bool:
        """Whether a call to ``system`` would fail now without being made: its breaker open
        and not yet due a probe, or its built-in backend's switch (in ``switched_off``) off."""
        switch = self._switches.get(system)
        if switch is not None and switch in switched_off:
            return True
        return self.states().get(system) == OPEN

    def reset(self, system: str) -> bool:
        """Close the system's breaker (an operator's word that it is back); False if it has none."""
        breaker = self.breaker(system)
        if breaker is None:
            return False
        breaker.close()
        self._copied_at = -float("inf")  # this process sees it at once; others within STATES_SECONDS
        return True


def _not_called(policy: CallPolicy, why: str) -> OutsideError:
    """The family's "cannot answer now", for a call the seam did not make."""
    error = policy.unavailable(why)
    error.system = policy.system
    return error


def _text(reply: object) -> str | None:
    if reply is None:
        return None
    return reply.decode() if isinstance(reply, bytes) else str(reply)


# -- per app ---------------------------------------------------------------------------------
def seam(app: Flask | None = None) -> Seam:
    """The app's seam, made once."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    made: Seam | None = app.extensions.get(EXTENSION)
    if made is None:
        store = get_store(app)
        made = app.extensions[EXTENSION] = Seam(
            functools.partial(switches.backends_down, app), store.jobs,
            failures=int(app.config.get("BREAKER_FAILURES") or DEFAULTS["BREAKER_FAILURES"]),
            reset=float(app.config.get("BREAKER_RESET") or DEFAULTS["BREAKER_RESET"]),
        )
    return made


def guard(app: Flask, backend: T, policy: CallPolicy) -> T:
    """``backend`` with its outside calls through the app's seam (see the module docstring)."""
    return seam(app).guard(backend, policy)


def states(app: Flask | None = None) -> dict[str, str]:
    """Each breaker's state (closed | open | half_open) by system (``vending``, ``billing``,
    ``payments:<provider>``), at most STATES_SECONDS old, without a Redis round trip on most
    calls: what a USSD menu asks on a hop. ``half_open``: open, but its next call is a probe,
    so a menu should let the customer through (their call is what tells whether it is back)."""
    return _built(app).states()


def out(system: str, app: Flask | None = None) -> bool:
    """Whether calls to ``system`` fail now without being made (Seam.out): what a USSD menu
    asks to say so before the customer gets there, from in-process copies (no round trip on
    most calls). A half-open breaker is not out: the customer's call is the probe."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return _built(app).out(system, switches.backends_down(app))


def _built(app: Flask | None) -> Seam:
    """The app's seam with its backends guarded (they are built on first use)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    made = seam(app)
    if not made.systems():
        from utility.services import services

        services(app)
    return made


__all__ = [
    "DEFAULTS",
    "OUTCOMES",
    "BreakerState",
    "CallPolicy",
    "Seam",
    "Tally",
    "backoff",
    "counts_against_breaker",
    "guard",
    "out",
    "record",
    "seam",
    "states",
    "tallies",
]
