"""Fault drill: purchases keep flowing while Redis freezes, Redis restarts and the server
is killed; afterwards every paid order must have exactly one token SMS, each within 10 s
of the fault's end.

    .venv/bin/python bench/fault_drill.py            # about a minute
    .venv/bin/python bench/fault_drill.py --quick    # about 45 s (what tests/faults/test_drill.py runs)
    .venv/bin/python bench/fault_drill.py --cluster --quick   # a Redis Cluster master SIGKILLed instead
                                     # (tests/faults/test_cluster_failover.py; see run_cluster)

It starts its own redis-server (a free port in 6400-6420, append-only file in a temporary
folder, as production would keep its data) and `guichet serve` (two processes, demo payment
provider, SMS written to a file), seeds a demo customer base with `guichet demo seed`, and
runs buy-units dialogues from a few client threads, each with a phone of its own. While they
run: Redis is paused (SIGSTOP) then resumed, Redis is shut down then started again, and the
server is killed (SIGKILL, every process) then started again, each fault 10 s (--calm, the
target) after the end of the one before, so that a late recovery is charged to its own
fault. Then it waits for things to settle (bounded) and reads the outcome from Redis and
the SMS file:

    placed / paid / fulfilled    orders, from the journal
    tokens sent                  receipt SMS in the file, and orders with more than one
    not final                    orders in a state other than receipt_sent, declined, failed
    payment -> token             the longest wait between an order's payment and its token
    after <fault>                from the fault's end (Redis answering again, the restart
                                 launched) to the last token of the orders pending then

    hops answered 5xx            must be 0, whatever the fault
    while <redis fault>          what the hops got while Redis was away (polite END screens) and
                                 how long after Redis answered again a hop got a screen (2 s)

The exit status is 1 when a target is missed: a paid order without exactly one token, a
fault after which a pending token took more than --target seconds, a hop answered 5xx, or
hops still without a screen 2 s after Redis answered again. Traffic goes to
127.0.0.1 only; every loop ends by itself (--max-settle bounds the wait at the end).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

PORTS = range(6400, 6421)  # the Redis ports this drill (and the fault tests) may use
DIALOGUE = ["", "1", "5000", "1", "1", "1"]  # buy units: (my one meter) 5000, pay, this number, confirm
REFERENCE = re.compile(r"R[ée]f\. ?([A-Z0-9-]+)")
FINAL = {"receipt_sent", "declined", "failed"}


HOPS_TARGET = 2.0  # seconds from Redis answering again to the first hop answered with a screen


def free_port(candidates: range = PORTS) -> int:
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")


def any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of our own on 127.0.0.1, to pause, shut down, restart and kill."""

    def __init__(self, workdir: Path, port: int | None = None, appendonly: bool = False,
                 binary: str = "redis-server") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1,
                           decode_responses=True, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 10) -> float:
        """Start it (again, on the same port and data); returns when it answers PING."""
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
        ]
        command += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        probe = self.client()
        while True:
            try:
                if probe.ping():
                    return time.time()
            except redis.RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}: see {self.workdir}/redis.log")
            time.sleep(0.05)

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def shutdown(self, timeout: float = 10) -> None:
        """A real, graceful shutdown: the append-only file is flushed, clients see it close."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a paused process must not linger
            self.process.kill()
            self.process.wait(10)


class GuichetServer:
    """`guichet serve` in a process group of its own, so a crash takes all its processes."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, workers: int = 2) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from app import main; main()", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return time.time()

    def wait_ready(self, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=3) as answer:
                    if answer.status == 200:
                        return time.time()
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline or (self.process is not None and self.process.poll() is not None):
                raise RuntimeError(f"guichet serve is not ready on port {self.port}: see {self.log_path}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL to every process of the server at once: a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Traffic:
    """Client threads walking buy-units dialogues, one fresh phone per dialogue."""

    base: str
    phones: Iterator[str]
    threads: int = 4
    pause: float = 0.5  # seconds between two dialogues of a thread
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    placed: dict[str, float] = field(default_factory=dict)  # reference -> when its END came
    outcomes: Counter[str] = field(default_factory=Counter)
    # Every hop: (when it was answered, what came back): "con" (a screen), "end", "http <status>",
    # or "no answer" (the server was not there: its SIGKILL).
    hops: list[tuple[float, str]] = field(default_factory=list)
    # --cluster: every hop with its phone (when, phone, "con" | "end" | "end early" | "http ..." | "no
    # answer"): a failover stops only the phones whose hash slots the dead master served.
    phone_hops: list[tuple[float, str, str]] = field(default_factory=list)

    def _next_phone(self) -> str | None:
        with self.lock:
            return next(self.phones, None)

    def _dialogue(self, phone: str, number: int) -> None:
        session = f"drill-{number}-{phone[-6:]}"
        inputs: list[str] = []
        for step in DIALOGUE:
            if step:
                inputs.append(step)
            form = {"sessionId": session, "serviceCode": "*384#", "phoneNumber": phone, "networkCode": "62401",
                    "text": "*".join(inputs)}
            try:
                with urllib.request.urlopen(self.base + "/ussd/africastalking",
                                            data=urllib.parse.urlencode(form).encode(), timeout=15) as answer:
                    body = answer.read().decode()
            except urllib.error.HTTPError as exc:  # an answer, but not a screen: a 5xx is what must never be
                self._hop(f"http {exc.code}", phone)
                self._count(f"http {exc.code}")
                return
            except (OSError, urllib.error.URLError) as exc:
                self._hop("no answer", phone)
                self._count(f"no answer ({type(exc).__name__})")
                return
            self._hop("end" if body.startswith("END") else "con", phone,
                      "end early" if body.startswith("END") and step != DIALOGUE[-1] else "")
            if body.startswith("END"):
                found = REFERENCE.search(body)
                if found and step == DIALOGUE[-1]:
                    with self.lock:
                        self.placed[found.group(1)] = time.time()
                    self._count("order placed")
                else:
                    self._count("ended early: " + body[4:40].replace("\n", " "))
                return
        self._count("left open")

    def _count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def _hop(self, outcome: str, phone: str = "", detail: str = "") -> None:
        with self.lock:
            now = time.time()
            self.hops.append((now, outcome))
            self.phone_hops.append((now, phone, detail or outcome))

    def _run(self, number: int) -> None:
        dialogue = 0
        while not self.stopping.is_set():
            phone = self._next_phone()
            if phone is None:
                return  # no phone left: this thread is done
            dialogue += 1
            self._dialogue(phone, number * 100_000 + dialogue)
            self.stopping.wait(self.pause)

    def start(self) -> list[threading.Thread]:
        workers = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)]
        for thread in workers:
            thread.start()
        return workers


