"""Shared fixtures: an app on a fresh fakeredis, its test client and CLI runner.

Tests marked ``real_redis`` (or using the ``any_redis`` fixture) also run against a real
redis-server: the one at REDIS_URL when it is set (CI's .ci/run sets it), otherwise a
throwaway one this test session starts on first use (tests/redis_server.py: 127.0.0.1, a
free port, nothing saved, a temp dir) and kills at its end. Locally they skip only without
a ``redis-server`` binary (or when REDIS_URL is set and nothing answers there); in CI
(CI=true) that is a failure, so CI cannot silently test less than it claims.

Tests using ``any_redis`` run a third time on a real 3-master Redis Cluster (marked
``redis_cluster``): the one at REDIS_CLUSTER_URL (``redis+cluster://host:port``, .ci/run sets
it), otherwise a throwaway one this session starts on first use (ThrowawayCluster: three
redis-servers in cluster mode, about 3 s). Its data is flushed on every master between
tests. The app's background jobs then go to the plain real server (GUICHET_REDIS_JOBS_URL:
rq does not support Redis Cluster, see state.store). ``-m 'not redis_cluster'`` skips them.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app import create_app
from state.store import cluster_from_url, cluster_unsupported, node_url, primaries
from tests.redis_server import ThrowawayCluster, ThrowawayRedis

ADMIN_KEY = "test-admin-key"

THROWAWAY: dict[str, ThrowawayRedis | ThrowawayCluster] = {}  # URL -> what this session started there


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "redis_cluster: runs on a real Redis Cluster: REDIS_CLUSTER_URL, else a throwaway 3-master "
        "cluster the session starts (skips locally without redis-server and redis-cli, required in CI)")


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
    with _throwaway(ThrowawayRedis(binary, tmp_path_factory.mktemp("redis-server"))) as started:
        yield started


@contextmanager
def _throwaway(server: ThrowawayRedis | ThrowawayCluster) -> Iterator[str]:
    """``server`` started, known by its URL while the session uses it, killed at the end."""
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


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ``redis+cluster://`` URL of a real Redis Cluster: REDIS_CLUSTER_URL if set, else a
    throwaway 3-master cluster's, started on first use and killed at the end of the session."""
    if (unsupported := cluster_unsupported()) is not None:
        pytest.skip(unsupported)  # the dependency floors' run (.ci/run): a cluster needs a newer redis-py
    url = os.environ.get("REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        _skip_or_fail("REDIS_CLUSTER_URL is not set and redis-server and redis-cli are needed to start a cluster")
    with _throwaway(ThrowawayCluster(server, cli, tmp_path_factory.mktemp("redis-cluster"))) as started:
        yield started


def _flush_cluster(client: redis.RedisCluster) -> None:
    for node in primaries(client):
        node.flushall()


@pytest.fixture
def redis_cluster(
    redis_cluster_url: str, real_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[redis.RedisCluster]:
    """A client of the real cluster (state.store's, as the app makes it), every master flushed
    before and after the test. The app's jobs go to the plain real server (flushed too):
    REDIS_URL and GUICHET_REDIS_JOBS_URL are set for the test, for the apps and processes it
    starts."""
    node = node_url(redis_cluster_url)
    assert node is not None, f"REDIS_CLUSTER_URL must be redis+cluster://host:port, not {redis_cluster_url}"
    jobs = _real_redis(real_redis_url)
    monkeypatch.setenv("REDIS_URL", redis_cluster_url)
    monkeypatch.setenv("GUICHET_REDIS_JOBS_URL", real_redis_url)
    try:
        client = cluster_from_url(node, socket_connect_timeout=1)
        _flush_cluster(client)
    except redis.RedisError as exc:
        if redis_cluster_url in THROWAWAY:
            pytest.fail(f"the throwaway cluster at {redis_cluster_url} stopped answering ({exc})")
        _skip_or_fail(f"no Redis Cluster answers at {redis_cluster_url} ({exc})")
    yield client
    _flush_cluster(client)
    jobs.flushdb()
    jobs.close()
    client.close()


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


@pytest.fixture(params=[
    "fakeredis",
    pytest.param("redis-server", marks=pytest.mark.real_redis),
    pytest.param("redis-cluster", marks=[pytest.mark.real_redis, pytest.mark.redis_cluster]),
])
def any_redis(request: pytest.FixtureRequest) -> redis.Redis:
    """The same test against fakeredis, a real redis-server and a real Redis Cluster."""
    if request.param == "fakeredis":
        return request.getfixturevalue("fake_redis")
    if request.param == "redis-cluster":
        return request.getfixturevalue("redis_cluster")
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
