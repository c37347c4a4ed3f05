"""Shared fixtures: an app on a fresh fakeredis, its test client and CLI runner.

Tests marked ``real_redis`` (or using the ``any_redis`` fixture) also run against a real
redis-server: the one at REDIS_URL when it is set (CI's .ci/run sets it), otherwise a
throwaway one this test session starts on first use (tests/redis_server.py: 127.0.0.1, a
free port, nothing saved, a temp dir) and kills at its end. Locally they skip only without
a ``redis-server`` binary (or when REDIS_URL is set and nothing answers there); in CI
(CI=true) that is a failure, so CI cannot silently test less than it claims.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import NoReturn

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from tests.redis_server import ThrowawayRedis

ADMIN_KEY = "test-admin-key"

THROWAWAY: dict[str, ThrowawayRedis] = {}  # URL -> the server this session started there


def _skip_or_fail(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the real-Redis tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the real redis-server: REDIS_URL if set, else a throwaway server's, started
    on first use and killed at the end of the session (even a failed or interrupted one)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _skip_or_fail("REDIS_URL is not set and no redis-server binary is on the PATH to start one")
    server = ThrowawayRedis(binary, tmp_path_factory.mktemp("redis-server"))
    THROWAWAY[server.start()] = server
    try:
        yield server.url
    finally:
        del THROWAWAY[server.url]
        server.kill()


def _real_redis(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if url in THROWAWAY:  # ours, started and answering: its death is a failure, not a skip
            pytest.fail(f"the throwaway redis-server at {url} stopped answering ({exc}): "
                        f"see {THROWAWAY[url].log}")
        _skip_or_fail(f"no Redis server answers at {url} ({exc})")
    client.flushdb()
    return client


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


@pytest.fixture
def real_redis(real_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """A client of the real server, its db flushed before and after the test. REDIS_URL is
    set to that server for the test (only), for the processes it starts (`guichet worker`)."""
    monkeypatch.setenv("REDIS_URL", real_redis_url)
    client = _real_redis(real_redis_url)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(params=["fakeredis", pytest.param("redis-server", marks=pytest.mark.real_redis)])
def any_redis(request: pytest.FixtureRequest) -> redis.Redis:
    """The same test against fakeredis and against a real redis-server."""
    if request.param == "fakeredis":
        return request.getfixturevalue("fake_redis")
    return request.getfixturevalue("real_redis")


@pytest.fixture
def redis_client(fake_redis: fakeredis.FakeRedis) -> redis.Redis:
    """The Redis the ``app`` fixture uses; override to run an app on a real server."""
    return fake_redis


@pytest.fixture
def app(redis_client: redis.Redis) -> Flask:
    return create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "ADMIN_KEY": ADMIN_KEY, "UTILITY_NAME": "Eneo"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture(autouse=True)
def exact_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry schedules are exact in tests: the jitter of utility.calls.backoff (the one
    backoff every schedule uses) is pinned to its top, so a test can say when a retry is
    due. tests/test_calls.py tests the jitter itself."""
    from utility import calls

    monkeypatch.setattr(calls, "jitter", lambda: 1.0)