@dataclass
class Fault:
    name: str
    started: float
    back: float = 0.0  # Redis answering again, or the server's restart launched


def drill_phones(customers: int) -> list[str]:
    """Phones of the demo base with exactly one account, a prepaid meter, and a payer number
    the demo provider approves (it declines numbers ending in 9)."""
    from utility.demo import demo_accounts

    accounts = demo_accounts(customers)
    per_phone = Counter(account.phone for account in accounts)
    return [a.phone for a in accounts
            if per_phone[a.phone] == 1 and a.meter_number and not a.phone.endswith("9")]


def _when(at: float, faults: list[Fault]) -> str:
    """``at`` said against the faults: during one, or how long after the last one began."""
    for fault in faults:
        if fault.started <= at <= fault.back:
            return f"during '{fault.name}' (+{at - fault.started:.1f} s)"
    before = [fault for fault in faults if fault.started <= at]
    return f"{at - before[-1].back:.1f} s after '{before[-1].name}'" if before else "before the faults"


def _iso(at: str) -> float:
    return datetime.datetime.fromisoformat(at).timestamp()


@dataclass
class Report:
    placed: int
    paid: int
    fulfilled: int
    tokens: int
    paid_without_token: list[str]
    duplicates: list[str]
    not_final: dict[str, int]
    stuck: list[str]  # the orders not final: reference, state, when they were placed
    longest_wait: float
    slowest: str  # the order that waited longest for its token (to look up in serve.log)
    after_fault: dict[str, float | None]  # None: a pending token never came
    client_outcomes: dict[str, int]
    server_errors: int  # hops answered 5xx: never, whatever the fault
    # For each Redis fault: what the hops got while Redis was away (polite ENDs, else what),
    # and the seconds from Redis answering again to the first hop answered with a screen.
    during_outage: dict[str, dict[str, int]]
    hops_back_after: dict[str, float | None]
    failover: dict[str, object] = field(default_factory=dict)  # --cluster only: see run_cluster

    def targets_met(self, target: float, hops_target: float = HOPS_TARGET) -> bool:
        return (not self.paid_without_token and not self.duplicates and self.server_errors == 0
                and all(wait is not None and wait <= target for wait in self.after_fault.values())
                and all(wait is not None and wait <= hops_target for wait in self.hops_back_after.values()))


