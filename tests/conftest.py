"""Shared fixtures: an app on a fresh fakeredis, its test client and CLI runner.

Tests marked ``real_redis`` (or using the ``any_redis`` fixture) also run against the
server at REDIS_URL. Locally they skip when none answers; in CI (CI=true) a missing
server is a failure, so CI cannot silently test less than it claims.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app

ADMIN_KEY = "test-admin-key"


def _real_redis() -> redis.Redis:
    url = os.environ.get("REDIS_URL")
    if not url:
        reason = "REDIS_URL not set"
    else:
        client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1)
        try:
            client.ping()
        except redis.RedisError as exc:
            reason = f"no Redis server answers at REDIS_URL ({exc})"
        else:
            client.flushdb()
            return client
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the real-Redis tests: {reason}")
    pytest.skip(reason)


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


@pytest.fixture
def real_redis() -> Iterator[redis.Redis]:
    client = _real_redis()
    yield client
    client.flushdb()


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
    return create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "ADMIN_KEY": ADMIN_KEY})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()
