"""A paid order survives its Redis master's death: with GUICHET_REDIS_WAIT_REPLICAS set, the
payment callback that moves an order to paid answers only once a replica has the move (WAIT),
or once GUICHET_REDIS_WAIT_MS have passed, with a warning (utility.orders.ReplicaWait).

The real-Redis tests run a master and its replica (redis-server), joined through a relay that
delivers what the master sends a moment late, as a slow link between two machines would: the
replica lags behind for sure, so reading it right after the callback tells whether the
callback waited for it. On a Redis Cluster the WAIT goes to the master that holds the order.
"""
from __future__ import annotations

import json
import logging
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from app import create_app
from state import keys
from state.store import get_redis
from tests.redis_server import ThrowawayCluster, free_port
from utility.orders import ReplicaWait
from utility.services import services

PHONE, METER = "+237699000101", "10000000017"
LAG = 0.4  # seconds the relay holds what the master sends its replica


# -- a master, its replica, and a slow link between them ---------------------------------------------
class SlowLink:
    """A TCP relay in front of a master: what the master sends comes out ``delay`` seconds
    late, in order; what the replica sends (its acknowledgements) goes through at once."""

    def __init__(self, master_port: int) -> None:
        self.master_port = master_port
        self.delay = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                replica, _ = self.listener.accept()
            except OSError:
                return  # closed
            master = socket.create_connection(("127.0.0.1", self.master_port))
            for sock in (replica, master):  # no Nagle: only ``delay`` holds anything back
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets += [replica, master]
            threading.Thread(target=self._pump, args=(replica, master, lambda: 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(master, replica, lambda: self.delay), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, delay: Callable[[], float]) -> None:
        due: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def deliver() -> None:
            while True:
                at, data = due.get()
                time.sleep(max(0.0, at - time.monotonic()))
                try:
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=deliver, daemon=True).start()
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                return
            due.put((time.monotonic() + delay(), data))

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pumps' recv; the master sees the link end
            except OSError:
                pass  # the listener, or a socket the other side closed already
            sock.close()


class Pair:
    """A master and one replica (redis-server, nothing saved) in ``folder``, the replica
    following the master through a SlowLink."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder = binary, folder
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.link: SlowLink | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start("master", "--repl-diskless-sync-delay", "0")  # the replica's first sync at once, not in 5 s
        self.link = SlowLink(self.ports["master"])
        self._start("replica", "--replicaof", "127.0.0.1", str(self.link.port))
        self.wait(lambda: self.client("replica").info("replication").get("master_link_status") == "up",
                  "the replica's first sync")

    def _start(self, name: str, *args: str) -> None:
        self.ports[name] = free_port()
        self.processes[name] = subprocess.Popen(
            [self.binary, *args, "--port", str(self.ports[name]), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.folder / f"{name}.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait(lambda: self._answers(name), f"{name} to start")

    def _answers(self, name: str) -> bool:
        try:
            return bool(self.client(name).ping())
        except redis.ConnectionError:
            return False

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[name], socket_timeout=2, decode_responses=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['master']}/0"

    def wait(self, condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"waited {seconds} s for {what}: see {self.folder}"
            time.sleep(0.05)

    def caught_up(self, reference: str) -> None:
        self.wait(lambda: state_on(self.client("replica"), reference) is not None, "the replica to have the order")

    def kill_replica(self) -> None:
        self.processes["replica"].kill()
        self.processes["replica"].wait(5)
        if self.link is not None:
            self.link.close()  # the master's end of the replica's link is the relay's
        self.wait(lambda: self.client("master").info("replication")["connected_slaves"] == 0, "the master to notice")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)
        if self.link is not None:
            self.link.close()


def redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    return binary


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    made = Pair(redis_server(), tmp_path / "pair")
    try:
        made.start()
        yield made
    finally:
        made.stop()


# -- the story: an order placed, its payment approved by the provider's callback -----------------------
def app_on(url: str, **config: Any) -> Flask:
    return create_app({"TESTING": True, "REDIS_URL": url, "RATE_LIMIT_PAYMENTS": "0", **config})


def placed_order(app: Flask, reference: str = "ORDWAIT1") -> str:
    """A customer's purchase, waiting for the payer to approve it on the handset."""
    from tests.ussd.conftest import prepaid
    from utility.customers import RedisCustomerBase

    RedisCustomerBase(get_redis(app)).upsert([prepaid("1000000001", PHONE)])
    order = services(app).orders.place("units", PHONE, "fr", METER, 5_000, PHONE, reference)
    assert order.state == "payment_pending"
    return reference


def approve(app: Flask, reference: str) -> tuple[str, float]:
    """The provider's callback saying the payer approved: what it was answered, and how long that took."""
    order = services(app).orders.get(reference)
    assert order is not None
    body = json.dumps({"provider_ref": order.provider_ref, "order_ref": reference, "status": "SUCCESSFUL",
                       "reason": ""}).encode()
    signature = services(app).payments.sign(body)  # type: ignore[attr-defined]
    started = time.monotonic()
    answer = app.test_client().post("/payments/demo/callback", data=body, content_type="application/json",
                                    headers={"X-Guichet-Signature": signature})
    took = time.monotonic() - started
    assert answer.status_code == 200
    return answer.get_data(as_text=True).strip(), took


def state_on(client: redis.Redis, reference: str) -> str | None:
    raw = client.get(keys.order(reference))
    return json.loads(raw)["state"] if raw else None