def read_outcome(client: redis.Redis, sms_file: Path, faults: list[Fault], traffic: Traffic) -> Report:
    """Orders from the journal and their records, tokens from the SMS file."""
    from state import keys

    created: dict[str, float] = {}
    paid_at: dict[str, float] = {}
    fulfilled: set[str] = set()
    last_id = "-"
    while True:  # the whole journal, a page at a time (it ends: nothing writes any more)
        page = client.xrange(keys.journal(), min=last_id, count=5000)
        rows = [(entry_id, fields) for entry_id, fields in page if entry_id != last_id]
        if not rows:
            break
        for entry_id, fields in rows:
            last_id = entry_id
            if fields.get("kind") == "order.created":
                created[fields["order"]] = float(fields["at"])
            elif fields.get("kind") == "order.transition" and fields.get("dest") == "paid":
                paid_at.setdefault(fields["order"], float(fields["at"]))
            elif fields.get("kind") == "order.transition" and fields.get("dest") == "fulfilled":
                fulfilled.add(fields["order"])
    tokens: dict[str, list[float]] = defaultdict(list)
    lines = sms_file.read_text(encoding="utf-8").splitlines() if sms_file.exists() else []
    for line in lines:
        try:
            sms = json.loads(line)
        except ValueError:
            continue  # a line cut by the SIGKILL
        record = client.hgetall(keys.sms_message(sms["message_id"]))
        reference = record.get("reference", "")
        if record.get("kind") == "receipt" and reference.startswith("order:"):
            tokens[reference.split(":")[1]].append(_iso(sms["at"]))
    states: Counter[str] = Counter()
    stuck: list[str] = []
    for reference, at in created.items():
        raw = client.get(keys.order(reference))
        state = json.loads(raw)["state"] if raw else "missing"
        states[state] += 1
        if state not in FINAL:
            stuck.append(f"{reference} {state}, placed {_when(at, faults)}")
    waits = {ref: min(tokens[ref]) - at for ref, at in paid_at.items() if tokens.get(ref)}
    after: dict[str, float | None] = {}
    for fault in faults:
        # Orders placed before the fault ended, paid at some point, whose token came after it.
        pending = [ref for ref, at in created.items()
                   if at < fault.back and ref in paid_at and not any(t < fault.back for t in tokens.get(ref, []))]
        if any(not tokens.get(ref) for ref in pending):
            after[fault.name] = None
        else:
            after[fault.name] = max((min(tokens[ref]) - fault.back for ref in pending), default=0.0)
    hops = sorted(traffic.hops)
    during: dict[str, dict[str, int]] = {}
    back_after: dict[str, float | None] = {}
    for fault in faults:
        if not fault.name.startswith("redis"):
            continue
        during[fault.name] = dict(Counter(kind for at, kind in hops if fault.started <= at <= fault.back))
        first = next((at for at, kind in hops if at >= fault.back and kind == "con"), None)
        back_after[fault.name] = None if first is None else first - fault.back
    return Report(
        server_errors=sum(1 for _, kind in hops if kind.startswith("http 5")),
        during_outage=during,
        hops_back_after=back_after,
        placed=len(created),
        paid=len(paid_at),
        fulfilled=len(fulfilled),
        tokens=sum(len(times) for times in tokens.values()),
        paid_without_token=sorted(ref for ref in paid_at if not tokens.get(ref)),
        duplicates=sorted(ref for ref, times in tokens.items() if len(times) > 1),
        not_final={state: n for state, n in states.items() if state not in FINAL},
        stuck=stuck,
        longest_wait=max(waits.values(), default=0.0),
        slowest=max(waits, key=waits.__getitem__, default=""),
        after_fault=after,
        client_outcomes=dict(traffic.outcomes),
    )


