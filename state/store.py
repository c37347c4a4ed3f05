"""The Redis connection: a real server at REDIS_URL, or an embedded in-process store.

The embedded store (fakeredis) lets `make run` work on a machine with no Redis server.
It lives in this process only, so the web app and the worker must share the process,
and it is gone when the process exits: it is for trying Guichet, never for production.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import fakeredis
import redis
from flask import Flask, current_app

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

EXTENSION = "guichet.redis"

_embedded_server: fakeredis.FakeServer | None = None

EMBEDDED_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!! REDIS_URL is not set: running on an EMBEDDED in-process store (fakeredis).\n"
    "!! Sessions, customers and jobs live in this process and vanish when it stops.\n"
    "!! Fine for trying Guichet; set REDIS_URL=redis://host:6379/0 for anything real.\n"
    + "!" * 78
)


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
        self.data = data
        self.jobs = jobs
        self.embedded = embedded

    @classmethod
    def from_url(cls, url: str | None) -> "Store":
        if not url:
            server = embedded_server()
            return cls(
                fakeredis.FakeRedis(server=server, decode_responses=True),
                fakeredis.FakeRedis(server=server),
                embedded=True,
            )
        return cls(
            redis.Redis.from_url(url, decode_responses=True, health_check_interval=30),
            redis.Redis.from_url(url),
            embedded=False,
        )

    @classmethod
    def from_client(cls, client: redis.Redis) -> "Store":
        """Wrap a test's client (fakeredis or real) in a Store sharing its connection."""
        pool = client.connection_pool
        if isinstance(client, fakeredis.FakeRedis):
            jobs = fakeredis.FakeRedis(server=pool.connection_kwargs["server"])
        else:
            kwargs = {**pool.connection_kwargs, "decode_responses": False}
            jobs = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
        return cls(client, jobs, embedded=False)

    def ping(self) -> bool:
        try:
            return bool(self.data.ping())
        except redis.RedisError:
            return False


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
            store = Store.from_url(app.config.get("REDIS_URL"))
            if store.embedded:
                log.warning(EMBEDDED_WARNING)
        app.extensions[EXTENSION] = store
    return store


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The decoded-str client of the current app."""
    return get_store(app).data


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