# -- real Redis with a replica ------------------------------------------------------------------------
@pytest.mark.real_redis
def test_with_the_wait_on_the_paid_order_is_on_the_replica_when_the_callback_returns(pair, caplog) -> None:
    app = app_on(pair.url, REDIS_WAIT_REPLICAS=1, REDIS_WAIT_MS=1500)
    reference = placed_order(app)
    pair.caught_up(reference)
    assert pair.link is not None
    pair.link.delay = LAG
    with caplog.at_level(logging.WARNING, logger="utility.orders"):
        outcome, took = approve(app, reference)
    assert outcome == "handed_over"
    assert state_on(pair.client("replica"), reference) == "paid"  # the replica had it before the answer
    assert took >= LAG  # what it cost here: the slow link's delay
    assert "replicas had it" not in caplog.text


@pytest.mark.real_redis
def test_without_the_wait_the_callback_answers_before_a_lagging_replica_has_the_order(pair) -> None:
    app = app_on(pair.url)  # GUICHET_REDIS_WAIT_REPLICAS: 0 by default
    reference = placed_order(app)
    pair.caught_up(reference)
    assert pair.link is not None
    pair.link.delay = LAG
    outcome, took = approve(app, reference)
    assert outcome == "handed_over" and took < LAG
    assert state_on(pair.client("replica"), reference) == "payment_pending"  # a failover now would lose it
    pair.wait(lambda: state_on(pair.client("replica"), reference) == "paid", "the replica to catch up")


@pytest.mark.real_redis
def test_a_missing_replica_is_a_warning_and_the_payment_still_succeeds_within_the_timeout(pair, caplog) -> None:
    app = app_on(pair.url, REDIS_WAIT_REPLICAS=1, REDIS_WAIT_MS=100)
    reference = placed_order(app)
    pair.kill_replica()
    with caplog.at_level(logging.WARNING, logger="utility.orders"):
        outcome, took = approve(app, reference)
    assert outcome == "handed_over" and state_on(pair.client("master"), reference) == "paid"
    assert 0.1 <= took < 1.0
    (warning,) = [r for r in caplog.records if "replicas had it" in r.getMessage()]
    assert warning.levelno == logging.WARNING and "0 of 1" in warning.getMessage()
    assert reference in warning.getMessage()


@pytest.fixture
def cluster_with_replicas(tmp_path: Path) -> Iterator[ThrowawayCluster]:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    made = ThrowawayCluster(redis_server(), cli, tmp_path / "cluster", masters=3, replicas=1)
    try:
        made.start()
        yield made
    finally:
        made.kill()


@pytest.mark.real_redis
@pytest.mark.redis_cluster
def test_on_a_cluster_the_wait_goes_to_the_master_holding_the_order(cluster_with_replicas, real_redis_url,
                                                                    caplog) -> None:
    from state.store import cluster_from_url

    cluster = cluster_with_replicas
    app = app_on(cluster.url, REDIS_JOBS_URL=real_redis_url, REDIS_WAIT_REPLICAS=1, REDIS_WAIT_MS=200)
    reference = placed_order(app)
    client = cluster_from_url(cluster.url.replace("redis+cluster", "redis"))
    holder = client.get_node_from_key(keys.order(reference)).port
    client.close()
    nodes = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True) for port in cluster.ports]
    (held,) = [node for node in nodes if node.info("replication").get("master_port") == holder]
    # Only the order's master loses its replica (as the fault drill holds one back): a WAIT sent
    # to any other master would find its replica there and answer at once, without a warning.
    held.config_set("masterauth", "held-back-by-the-test")
    held.client_kill_filter(_type="master")
    with caplog.at_level(logging.WARNING, logger="utility.orders"):
        outcome, took = approve(app, reference)
    assert outcome == "handed_over" and took >= 0.2
    assert any("0 of 1" in r.getMessage() and reference in r.getMessage() for r in caplog.records)
    held.config_set("masterauth", "")


# -- off by default -----------------------------------------------------------------------------------
def test_by_default_no_wait_is_sent(fake_redis, monkeypatch) -> None:
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis})
    assert services(app).orders.replica_wait is None
    reference = placed_order(app)
    sent: list[str] = []
    connection_class = fake_redis.connection_pool.connection_class
    original = connection_class.send_packed_command

    def noting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(bytes(command if isinstance(command, bytes) else b"".join(command)).decode(errors="replace"))
        original(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", noting)
    outcome, _took = approve(app, reference)
    assert outcome == "handed_over" and state_on(fake_redis, reference) == "paid"
    assert sent, "the recorder sees what is sent"
    assert not [batch for batch in sent if "\r\nWAIT\r\n" in batch.upper()]


def test_a_wait_that_cannot_work_is_refused_when_the_app_starts() -> None:
    assert ReplicaWait.from_config({"REDIS_WAIT_REPLICAS": 0, "REDIS_WAIT_MS": 100}) is None
    assert ReplicaWait.from_config({"REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_MS": 100}) == ReplicaWait(1, 100)
    for replicas, timeout_ms in ((1, 0), (1, 2000), (-1, 100)):  # WAIT 0 waits forever; 2 s: the socket timeout
        with pytest.raises(ValueError, match="REDIS_WAIT"):
            ReplicaWait.from_config({"REDIS_WAIT_REPLICAS": replicas, "REDIS_WAIT_MS": timeout_ms})
