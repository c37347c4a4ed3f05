"""Redis Sentinel: `REDIS_URL=redis+sentinel://host:port/service` asks the sentinels where the
master is, and asks again after a failover. The failover test runs a real master, its
replica and a sentinel (redis-server in sentinel mode), kills the master with SIGKILL, and
holds that a customer's dialogue gets screens again within seconds of the promotion, with
what was written before still there."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app import create_app
from state.store import Store, Watched, get_redis, sentinel_of
from tests.redis_server import free_port
from tests.ussd.conftest import Phone, prepaid
from utility.customers import RedisCustomerBase

SERVICE = "guichet"
PHONE = "+237699000101"


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db():
    assert sentinel_of("redis://127.0.0.1:6379/0") is None
    assert sentinel_of("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/guichet/2") == Watched(
        [("10.0.0.1", 26379), ("10.0.0.2", 26380)], "guichet", 2)
    assert sentinel_of("redis+sentinel://:s3cret@sentinel-a/guichet") == Watched(
        [("sentinel-a", 26379)], "guichet", 0, "s3cret")
    for bad in ("redis+sentinel://10.0.0.1:26379", "redis+sentinel:///guichet"):
        with pytest.raises(ValueError, match="redis\\+sentinel://host:port"):
            sentinel_of(bad)


def test_with_sentinel_the_jobs_are_on_the_same_master():
    with pytest.raises(ValueError, match="leave GUICHET_REDIS_JOBS_URL unset"):
        Store.from_url("redis+sentinel://127.0.0.1:1/guichet", jobs_url="redis://127.0.0.1:2/0")


class Servers:
    """A master, its replica and one sentinel watching them, in ``folder``."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder = binary, folder
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def _start(self, name: str, *args: str) -> None:
        port = free_port()
        self.ports[name] = port
        self.processes[name] = subprocess.Popen(
            [self.binary, *args, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--logfile", str(self.folder / f"{name}.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client(name)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, f"{name} did not start: see {self.folder}"
                time.sleep(0.05)

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[name], socket_timeout=2, decode_responses=True)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start("master")
        self._start("replica", "--replicaof", "127.0.0.1", str(self.ports["master"]))
        config = self.folder / "sentinel.conf"
        config.write_text(
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.ports['master']} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n")
        self._start("sentinel", str(config), "--sentinel")
        self.wait(lambda: self.client("sentinel").sentinel_slaves(SERVICE), "the sentinel to see the replica")

    def master_port(self) -> int:
        return int(self.client("sentinel").sentinel_get_master_addr_by_name(SERVICE)[1])

    def wait(self, condition, what: str, seconds: float = 20) -> float:
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < seconds, f"waited {seconds} s for {what}: see {self.folder}"
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the Sentinel test: redis-server is not installed")
        pytest.skip("redis-server is not installed")
    made = Servers(binary, tmp_path / "sentinel")
    try:
        made.start()
        yield made
    finally:
        made.stop()


@pytest.mark.real_redis
def test_after_the_master_dies_the_replica_serves_the_dialogues_within_seconds(servers, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    app = create_app({"TESTING": True, "REDIS_URL": f"redis+sentinel://127.0.0.1:{servers.ports['sentinel']}/{SERVICE}",
                      "RATE_LIMIT_USSD": "0"})
    RedisCustomerBase(get_redis(app)).upsert([prepaid("1000000001", PHONE)])
    client = app.test_client()
    before = Phone(client, PHONE).dial().send("1")
    assert before.screen.startswith("Compteur 10000000017")
    before.send("00")  # home: nothing left to resume on the next dial
    # What was written is on the replica too (replication is asynchronous: a write the master
    # acknowledged a moment before dying may be lost, which is not what this test is about).
    servers.wait(lambda: servers.client("replica").info("replication").get("slave_repl_offset")
                 == servers.client("master").info("replication").get("master_repl_offset"), "the replica to catch up")

    servers.processes["master"].send_signal(signal.SIGKILL)
    promoted = servers.wait(lambda: servers.master_port() == servers.ports["replica"], "the replica's promotion")
    started = time.monotonic()
    answers: list[str] = []
    while time.monotonic() - started < 10:
        phone = Phone(client, PHONE).dial()  # every answer is a screen or the polite END, never an error
        answers.append(phone.body[:3])
        if not phone.ended:
            break
        time.sleep(0.2)
    back_after = time.monotonic() - started
    assert answers[-1] == "CON", answers
    assert back_after < 3, (back_after, answers)
    # The customer base written before the failover is there: the menu knows the meter.
    assert Phone(client, PHONE).dial().send("1").screen.startswith("Compteur 10000000017"), promoted
