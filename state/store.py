"""The Redis connection: a real server at REDIS_URL, or an embedded in-process store.

The embedded store (fakeredis) lets `make run` work on a machine with no Redis server.
It lives in this process only, so the web app and the worker must share the process,
and it is gone when the process exits: it is for trying Guichet, never for production.

Every client of a real server has a socket timeout (GUICHET_REDIS_TIMEOUT, 2 s) and a
connect timeout (GUICHET_REDIS_CONNECT_TIMEOUT, 1 s): a frozen Redis (paused, swapping,
a network that drops packets) must turn into an error the caller handles (a polite END
screen, a 503 from /readyz) within seconds, never a request thread held for as long as
the freeze lasts. redis-py retries a failed command 3 times with backoff by default,
which would multiply that bound; ours retries once, at once, and only a broken
connection (the pooled socket of a Redis that restarted), never a timeout.
"""
from __future__ import annotations

import builtins
import datetime
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import fakeredis
import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.connections import get_connection_kwargs

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

EXTENSION = "guichet.redis"
TIMEOUT = 2.0  # seconds a command may take (GUICHET_REDIS_TIMEOUT)
CONNECT_TIMEOUT = 1.0  # seconds to open a connection (GUICHET_REDIS_CONNECT_TIMEOUT)

_embedded_server: fakeredis.FakeServer | None = None

EMBEDDED_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!! REDIS_URL is not set: running on an EMBEDDED in-process store (fakeredis).\n"
    "!! Sessions, customers and jobs live in this process and vanish when it stops.\n"
    "!! Fine for trying Guichet; set REDIS_URL=redis://host:6379/0 for anything real.\n"
    + "!" * 78
)


# -- the decoded client, typed -------------------------------------------------------------
# redis-py types every reply ``bytes | str`` (it cannot know a client's decode_responses)
# and its hash and stream parameters refuse a ``dict[str, str]`` (a Mapping's key type is
# invariant). Guichet's own keys all live behind the one client made with
# decode_responses=True (Store.data): these protocols say, once, what that client takes
# and answers, for the commands Guichet sends. Store casts its client to TextRedis; every
# module that holds it is typed with TextRedis, or TextCommands when it may be a pipeline.
Value = str | int | float | bytes  # what a command writes (redis-py encodes numbers itself)


class TextCommands(Protocol):
    """The commands Guichet sends on the decoded client or on one of its pipelines. On a
    pipeline outside WATCH they are queued and answer the pipeline, not these types: their
    results then come back from ``execute()``."""

    # strings and keys
    def get(self, name: str) -> str | None: ...
    def mget(self, keys: Iterable[str], *args: str) -> list[str | None]: ...
    def set(
        self, name: str, value: Value, ex: int | datetime.timedelta | None = None,
        px: int | datetime.timedelta | None = None, nx: bool = False, xx: bool = False,
    ) -> bool | None: ...
    def incr(self, name: str, amount: int = 1) -> int: ...
    def delete(self, *names: str) -> int: ...
    def expire(self, name: str, time: int | datetime.timedelta) -> bool: ...
    def eval(self, script: str, numkeys: int, *keys_and_args: Value) -> Any: ...

    # hashes
    def hget(self, name: str, key: str) -> str | None: ...
    def hgetall(self, name: str) -> dict[str, str]: ...
    def hmget(self, name: str, keys: str | Iterable[str], *args: str) -> list[str | None]: ...
    def hset(
        self, name: str, key: str | None = None, value: Value | None = None, mapping: Mapping[str, Value] | None = None,
    ) -> int: ...
    def hsetnx(self, name: str, key: str, value: Value) -> int: ...
    def hincrby(self, name: str, key: str, amount: int = 1) -> int: ...
    def hdel(self, name: str, *keys: str) -> int: ...

    # lists, sets, sorted sets
    def lpush(self, name: str, *values: Value) -> int: ...
    def lrange(self, name: str, start: int, end: int) -> list[str]: ...
    def ltrim(self, name: str, start: int, end: int) -> bool: ...
    def sadd(self, name: str, *values: Value) -> int: ...
    def srem(self, name: str, *values: Value) -> int: ...
    def smembers(self, name: str) -> builtins.set[str]: ...  # builtins: `set` is a command here
    def zadd(self, name: str, mapping: Mapping[str, float], nx: bool = False, xx: bool = False) -> int: ...
    def zrem(self, name: str, *values: str) -> int: ...
    def zrangebyscore(
        self, name: str, min: float | str, max: float | str, start: int | None = None, num: int | None = None,
    ) -> list[str]: ...

    # streams
    def xadd(
        self, name: str, fields: Mapping[str, Value], id: str = "*", maxlen: int | None = None,
        approximate: bool = True,
    ) -> str: ...
    def xrevrange(
        self, name: str, max: str = "+", min: str = "-", count: int | None = None,
    ) -> list[tuple[str, dict[str, str]]]: ...


class TextPipeline(TextCommands, Protocol):
    """A pipeline of the decoded client (``TextRedis.pipeline()``)."""

    def __enter__(self) -> TextPipeline: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None,
    ) -> None: ...
    def execute(self, raise_on_error: bool = True) -> list[Any]: ...
    def watch(self, *names: str) -> bool: ...
    def multi(self) -> None: ...
    def unwatch(self) -> bool: ...