def seeded_traffic(env: dict[str, str], args: argparse.Namespace, server: GuichetServer,
                   seed_timeout: float) -> tuple[Traffic, list[threading.Thread]]:
    """Seed the demo customer base, start the server, then the client threads walking dialogues."""
    subprocess.run([sys.executable, "-c", "from app import main; main()", "demo", "seed", "--customers",
                    str(args.customers)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=seed_timeout)
    phones = drill_phones(args.customers)
    server.start()
    server.wait_ready()
    traffic = Traffic(server.base, iter(phones), threads=args.threads, pause=args.pause)
    return traffic, traffic.start()


def run(args: argparse.Namespace) -> Report:
    work = Path(tempfile.mkdtemp(prefix="guichet-drill-"))
    sms_file = work / "sms.jsonl"
    redis_server = RedisServer(work / "redis", appendonly=True, binary=args.redis_server)
    port = any_free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")},
        "REDIS_URL": redis_server.url,
        "GUICHET_SMS_PROVIDER": "file",
        "GUICHET_SMS_FILE": str(sms_file),
        "GUICHET_SMS_RATE_PER_SECOND": "100",
        "GUICHET_DEMO_PAYMENT_DELAY": "0.5",
        "GUICHET_PAYMENT_POLL_AFTER": "2",  # a callback lost in a fault is polled for soon
        "GUICHET_PAYMENT_POLL_EVERY": "1",
        "GUICHET_THREADS": "8",
    }
    server = GuichetServer(env, port, work / "serve.log", workers=args.workers)
    faults: list[Fault] = []
    print(f"fault drill: redis-server on 127.0.0.1:{redis_server.port} (append-only), guichet serve on "
          f"127.0.0.1:{port} x{args.workers}; logs in {work}", flush=True)
    redis_server.start()
    try:
        traffic, clients = seeded_traffic(env, args, server, seed_timeout=120)
        calm = args.calm

        def phase(label: str, seconds: float) -> None:
            print(f"  {time.strftime('%H:%M:%S')} {label}", flush=True)
            time.sleep(seconds)

        phase("traffic", args.warmup)
        fault = Fault("redis paused (SIGSTOP) 5 s", time.time())
        redis_server.pause()
        phase("redis paused", args.outage)
        redis_server.resume()
        fault.back = time.time()
        faults.append(fault)
        phase("redis resumed", calm)

        fault = Fault("redis shut down 5 s", time.time())
        redis_server.shutdown()
        phase("redis shut down", args.outage)
        fault.back = redis_server.start()
        faults.append(fault)
        phase("redis restarted", calm)

        fault = Fault("server killed (SIGKILL) 2.5 s", time.time())
        server.kill()
        phase("server killed", args.crash)
        fault.back = server.start()
        faults.append(fault)
        server.wait_ready()
        phase("server restarted", args.tail)

        traffic.stopping.set()
        for thread in clients:
            thread.join(30)
        client = redis_server.client()
        # Settle: until every order that was paid has its token, or --max-settle.
        deadline = time.monotonic() + args.max_settle
        while time.monotonic() < deadline:
            report = read_outcome(client, sms_file, faults, traffic)
            if not report.paid_without_token and not report.not_final:
                break
            time.sleep(1)
        report = read_outcome(client, sms_file, faults, traffic)
        print(f"  {time.strftime('%H:%M:%S')} settled", flush=True)
        return report
    finally:
        server.stop()
        redis_server.kill()


