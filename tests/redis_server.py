"""A throwaway redis-server for the real-Redis tests when REDIS_URL is not set: 127.0.0.1, a
free port from the OS, nothing saved (``--save '' --appendonly no``), its own temp dir.

It dies with the test session: killed at its end (tests/conftest.py), at interpreter exit,
and on Linux also when the pytest process dies without either (SIGTERM, SIGKILL).
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

# Ports it must not take: the fault tests' own servers (6400-6420), CI's (6399), 6391.
RESERVED_PORTS = frozenset({*range(6400, 6421), 6391, 6399})


def free_port() -> int:
    """A port the OS says is free now, never a reserved one."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when its parent dies (prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    return lambda: libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class ThrowawayRedis:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, attempts: int = 5, timeout: float = 10) -> str:
        """Start it on a free port (another, if that one is taken meanwhile); its URL once it
        answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = free_port()
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(self.log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent(),
            )
            atexit.register(self.kill)
            if self._answers(timeout):
                return self.url
            self.kill()
        raise RuntimeError(f"could not start a throwaway redis-server: see {self.log}")

    def _answers(self, timeout: float) -> bool:
        assert self.process is not None
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    return bool(probe.ping())
                except redis.RedisError:
                    time.sleep(0.05)
            return False
        finally:
            probe.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