class TextScript(Protocol):
    """A Lua script registered on the decoded client (``TextRedis.register_script``)."""

    def __call__(
        self, keys: Sequence[str] | None = None, args: Iterable[Value] | None = None,
        client: TextCommands | None = None,
    ) -> Any: ...


class TextRedis(TextCommands, Protocol):
    """The decoded-str client (Store.data, get_redis())."""

    def pipeline(self, transaction: bool = True) -> TextPipeline: ...
    def register_script(self, script: str) -> TextScript: ...
    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[str]: ...
    def ping(self) -> bool: ...


def one_quick_retry() -> Retry:
    """Retry a command once, at once, after a broken connection only: a Redis that
    restarted leaves every pooled socket dead, and the second try opens a new one. A
    timeout is not retried: the caller's time bound stays the timeout, not a multiple."""
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


def embedded_server() -> fakeredis.FakeServer:
    """The one embedded server of this process, shared by every client in it."""
    global _embedded_server
    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer()
    return _embedded_server


class Store:
    """The two clients Guichet needs on one Redis.

    ``data`` decodes replies to ``str`` (all our own keys); ``jobs`` returns bytes,
    which rq requires.
    """

    def __init__(self, data: redis.Redis, jobs: redis.Redis, embedded: bool) -> None:
        # The one place the decoded client is given its type: made with decode_responses=True.
        self.data = cast(TextRedis, data)
        self.jobs = jobs
        self.embedded = embedded

    @classmethod
    def from_url(cls, url: str | None, timeout: float = TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT) -> Store:
        if not url:
            server = embedded_server()
            return cls(
                fakeredis.FakeRedis(server=server, decode_responses=True),
                fakeredis.FakeRedis(server=server),
                embedded=True,
            )
        bounded = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, "health_check_interval": 30}
        return cls(
            redis.Redis.from_url(url, decode_responses=True, retry=one_quick_retry(), **bounded),
            redis.Redis.from_url(url, retry=one_quick_retry(), **bounded),
            embedded=False,
        )

    @classmethod
    def from_client(cls, client: redis.Redis) -> Store:
        """Wrap a test's client (fakeredis or real) in a Store sharing its connection."""
        pool = client.connection_pool
        jobs: redis.Redis
        if isinstance(client, fakeredis.FakeRedis):
            jobs = _fake_twin(client)
        else:
            kwargs = {**pool.connection_kwargs, "decode_responses": False}
            jobs = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
        return cls(client, jobs, embedded=False)

    def blocking_jobs_client(self, socket_timeout: float) -> redis.Redis:
        """A bytes client of its own for a command that blocks on purpose (the rq worker's
        BLMOVE waits up to its dequeue timeout for a job): its socket timeout must outlast
        that wait, and rq raises the timeout of whatever pool it is given, so the worker
        must not share the pool the web requests enqueue through."""
        pool = self.jobs.connection_pool
        if isinstance(self.jobs, fakeredis.FakeRedis):
            return _fake_twin(self.jobs)
        # rq's copy of the settings, without the runtime state redis-py keeps among them.
        kwargs = get_connection_kwargs(self.jobs)
        kwargs.update(socket_timeout=socket_timeout, retry=one_quick_retry())
        return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))

    def ping(self) -> bool:
        try:
            return bool(self.data.ping())
        except redis.RedisError:
            return False


def _fake_twin(client: fakeredis.FakeRedis) -> fakeredis.FakeRedis:
    """A bytes client on the same fake server as ``client``. A FakeRedis made without a
    server gets one of its own, found again by its (random) host and port and version."""
    settings = client.connection_pool.connection_kwargs
    same = ("server", "host", "port", "version", "server_type", "lua_modules")
    return fakeredis.FakeRedis(**{name: settings[name] for name in same if settings.get(name) is not None})


def init_app(app: Flask) -> None:
    # The store is opened on first use, so commands that never touch Redis
    # (`guichet dial`, `guichet sts token`) neither connect nor warn.
    app.extensions[EXTENSION] = None


def get_store(app: Flask | None = None) -> Store:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    store: Store | None = app.extensions.get(EXTENSION)
    if store is None:
        client = app.config.get("REDIS_CLIENT")
        if client is not None:
            store = Store.from_client(client)
        else:
            store = Store.from_url(
                app.config.get("REDIS_URL"),
                timeout=float(app.config.get("REDIS_TIMEOUT") or TIMEOUT),
                connect_timeout=float(app.config.get("REDIS_CONNECT_TIMEOUT") or CONNECT_TIMEOUT),
            )
            if store.embedded:
                log.warning(EMBEDDED_WARNING)
        app.extensions[EXTENSION] = store
    return store


def get_redis(app: Flask | None = None) -> TextRedis:
    """The decoded-str client of the current app."""
    return get_store(app).data


def caused_by_redis_outage(error: BaseException | None) -> bool:
    """Whether ``error``, or what it was raised from, is Redis being away (a broken
    connection, a timeout), not a refused command: e.g. a service's "unavailable" error
    raised by `redis_failure_means` during an outage, which a caller may rather retry in
    seconds than treat as its backend being down."""
    for _ in range(10):
        if error is None:
            return False
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def redis_failure_means(
    error: Callable[[str], Exception], what: str
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a service method whose storage is Redis: when Redis fails, the caller
    sees the service's own "unavailable" error (retryable), not a Redis exception."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except redis.RedisError as exc:
                raise error(f"{what} unavailable: {exc.__class__.__name__}") from exc

        return guarded

    return decorate