# -- --cluster: a Redis Cluster master SIGKILLed under load, its replica promoted ---------------------
PAID_IN_LOG = re.compile(r"\(order ([A-Z0-9]+)\): \w+ -> successful")  # records.learn's line
TOKEN_IN_BODY = re.compile(r"r[ée]f\.? ?([A-Z2-7]{8})\b", re.IGNORECASE)
PAID_STATES = {"paid", "paid_awaiting_fulfilment", "fulfilled", "receipt_sent"}


def cluster_victim(name: str) -> str:
    """The key whose master the drill kills: the one that serves it serves its whole slot."""
    from state import keys

    return {"orders": keys.open_orders(), "journal": keys.journal(),
            "payments": keys.payment("demo", "index:pending")}[name]


def run_cluster(args: argparse.Namespace) -> Report:
    """The drill on a Redis Cluster of 3 masters and 3 replicas (node timeout --node-timeout
    ms), the jobs on a plain redis-server: purchases run, the master serving --kill-master-of
    is SIGKILLed, its replica is promoted by the cluster itself, traffic goes on, then it
    settles. Redis replication is asynchronous: a write the dead master acknowledged but had
    not yet sent to its replica is gone. So "paid" here is what any witness says (the journal,
    the order, the demo provider's record, the serve log's "-> successful" lines), and a token
    SMS whose record was lost is still found by its body."""
    from redis.cluster import RedisCluster

    from tests.redis_server import ThrowawayCluster

    work = Path(tempfile.mkdtemp(prefix="guichet-drill-cluster-"))
    sms_file = work / "sms.jsonl"
    cluster = ThrowawayCluster(args.redis_server, args.redis_cli, work / "cluster", masters=3, replicas=1,
                               node_timeout=args.node_timeout)
    jobs = RedisServer(work / "jobs", appendonly=True, binary=args.redis_server)
    port = any_free_port()
    cluster.start()
    jobs.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")},
        "REDIS_URL": cluster.url,
        "GUICHET_REDIS_JOBS_URL": jobs.url,
        "GUICHET_SMS_PROVIDER": "file",
        "GUICHET_SMS_FILE": str(sms_file),
        "GUICHET_SMS_RATE_PER_SECOND": "100",
        "GUICHET_DEMO_PAYMENT_DELAY": "0.5",
        "GUICHET_PAYMENT_POLL_AFTER": "2",
        "GUICHET_PAYMENT_POLL_EVERY": "1",
        "GUICHET_THREADS": "8",
    }
    server = GuichetServer(env, port, work / "serve.log", workers=args.workers)
    print(f"fault drill (cluster): 3 masters + 3 replicas from 127.0.0.1:{cluster.ports[0]} (node timeout "
          f"{args.node_timeout} ms), jobs on 127.0.0.1:{jobs.port}, guichet serve on 127.0.0.1:{port} "
          f"x{args.workers}; logs in {work}", flush=True)
    try:
        traffic, clients = seeded_traffic(env, args, server, seed_timeout=180)

        def phase(label: str, seconds: float) -> None:
            print(f"  {time.strftime('%H:%M:%S')} {label}", flush=True)
            time.sleep(seconds)

        phase("traffic", args.warmup)
        victim_key = cluster_victim(args.kill_master_of)
        master = cluster.master_of(victim_key)
        replica = cluster.replicas_of(master)[0]
        if args.replica_behind:
            _hold_replica_back(master, replica, args.replica_behind)
        lag = _replication_lag(cluster, master, replica)
        fault = Fault(f"redis master killed ({args.kill_master_of})", time.time())
        cluster.kill_master(master)
        if args.replica_behind:
            _let_replica_back(replica)
        print(f"  {time.strftime('%H:%M:%S')} master 127.0.0.1:{master} (serving {victim_key}) SIGKILLed; "
              f"its replica {replica} was {lag} bytes behind", flush=True)
        cluster.wait_promoted(replica, timeout=60)
        fault.back = time.time()
        print(f"  {time.strftime('%H:%M:%S')} replica 127.0.0.1:{replica} promoted, cluster_state ok, "
              f"{fault.back - fault.started:.1f} s after the kill", flush=True)
        phase("after the failover", args.tail)
        traffic.stopping.set()
        for thread in clients:
            thread.join(30)
        client = RedisCluster(host="127.0.0.1", port=replica, decode_responses=True, socket_timeout=5)
        deadline = time.monotonic() + args.max_settle
        while True:
            report = _cluster_outcome(client, sms_file, work / "serve.log", [fault], traffic)
            if (not report.paid_without_token and not report.not_final) or time.monotonic() > deadline:
                break
            time.sleep(1)
        print(f"  {time.strftime('%H:%M:%S')} settled", flush=True)
        report.failover.update(_failover_figures(client, traffic, fault, master, replica, lag))
        client.close()
        return report
    finally:
        server.stop()
        cluster.kill()
        jobs.kill()


