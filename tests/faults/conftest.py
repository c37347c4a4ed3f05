"""Fault tests: each starts its own redis-server (ports 6400-6420), and freezes, restarts
or kills it, or kills the processes that use it. They need the redis-server binary: they
skip without it locally and fail without it in CI (CI=true), like the real-Redis tests."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from bench.fault_drill import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the fault tests: redis-server is not installed")
        pytest.skip("redis-server is not installed")
    return binary


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, keeping its data across a restart (append-only
    file), as production does."""
    server = RedisServer(tmp_path / "redis", appendonly=True, binary=redis_server_binary())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def app_on(server: RedisServer, **config: object) -> Flask:
    return create_app({"TESTING": True, "REDIS_URL": server.url, **config})


def wait_for(condition: Callable[[], object], seconds: float, step: float = 0.05) -> float:
    """Seconds until ``condition()`` is true; fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(step)
    return time.monotonic() - started


def guichet_worker(server: RedisServer, log: Path) -> subprocess.Popen[bytes]:
    """`guichet worker` in a process of its own (to SIGKILL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["REDIS_URL"] = server.url
    return subprocess.Popen([sys.executable, "-c", "from app import main; main()", "worker"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
