"""A throwaway redis-server for the real-Redis tests when REDIS_URL is not set: 127.0.0.1, a
free port from the OS, nothing saved (``--save '' --appendonly no``), its own temp dir.

It dies with the test session: killed at its end (tests/conftest.py), at interpreter exit,
and on Linux also when the pytest process dies without either (SIGTERM, SIGKILL).

ThrowawayCluster does the same for a Redis Cluster. ``python -m tests.redis_server start``
(``.ci/redis-cluster start``) starts one that outlives the command, prints its URL, and
``stop`` kills it: for CI and for humans.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import ctypes.util
import json
import os
import shutil
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


class ThrowawayCluster:
    """A throwaway Redis Cluster: ``masters`` x (1 + ``replicas``) redis-servers in cluster mode
    (127.0.0.1, free ports, nothing saved, one temp dir each), joined by ``redis-cli --cluster
    create``. ``replicas=1`` gives every master a replica (6 nodes for 3 masters), which a test
    killing a master needs; nothing else changes.

    Each node's cluster bus port is chosen free too (``--cluster-port``, Redis 7), rather than
    the default port + 10000, which a free port from the OS's ephemeral range may overflow."""

    STATE = "cluster.json"  # in the workdir of a detached cluster: its URL, ports and pids

    def __init__(self, server: str, cli: str, workdir: Path, masters: int = 3, replicas: int = 0,
                 detached: bool = False, node_timeout: int = 2000) -> None:
        self.server = server
        self.node_timeout = node_timeout  # ms (cluster-node-timeout): a dead master's replica takes over ~1-2x later
        self.cli = cli
        self.workdir = workdir
        self.masters = masters
        self.replicas = replicas
        self.detached = detached  # outlives this process (`start` below); else dies with it
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Guichet's form of a cluster's URL (state.store): any one node, ``redis+cluster://``."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    @property
    def nodes(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    def log(self, port: int) -> Path:
        return self.workdir / str(port) / "redis.log"

    def start(self, timeout: float = 30) -> str:
        """Start the nodes, create the cluster, and return its URL once every node says
        cluster_state:ok."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        for _ in range(self.masters * (1 + self.replicas)):
            port, bus = self._two_free_ports(taken)
            folder = self.workdir / str(port)
            folder.mkdir(exist_ok=True)
            self.processes.append(subprocess.Popen(
                [self.server, "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
                 "--cluster-node-timeout", str(self.node_timeout), "--save", "", "--appendonly", "no",
                 "--dir", str(folder), "--logfile", str(self.log(port))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=None if self.detached else _die_with_parent(), start_new_session=self.detached,
            ))
            self.ports.append(port)
        if not self.detached:
            atexit.register(self.kill)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            self._wait(port, deadline, lambda node: bool(node.ping()))
        subprocess.run(
            [self.cli, "--cluster", "create", *self.nodes, "--cluster-replicas", str(self.replicas),
             "--cluster-yes"],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=max(1.0, deadline - time.monotonic()),
        )
        for port in self.ports:
            self._wait(port, deadline, lambda node: node.cluster("info")["cluster_state"] == "ok")
            if self.replicas:  # each replica in sync with its master: a failover can promote it
                self._wait(port, deadline, self._replicated)
        if self.detached:
            state = {"url": self.url, "ports": self.ports, "pids": [process.pid for process in self.processes]}
            (self.workdir / self.STATE).write_text(json.dumps(state))
        return self.url

    def _replicated(self, node: redis.Redis) -> bool:
        info = node.info("replication")
        if info["role"] == "master":
            return int(info["connected_slaves"]) >= self.replicas
        return bool(info.get("master_link_status") == "up")

    @staticmethod
    def _two_free_ports(taken: set[int]) -> tuple[int, int]:
        ports: list[int] = []
        while len(ports) < 2:
            port = free_port()
            if port not in taken:
                taken.add(port)
                ports.append(port)
        return ports[0], ports[1]

    def _wait(self, port: int, deadline: float, ready: Callable[[redis.Redis], bool]) -> None:
        node = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1,
                           decode_responses=True)
        try:
            while time.monotonic() < deadline:
                try:
                    if ready(node):
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.05)
        finally:
            node.close()
        self.kill()
        raise RuntimeError(f"the throwaway cluster's node 127.0.0.1:{port} is not ready: see {self.log(port)}")

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(10)

    # -- failover (tests/faults/test_cluster_failover.py, bench/fault_drill.py --cluster) -----------
    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1,
                           decode_responses=True)

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        for port in self.live_ports():
            node = self._node(port)
            try:
                slot = int(node.cluster("keyslot", key))
                for start, end, master, *_replicas in node.execute_command("CLUSTER SLOTS"):
                    if int(start) <= slot <= int(end):
                        return int(master[1])
            except redis.RedisError:
                continue
            finally:
                node.close()
        raise RuntimeError(f"no live node knows the master of {key!r}")

    def replicas_of(self, master_port: int) -> list[int]:
        """The ports of ``master_port``'s replicas (asked of the master itself)."""
        node = self._node(master_port)
        try:
            info = node.info("replication")
        finally:
            node.close()
        return [int(info[f"slave{n}"]["port"]) for n in range(int(info["connected_slaves"]))]

    def live_ports(self) -> list[int]:
        return [port for port, process in zip(self.ports, self.processes, strict=True) if process.poll() is None]

    def kill_master(self, port: int) -> None:
        """SIGKILL the node on ``port`` (a crash: no shutdown, no handover to its replica)."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait(10)

    def wait_promoted(self, replica_port: int, timeout: float = 30) -> None:
        """Return once ``replica_port`` is a master and every live node says cluster_state:ok."""
        deadline = time.monotonic() + timeout

        def promoted(node: redis.Redis) -> bool:
            return bool(node.info("replication")["role"] == "master")

        self._wait(replica_port, deadline, promoted)
        for port in self.live_ports():
            self._wait(port, deadline, lambda node: node.cluster("info")["cluster_state"] == "ok")


def stop_detached(workdir: Path, timeout: float = 5) -> bool:
    """Stop the detached cluster whose state is in ``workdir``: SIGTERM to each pid it recorded
    (only while that pid is still a redis-server on the node's port: a pid may be reused), SIGKILL
    to any left after ``timeout``. False if no cluster was recorded there."""
    state_file = workdir / ThrowawayCluster.STATE
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    ours = [pid for pid, port in zip(state["pids"], state["ports"], strict=True) if _is_node(pid, port)]
    for pid in ours:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while ours and time.monotonic() < deadline:
        ours = [pid for pid in ours if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)]
        time.sleep(0.05)
    for pid in ours:
        os.kill(pid, signal.SIGKILL)
    state_file.unlink()
    return True


def _is_node(pid: int, port: int) -> bool:
    try:  # redis-server rewrites its title: "/usr/bin/redis-server 127.0.0.1:PORT [cluster]"
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline and f":{port}".encode() in cmdline


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def main(argv: list[str] | None = None) -> int:
    """``start``: a detached throwaway cluster in --dir (printing its URL); ``stop``: kill it."""
    parser = argparse.ArgumentParser(prog="redis-cluster", description=main.__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "guichet-redis-cluster")
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=0, help="per master (1: six nodes for three masters)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        if not stop_detached(args.dir):
            print(f"no cluster recorded in {args.dir}", file=sys.stderr)
        return 0
    if (args.dir / ThrowawayCluster.STATE).exists():
        print(f"a cluster is already recorded in {args.dir}: stop it first", file=sys.stderr)
        return 1
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        print("redis-server and redis-cli must be on the PATH", file=sys.stderr)
        return 1
    cluster = ThrowawayCluster(server, cli, args.dir, args.masters, args.replicas, detached=True)
    print(cluster.start())
    return 0


if __name__ == "__main__":
    sys.exit(main())