def _hold_replica_back(master: int, replica: int, seconds: float) -> None:
    """Leave the replica ``seconds`` behind its master, as over a slow or broken link: cut its
    link (CLIENT KILL TYPE master, on the replica) after giving it a wrong ``masterauth``, so it
    cannot reconnect (it would at once). Every write the master acknowledges meanwhile is lost
    when it dies: what a replica's lag risks. `_let_replica_back` undoes it."""
    r = redis.Redis(host="127.0.0.1", port=replica, socket_timeout=1)
    r.config_set("masterauth", "drill-holds-this-replica-back")
    r.client_kill_filter(_type="master")
    time.sleep(seconds)


def _let_replica_back(replica: int) -> None:
    redis.Redis(host="127.0.0.1", port=replica, socket_timeout=1).config_set("masterauth", "")


def _replication_lag(cluster: object, master: int, replica: int) -> int | None:
    """Bytes of the replication stream the replica had not yet processed, an instant before the kill."""
    try:
        m = redis.Redis(host="127.0.0.1", port=master, socket_timeout=1)
        r = redis.Redis(host="127.0.0.1", port=replica, socket_timeout=1)
        ahead = int(m.info("replication")["master_repl_offset"])
        done = int(r.info("replication")["slave_repl_offset"])
        return ahead - done
    except redis.RedisError:
        return None


def _cluster_outcome(client: redis.Redis, sms_file: Path, serve_log: Path, faults: list[Fault],
                     traffic: Traffic) -> Report:
    """read_outcome, with "paid" and "tokens" from every witness (see run_cluster)."""
    from state import keys

    report = read_outcome(client, sms_file, faults, traffic)
    placed = set(traffic.placed)
    created: set[str] = set()
    paid_journal: set[str] = set()
    for _id, fields in client.xrange(keys.journal()):
        if fields.get("kind") == "order.created":
            created.add(fields["order"])
        elif fields.get("kind") == "order.transition" and fields.get("dest") == "paid":
            paid_journal.add(fields["order"])
    logged = set(PAID_IN_LOG.findall(serve_log.read_text(errors="replace"))) if serve_log.exists() else set()
    states: dict[str, str] = {}
    provider_says: set[str] = set()
    for reference in placed | created | paid_journal | logged:
        raw = client.get(keys.order(reference))
        states[reference] = json.loads(raw)["state"] if raw else "missing"
        ref = client.hget(keys.payment("demo", "order:" + reference), "provider_ref")
        if ref and client.hget(keys.payment("demo", ref), "demo_status") == "SUCCESSFUL":
            provider_says.add(reference)
    paid = paid_journal | logged | provider_says | {r for r, state in states.items() if state in PAID_STATES}
    tokens: dict[str, int] = Counter()
    record_lost = 0
    for line in sms_file.read_text(encoding="utf-8").splitlines() if sms_file.exists() else []:
        try:
            sms = json.loads(line)
        except ValueError:
            continue
        record = client.hgetall(keys.sms_message(sms["message_id"]))
        if record:
            if record.get("kind") == "receipt" and record.get("reference", "").startswith("order:"):
                tokens[record["reference"].split(":")[1]] += 1
        elif "Code" in sms["body"] and (found := TOKEN_IN_BODY.search(sms["body"])):
            record_lost += 1
            tokens[found.group(1)] += 1
    report.placed = len(placed | created)
    report.paid = len(paid)
    report.tokens = sum(tokens.values())
    report.paid_without_token = sorted(r for r in paid if not tokens.get(r))
    report.duplicates = sorted(r for r, n in tokens.items() if n > 1)
    report.not_final = dict(Counter(s for r, s in states.items() if s not in FINAL and (r in placed or r in paid)))
    report.failover = {
        "placed_by_clients": len(placed), "placed_not_journaled": len(placed - created),
        "paid_witnesses": {"journal": len(paid_journal), "serve_log": len(logged), "provider": len(provider_says),
                           "order_state": sum(1 for s in states.values() if s in PAID_STATES)},
        "paid_not_journaled": sorted(paid - paid_journal), "token_sms_record_lost": record_lost,
        "order_missing": sorted(r for r, s in states.items() if s == "missing"),
        "states_of_paid_without_token": {r: states.get(r, "?") for r in report.paid_without_token},
    }
    return report


def _failover_figures(client: redis.cluster.RedisCluster, traffic: Traffic, fault: Fault, master: int, replica: int,
                      lag: int | None) -> dict[str, object]:
    """The failover as the hops saw it: the phones whose slots the dead master served, and the others."""
    from state import keys

    slots: set[int] = set()
    node = redis.Redis(host="127.0.0.1", port=replica, socket_timeout=5, decode_responses=True)
    for start, end, owner, *_ in node.execute_command("CLUSTER SLOTS"):
        if int(owner[1]) == replica:
            slots.update(range(int(start), int(end) + 1))
    hops = sorted(traffic.phone_hops)
    affected = {phone for _, phone, _ in hops if phone and client.keyslot(keys.profile(phone)) in slots}
    failed = {"end early", "no answer"}

    def kinds(which: bool, start: float, end: float) -> dict[str, int]:
        return dict(Counter(kind for at, phone, kind in hops if start <= at <= end and (phone in affected) == which))

    after = [(at, phone, kind) for at, phone, kind in hops if at >= fault.back]
    first_screen = next((at for at, phone, kind in after if phone in affected and kind == "con"), None)
    last_failure = max((at for at, _, kind in hops
                        if at >= fault.started and (kind in failed or kind.startswith("http"))), default=None)
    return {
        "killed_master": master, "promoted_replica": replica, "replication_lag_bytes": lag,
        "promotion_s": round(fault.back - fault.started, 2),
        "affected_phones": len(affected),
        "hops_during_affected": kinds(True, fault.started, fault.back),
        "hops_during_others": kinds(False, fault.started, fault.back),
        "affected_screen_after_promotion_s": None if first_screen is None else round(first_screen - fault.back, 2),
        # Whether redis-py had found the promoted replica by then: the affected phones' first hops after it.
        "affected_first_hops_after_promotion": [(round(at - fault.back, 2), kind)
                                                for at, phone, kind in after if phone in affected][:4],
        "last_failed_hop_after_promotion_s": None if last_failure is None else round(last_failure - fault.back, 2),
    }


def print_report(report: Report, target: float) -> None:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    print()
    print(f"orders placed      {report.placed}")
    print(f"orders paid        {report.paid}")
    print(f"orders fulfilled   {report.fulfilled}")
    print(f"tokens sent        {report.tokens}")
    print(f"duplicates         {len(report.duplicates)}" + (f"  {report.duplicates[:10]}" if report.duplicates else ""))
    print(f"paid, no token     {len(report.paid_without_token)}"
          + (f"  {report.paid_without_token[:10]}" if report.paid_without_token else ""))
    not_final = sum(report.not_final.values())
    print(f"orders not final   {not_final}" + (f"  {report.not_final}" if not_final else ""))
    for line in report.stuck[:10]:
        print(f"                   {line}")
    print(f"payment -> token   longest {seconds(report.longest_wait)}"
          + (f"  (order {report.slowest})" if report.slowest else ""))
    for name, wait in report.after_fault.items():
        mark = "ok" if wait is not None and wait <= target else f"MISSED (target {target:g} s)"
        print(f"after {name:<30} last pending token {seconds(wait):>8}   {mark}")
    print(f"client dialogues   {dict(sorted(report.client_outcomes.items(), key=lambda kv: -kv[1]))}")
    print(f"hops answered 5xx  {report.server_errors}   " + ("ok" if report.server_errors == 0 else "MISSED (target 0)"))
    for name, kinds in report.during_outage.items():
        wait = report.hops_back_after.get(name)
        mark = "ok" if wait is not None and wait <= HOPS_TARGET else f"MISSED (target {HOPS_TARGET:g} s)"
        print(f"while {name:<30} hops got {kinds}; a screen again {seconds(wait):>8} after Redis   {mark}")
    for name, value in report.failover.items():
        print(f"failover {name:<34} {value}")
    print("targets            " + ("met" if report.targets_met(target) else "MISSED"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="less traffic before and after the faults (the test's profile)")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between two dialogues of a thread")
    parser.add_argument("--workers", type=int, default=2, help="guichet serve processes")
    parser.add_argument("--customers", type=int, default=2000, help="demo customers seeded")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds Redis stays paused, then down")
    parser.add_argument("--crash", type=float, default=2.5, help="seconds the server stays dead")
    parser.add_argument("--calm", type=float, default=10.0,
                        help="seconds of traffic from a fault's end to the next fault (the target: a fault's "
                             "recovery is not cut short by the next one)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of traffic before the first fault")
    parser.add_argument("--tail", type=float, default=None, help="seconds of traffic after the last fault")
    parser.add_argument("--max-settle", type=float, default=60.0, help="longest wait for the last tokens")
    parser.add_argument("--target", type=float, default=10.0, help="seconds allowed after a fault")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--redis-server", default="redis-server", help="the redis-server binary")
    parser.add_argument("--cluster", action="store_true",
                        help="instead: a Redis Cluster (3 masters + 3 replicas), one master SIGKILLed under load")
    parser.add_argument("--redis-cli", default="redis-cli", help="--cluster: the redis-cli binary")
    parser.add_argument("--node-timeout", type=int, default=1000, help="--cluster: cluster-node-timeout, ms")
    parser.add_argument("--replica-behind", type=float, default=0.0,
                        help="--cluster: cut the replica's link this many seconds before the kill (its lag: "
                             "the writes the master acknowledged meanwhile are lost)")
    parser.add_argument("--kill-master-of", choices=["orders", "journal", "payments"], default="orders",
                        help="--cluster: kill the master serving the open orders' index, the journal or "
                             "the demo payments' pending index")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = 2.0 if args.quick else 8.0
    if args.tail is None:
        args.tail = 5.0 if args.quick else 10.0
    report = run_cluster(args) if args.cluster else run(args)
    print_report(report, args.target)
    if args.json:
        args.json.write_text(json.dumps({**report.__dict__, "targets_met": report.targets_met(args.target)},
                                        indent=2))
    sys.exit(0 if report.targets_met(args.target) else 1)


if __name__ == "__main__":
    main()
