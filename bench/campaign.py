"""A free-credit campaign for a whole population: N registrations as full USSD dialogues.

    .venv/bin/python bench/campaign.py                              # 248,000 arriving at 450/s: ~10 minutes
    .venv/bin/python bench/campaign.py --sms-share 0.1              # a tenth of them by SMS
    .venv/bin/python bench/campaign.py --customers 30000 --quota 20000
    .venv/bin/python bench/campaign.py --rate 0 --concurrency 400   # the closed loop: 400 always waiting
    .venv/bin/python bench/campaign.py --customers 300 --rate 100 --think 0.05 --quota 250 --sms-share 0.1  # seconds

In April 2020 a utility opened registration for free credit to about 248,000 beneficiaries
and its platform died at 250 simultaneous connections. This bench replays that day against
`guichet serve` on this machine:

1. starts a throwaway redis-server (a free port, a temporary folder, no persistence) and
   imports N customers (one prepaid meter each, on tariffs `prepaid` and `social`, in ten
   regions; one in seven also has a postpaid account on the same phone), then starts
   `guichet serve` against it as production runs it (granian; REDIS_URL, an admin key, the
   demo payment provider, SMS written to a file so they cost nothing);
2. creates the campaign GRATUIT (50 kWh, tariffs prepaid and social, every region, an
   optional quota) through the admin API, `POST /admin/campaigns`;
3. registers each of the N customers once, as Africa's Talking would send it: dial -> the
   main menu, whose "Credits gratuits" option is found by its text -> the caller's meters and
   accounts, whose "Compteur <meter>" line is picked (a caller from a phone the base does not
   know types the meter instead) -> the verdict, an END screen. With --sms-share, that share
   texts "GRATUIT <meter>" to the inbound SMS callback instead, and reads its verdict in the
   SMS the server sends back. A dialogue turned away by admission control ("Service tres
   demande") is dialled again after --redial-pause seconds, as a customer would.
   The registrants come in one of two ways:
   - the open loop (the default): --rate registrants start per second in all (Poisson
     arrivals, on a fixed schedule), however many are in flight, and each reads and types
     for --think seconds (1 s on average, 0.5x to 1.5x) between an answer and its next key.
     At 450/s, 248,000 have started after ~551 s: the 10-minute target, if the server keeps
     up. The dialogues in flight follow (rate x a dialogue's length: hundreds); they grow
     without bound when it does not, which the report shows (in flight by quarter);
   - the closed loop (--rate 0): --concurrency dialogues in flight, each taking the next
     registrant when it ends (--think 0 by default: every dialogue always has a hop at the
     server, and latency is, by Little's law, concurrency / throughput).
   The load generator is cheap per request, for it shares this machine's CPU with the server:
   --procs client processes, each one asyncio event loop whose coroutines are the dialogues;
   each process keeps a pool of --connections keep-alive HTTP/1.1 connections (an
   aggregator's gateway), lent first come first served for one request at a time; requests
   are written as bytes and answers read by their Content-Length;
4. reads the campaign's figures (`GET /admin/campaigns/GRATUIT`) and every registration
   (`GET /admin/campaigns/GRATUIT/registrations.csv`) and checks them against what the
   customers were told: the count exact, each reference once, each registrant once, the
   quota never passed by one.

It prints the wall time of the registrations, hop latency (p50, p99, max: from writing the
request to the answer's last byte), the arrivals offered and achieved, the dialogues in
flight (mean, max, by quarter), how long requests waited for a pooled connection (apart from
the hop latency, and the hop latency with it), the answers that were not 200, the admission refusals and redials, the
counts, where the CPU went (server, Redis, load generator: all on this machine), and the
machine. Targets: all registrations within 10 minutes, p99 hop latency <= 100 ms, no 5xx and
no failed request, every count exact (and, in the open loop, the load generator on its
schedule). Exit status 1 when one is missed, saying by how much. Loopback only.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import collections
import csv
import datetime
import http.client
import io
import json
import multiprocessing
import os
import queue
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from utility.customers import Account, RedisCustomerBase  # noqa: E402
from utility.demo import FAMILY_NAMES, FIRST_NAMES, REGIONS  # noqa: E402
from utility.meters import with_check_digit  # noqa: E402

SEEG = 248_000
CODE = "GRATUIT"
NAME = {"fr": "Crédit gratuit", "en": "Free credit"}
TARIFFS = ["prepaid", "social"]
SERVICE_CODE = "*384#"
NETWORK = "62401"
SHORT_CODE = "20880"  # the number the SMS are sent to
USSD_PATH = "/ussd/africastalking"
SMS_PATH = "/sms/africastalking/inbound"
MENU_ENTRY = "Crédits gratuits"
SATURATED = "très demandé"  # ussd/texts/fr.toml [end] saturated
TARGET_LIST = "Pour quel compteur ou compte?"  # [campaigns] target
NUMBER_PROMPT = "Numéro du compteur ou du compte:"  # [campaigns] prompt
CAMPAIGN_LIST = "Crédits gratuits:"  # [campaigns] title: several campaigns open
ACCEPTED = re.compile(rf"Inscription {CODE} recue pour le compteur (\d+), réf ([A-Z0-9]+)\.")
QUOTA = f"{CODE} est complet"
ALREADY = re.compile(rf"Déjà inscrit à {CODE} le [0-9/]+, réf ([A-Z0-9]+)\.")
OPTION = re.compile(r"^(\d+)\. (.*)$", re.M)
WALL_TARGET = 600.0  # seconds for all the registrations
P99_TARGET = 100.0  # ms


# -- the population ------------------------------------------------------------------------
def _share(i: int, salt: int) -> float:
    """A number in [0, 1) that looks random but is the same for the same customer, in any process."""
    return ((i * 2654435761 + salt * 40503) % 4294967296) / 4294967296


@dataclass(frozen=True)
class Registrant:
    index: int
    meter: str
    phone: str  # the phone that calls or texts
    channel: str  # "ussd" | "sms"
    typed: bool  # calls from a phone the base does not know: types the meter


def registrant(i: int, sms_share: float, typed_share: float) -> Registrant:
    meter = with_check_digit(f"014{i:07d}")
    sms = _share(i, 1) < sms_share
    typed = not sms and _share(i, 2) < typed_share
    phone = f"+23769{i:07d}" if typed else f"+23765{i:07d}"  # a relative's phone, or the holder's own
    return Registrant(i, meter, phone, "sms" if sms else "ussd", typed)


def accounts(n: int) -> list[Account]:
    """N customers, each with a prepaid meter on the holder's phone; one in seven also has a
    postpaid account (listed after the meter: accounts are sorted by number)."""
    out = []
    regions, firsts, families = REGIONS["CM"], FIRST_NAMES["CM"], FAMILY_NAMES["CM"]
    due = datetime.date.today() + datetime.timedelta(days=20)
    for i in range(n):
        name = f"{firsts[i % len(firsts)]} {families[(i // len(firsts)) % len(families)]}"
        phone, region = f"+23765{i:07d}", regions[i % len(regions)]
        out.append(Account(f"CM-{i:07d}", with_check_digit(f"014{i:07d}"), name, phone, region,
                           "social" if i % 5 == 0 else "prepaid", 0, None))
        if i % 7 == 3:
            out.append(Account(f"CP-{i:07d}", "", name, phone, region, "postpaid", 12_500, due))
    return out


# -- the servers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(probe, what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            probe()
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not come up within {within:g} s") from None
            time.sleep(0.2)


@contextmanager
def redis_server(binary: str, folder: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                "--save", "", "--appendonly", "no"],
                               stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.2).close(), "redis-server")
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def guichet(env: dict[str, str], folder: Path) -> Iterator[tuple[int, int]]:
    """`guichet serve` on a free port: (port, its process group)."""
    port = free_port()
    log = (folder / "serve.log").open("a")
    process = subprocess.Popen([str(BIN / "guichet"), "serve", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> None:
        if process.poll() is not None:
            raise SystemExit(f"guichet serve exited ({process.returncode}); see {folder / 'serve.log'}")
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()

    try:
        wait_for(ready, "guichet serve")
        yield port, process.pid
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes], patience: float = 20.0) -> None:
    """Stop a server started in a process group of its own, every process of it: SIGTERM,
    then SIGKILL after ``patience`` seconds."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(patience)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def processes(pids: set[int] | None = None, group: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the name) of the processes ``pids`` or of
    the process group ``group``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if (pids is not None and int(entry) in pids) or (group is not None and int(fields[2]) == group):
            yield int(entry), fields


def cpu_seconds(pids: set[int] | None = None, group: int | None = None) -> float:
    """CPU time (user + system) of the processes ``pids`` or of the process group ``group``."""
    total = sum(int(fields[11]) + int(fields[12]) for _, fields in processes(pids, group))
    return total / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs, {model}{memory}"


# -- the admin API -------------------------------------------------------------------------
def admin(port: int, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- the customers' side -------------------------------------------------------------------
@dataclass
class Tally:
    """What one client process saw."""

    hops: array.array = field(default_factory=lambda: array.array("d"))  # seconds, USSD hops answered 200
    by_hop: dict = field(default_factory=dict)  # the same, by hop: dial, choice (the menu's), verdict
    sms: array.array = field(default_factory=lambda: array.array("d"))  # seconds, SMS callbacks answered 200
    statuses: Counter = field(default_factory=Counter)  # "<path> <status>" of answers that were not 200
    errors: Counter = field(default_factory=Counter)  # failed requests and answers out of script, by reason
    reconnects: int = 0  # a kept-alive connection the server had closed: opened again, the request sent again
    saturated: int = 0  # dialogues turned away by admission control
    redialled: int = 0  # registrants who had to dial again at least once
    most_redials: int = 0
    gave_up: int = 0  # registrants turned away --max-redials times
    # (index, channel, outcome, reference): outcome accepted | quota | already | other | error | sent
    # (an SMS, whose verdict comes by SMS); reference: the registration's, or the words of the other or error
    outcomes: list = field(default_factory=list)
    # seconds: each request's wait for a pooled connection; (open loop) each start's delay behind its
    # schedule; each registrant's dialogue, from dialling to the verdict, redials included
    waits: array.array = field(default_factory=lambda: array.array("d"))
    lags: array.array = field(default_factory=lambda: array.array("d"))
    durations: array.array = field(default_factory=lambda: array.array("d"))
    queued: array.array = field(default_factory=lambda: array.array("d"))  # USSD hops answered 200: wait + answer
    started: int = 0  # registrants who started (dialled or texted)
    last_start: float = 0.0  # time.time() of the last start (after merge: seconds since the start, the latest)
    achieved: float = 0.0  # registrants started per second: started / the last start (after merge: the sum)


class ScriptError(Exception):
    """The server answered something the dialogue did not expect."""


class Closed(Exception):
    """The server closed the connection before answering a byte."""


class Connection:
    """One keep-alive HTTP/1.1 connection of the pool; opened when first lent."""

    __slots__ = ("reader", "writer", "used")

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = False  # it has carried a request: the server may have closed it since

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()  # the transport closes at the loop's next turn; nobody waits for it
        self.reader = self.writer = None
        self.used = False


class Pool:
    """The keep-alive connections of a client process, lent one request at a time, first come first
    served: a connection given back goes straight to the dialogue that has waited longest (with a
    plain asyncio.Queue, a dialogue that gives one back and asks again before yielding would take it
    again, and the others would wait for ever)."""

    def __init__(self, size: int) -> None:
        self.connections = [Connection() for _ in range(size)]
        self.idle = collections.deque(self.connections)
        self.waiting: collections.deque[asyncio.Future[Connection]] = collections.deque()

    def lend(self) -> Connection | asyncio.Future[Connection]:
        """An idle connection, or the future of one when all are lent (or others wait already)."""
        if self.idle and not self.waiting:
            return self.idle.popleft()
        future: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return future

    def give_back(self, connection: Connection) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(connection)
                return
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


class Client:
    """A client process's side of the wire: a pool of --connections keep-alive connections that the
    dialogues borrow for one request each, as an aggregator's gateway would; requests written as bytes,
    answers read by their Content-Length."""

    def __init__(self, port: int, timeout: float, tally: Tally, connections: int) -> None:
        self.port, self.timeout, self.tally = port, timeout, tally
        self.pool = Pool(connections)
        self.heads = {path: (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ").encode()
                      for path in (USSD_PATH, SMS_PATH)}

    def close(self) -> None:
        self.pool.close()

    async def post(self, path: str, fields: dict[str, str]) -> tuple[int, str, float, float]:
        """(status, body, seconds from writing the request to its answer's last byte, seconds waited
        for a pooled connection before)."""
        body = urlencode(fields).encode()
        request = b"%s%d\r\n\r\n%s" % (self.heads[path], len(body), body)
        pool, tally = self.pool, self.tally
        lent, waited = pool.lend(), 0.0
        if isinstance(lent, Connection):
            connection = lent
        else:  # every connection lent: wait for one, as a pooled gateway does
            waiting = time.perf_counter()
            connection = await lent
            waited = time.perf_counter() - waiting
        tally.waits.append(waited)
        try:
            for attempt in (1, 2):
                if connection.writer is None:
                    try:
                        async with asyncio.timeout(self.timeout):
                            connection.reader, connection.writer = await asyncio.open_connection("127.0.0.1", self.port)
                    except (TimeoutError, OSError) as exc:
                        connection.close()
                        raise ScriptError(f"connection failed ({type(exc).__name__})") from exc
                kept = connection.used
                began = time.perf_counter()
                try:
                    async with asyncio.timeout(self.timeout):
                        status, text, keep = await exchange(connection, request)
                except TimeoutError as exc:
                    connection.close()
                    raise ScriptError(f"no answer within {self.timeout:g} s") from exc
                except (Closed, ConnectionResetError, BrokenPipeError) as exc:
                    connection.close()
                    if attempt == 1 and kept:  # a kept-alive connection closed by the server: a fresh one
                        tally.reconnects += 1
                        continue
                    raise ScriptError(f"connection failed ({type(exc).__name__})") from exc
                except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    connection.close()
                    raise ScriptError(f"request failed ({type(exc).__name__}: {exc})") from exc
                seconds = time.perf_counter() - began
                if keep:
                    connection.used = True
                else:
                    connection.close()
                return status, text, seconds, waited
            raise AssertionError("unreachable")
        finally:
            pool.give_back(connection)

    async def hop(self, session: str, phone: str, text: str, kind: str) -> str:
        status, body, seconds, waited = await self.post(USSD_PATH, {"sessionId": session, "serviceCode": SERVICE_CODE,
                                                            "phoneNumber": phone, "networkCode": NETWORK,
                                                            "text": text})
        if status != 200:
            self.tally.statuses[f"USSD {status}"] += 1
            raise ScriptError(f"USSD HTTP {status}")
        self.tally.hops.append(seconds)
        self.tally.queued.append(waited + seconds)
        self.tally.by_hop.setdefault(kind, array.array("d")).append(seconds)
        if body[:4] not in ("CON ", "END "):
            raise ScriptError(f"neither CON nor END: {body[:40]!r}")
        return body

    async def ussd(self, who: Registrant, run: str, think: float, pause: float, max_redials: int) -> tuple[str, str]:
        redials = 0
        try:
            while True:
                session = f"ATUid_{run}_{who.index}_{redials}"
                screen = await self.hop(session, who.phone, "", "dial")
                if screen.startswith("END ") and SATURATED in screen:
                    self.tally.saturated += 1
                    if redials >= max_redials:
                        self.tally.gave_up += 1
                        return "error", "turned away by admission control every time"
                    redials += 1
                    await asyncio.sleep(pause)
                    continue
                break
        finally:
            if redials:
                self.tally.redialled += 1
                self.tally.most_redials = max(self.tally.most_redials, redials)
        if not screen.startswith("CON "):
            raise ScriptError(f"the first screen ends the call: {screen[4:60]!r}")
        entry = pick(screen, lambda label: label == MENU_ENTRY)
        if entry is None:
            raise ScriptError(f"no {MENU_ENTRY!r} on the main menu")
        path = [entry]
        await pause_for(think)
        screen = await self.hop(session, who.phone, "*".join(path), "choice")
        if screen.startswith("CON ") and CAMPAIGN_LIST in screen:  # several campaigns open: ours by its name
            choice = pick(screen, lambda label: label == NAME["fr"])
            if choice is None:
                raise ScriptError(f"{NAME['fr']!r} is not among the campaigns open")
            path.append(choice)
            await pause_for(think)
            screen = await self.hop(session, who.phone, "*".join(path), "campaign")
        if screen.startswith("CON ") and TARGET_LIST in screen:
            choice = pick(screen, lambda label: label == f"Compteur {who.meter}")
            if choice is None:
                raise ScriptError("the caller's meter is not on the list")
            path.append(choice)
        elif screen.startswith("CON ") and NUMBER_PROMPT in screen:
            path.append(who.meter)
        else:
            raise ScriptError(f"unexpected screen after the menu: {screen[:60]!r}")
        await pause_for(think)
        screen = await self.hop(session, who.phone, "*".join(path), "verdict")
        if not screen.startswith("END "):
            raise ScriptError(f"no verdict: {screen[:60]!r}")
        return verdict(screen[4:], who.meter)

    async def sms(self, who: Registrant, run: str) -> tuple[str, str]:
        status, body, seconds, _ = await self.post(SMS_PATH, {
            "from": who.phone, "to": SHORT_CODE, "text": f"{CODE} {who.meter}",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "id": f"ATXid_{run}_{who.index}", "linkId": "", "networkCode": NETWORK})
        if status != 200:
            self.tally.statuses[f"SMS {status}"] += 1
            raise ScriptError(f"SMS HTTP {status}")
        self.tally.sms.append(seconds)
        return "sent", ""


async def exchange(connection: Connection, request: bytes) -> tuple[int, str, bool]:
    """Write one request and read its answer: (status, body, whether the connection stays open)."""
    assert connection.reader is not None and connection.writer is not None
    connection.writer.write(request)  # a few hundred bytes: the socket takes them at once, no drain
    try:
        head = await connection.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:  # end of stream before a byte: the server had closed the connection
            raise Closed from None
        raise
    lines = head[:-4].split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.") or len(lines[0]) < 12:
        raise ValueError(f"not an HTTP status line: {lines[0][:40]!r}")
    status, length, keep = int(lines[0][9:12]), -1, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length < 0:
        raise ValueError("an answer without Content-Length")
    body = await connection.reader.readexactly(length) if length else b""
    return status, body.decode("utf-8", "replace"), keep


async def pause_for(think: float) -> None:
    """A customer reading a screen and typing: ``think`` seconds on average, from half to one
    and a half times that, so that the dialogues in flight do not move in step."""
    if think > 0:
        await asyncio.sleep(random.uniform(0.5, 1.5) * think)


def pick(screen: str, wanted) -> str | None:
    for number, label in OPTION.findall(screen):
        if wanted(label.strip()):
            return number
    return None


def verdict(text: str, meter: str) -> tuple[str, str]:
    """(outcome, reference) of a verdict's words: accepted, quota, already, or other."""
    if (found := ACCEPTED.search(text)) is not None:
        if found.group(1) != meter:
            return "other", f"accepted for another meter: {text[:60]}"
        return "accepted", found.group(2)
    if QUOTA in text:
        return "quota", ""
    if (found := ALREADY.search(text)) is not None:
        return "already", found.group(1)
    return "other", text[:80]


# Each client process's slots in the array shared with the parent (written by that process only):
STARTED, DONE, IN_FLIGHT = range(3)


def client_process(number: int, procs: int, dialogues: int, settings: dict, shared, results) -> None:
    """One client process: one event loop, the dialogues its coroutines. ``dialogues``: the closed
    loop's dialogues in flight in this process (unused in the open loop)."""
    results.put(asyncio.run(client_loop(number, procs, dialogues, settings, shared)))


async def client_loop(number: int, procs: int, dialogues: int, settings: dict, shared) -> Tally:
    n, think, run = settings["customers"], settings["think"], settings["run"]
    tally = Tally()
    client = Client(settings["port"], settings["timeout"], tally, settings["connections"])
    mine = range(number, n, procs)
    slot = 3 * number

    async def register(i: int) -> None:
        who = registrant(i, settings["sms_share"], settings["typed_share"])
        tally.started += 1
        tally.last_start = time.time()
        shared[slot + STARTED] = tally.started
        shared[slot + IN_FLIGHT] += 1
        began = time.perf_counter()
        try:
            if who.channel == "sms":
                outcome, reference = await client.sms(who, run)
            else:
                outcome, reference = await client.ussd(who, run, think, settings["redial_pause"],
                                                       settings["max_redials"])
        except ScriptError as exc:
            outcome, reference = "error", str(exc)
        tally.durations.append(time.perf_counter() - began)
        if outcome == "error":
            tally.errors[reference] += 1
        tally.outcomes.append((i, who.channel, outcome, reference))
        shared[slot + IN_FLIGHT] -= 1
        shared[slot + DONE] += 1

    await asyncio.sleep(max(0.0, settings["start_wall"] - time.time()))  # every process starts at the same moment
    if settings["rate"] > 0:  # open loop: Poisson arrivals, whatever the number in flight
        loop, rate = asyncio.get_running_loop(), settings["rate"] / procs
        due = loop.time()
        flying: set[asyncio.Task] = set()
        for i in mine:
            due += random.expovariate(rate)  # on an absolute schedule: a late start does not delay the next
            ahead = due - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
            tally.lags.append(max(0.0, loop.time() - due))
            task = asyncio.create_task(register(i))
            flying.add(task)
            task.add_done_callback(flying.discard)
        while flying:
            await asyncio.gather(*flying)
    else:  # closed loop: each dialogue in flight takes the next registrant when it ends
        queue = iter(mine)

        async def dialogue() -> None:
            if think > 0:  # the dialogues in flight start spread over one dialogue's thinking
                await asyncio.sleep(random.uniform(0, 2 * think))
            for i in queue:  # one event loop: the iterator needs no lock
                await register(i)

        await asyncio.gather(*(dialogue() for _ in range(dialogues)))
    client.close()
    await asyncio.sleep(0)  # let the transports close
    if tally.started and tally.last_start > settings["start_wall"]:
        tally.achieved = tally.started / (tally.last_start - settings["start_wall"])
    return tally


def merge(tallies: list[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.hops.extend(tally.hops)
        for kind, seconds in tally.by_hop.items():
            total.by_hop.setdefault(kind, array.array("d")).extend(seconds)
        total.sms.extend(tally.sms)
        total.statuses.update(tally.statuses)
        total.errors.update(tally.errors)
        total.reconnects += tally.reconnects
        total.saturated += tally.saturated
        total.redialled += tally.redialled
        total.most_redials = max(total.most_redials, tally.most_redials)
        total.gave_up += tally.gave_up
        total.outcomes.extend(tally.outcomes)
        total.waits.extend(tally.waits)
        total.queued.extend(tally.queued)
        total.lags.extend(tally.lags)
        total.durations.extend(tally.durations)
        total.started += tally.started
        total.last_start = max(total.last_start, tally.last_start)
        total.achieved += tally.achieved
    return total


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1)]


# -- the SMS the server sent back ------------------------------------------------------------
def sms_verdicts(path: Path, phones: dict[str, Registrant]) -> dict[int, list[tuple[str, str]]]:
    """The verdicts the SMS registrants received, by registrant (a fulfilment SMS is not one)."""
    found: dict[int, list[tuple[str, str]]] = {}
    if not path.exists():
        return found
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a line being written
            who = phones.get(message.get("to", ""))
            if who is None:
                continue
            body = message.get("body", "")
            if not (body.startswith("Inscription ") or QUOTA in body or body.startswith("Déjà inscrit")):
                continue  # the fulfilment's token SMS, or anything else that is not the verdict
            found.setdefault(who.index, []).append(verdict(body, who.meter))
    return found


# -- the run -------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=SEEG, help="registrants, each a customer of its own")
    parser.add_argument("--rate", type=float, default=450.0,
                        help="open loop: registrants starting per second, in all (Poisson arrivals), whatever the "
                             "number in flight; 0: the closed loop of --concurrency")
    parser.add_argument("--concurrency", type=int,
                        help="closed loop (--rate 0 only): registrations in flight, in all, each registrant after "
                             "another (default 400)")
    parser.add_argument("--procs", type=int, default=4,
                        help="client processes the load is spread over, an event loop each")
    parser.add_argument("--connections", type=int, default=32,
                        help="keep-alive connections per client process, which the dialogues borrow one request at a "
                             "time (an aggregator's connection pool)")
    parser.add_argument("--sms-share", type=float, default=0.0, help="share of registrants who text instead")
    parser.add_argument("--typed-share", type=float, default=0.1,
                        help="share of USSD registrants calling from a phone the base does not know")
    parser.add_argument("--quota", type=int, help="the campaign's quota (default: none)")
    parser.add_argument("--think", type=float,
                        help="seconds between a screen and the next key, on average (each pause from 0.5x to 1.5x); "
                             "default 1.0 in the open loop, 0 in the closed loop (every dialogue always has a hop "
                             "in flight)")
    parser.add_argument("--redial-pause", type=float, default=1.0,
                        help="seconds before a customer turned away by admission control dials again")
    parser.add_argument("--max-redials", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a client waits for an answer")
    parser.add_argument("--server-processes", type=int, help="WEB_CONCURRENCY of guichet serve (default: its own)")
    parser.add_argument("--threads", type=int, help="GUICHET_THREADS of guichet serve (default: its own)")
    parser.add_argument("--sms-rate", type=float,
                        help="GUICHET_SMS_RATE_PER_SECOND, the pace of every SMS (the verdicts by SMS, the campaign's "
                             "fulfilment), written to a file. Default: the server's own (10/s), or 100/s with "
                             "--sms-share, so that the SMS verdicts come within minutes")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="more environment for guichet serve, e.g. GUICHET_ADMISSION_MAX_IN_FLIGHT=2 (repeatable)")
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds to wait, after the load, for the SMS registrants' verdicts")
    parser.add_argument("--wall-target", type=float, default=WALL_TARGET)
    parser.add_argument("--p99-target", type=float, default=P99_TARGET, help="ms")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"), help="the redis-server binary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, SMS file, export)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not args.redis_server:
        sys.exit("no redis-server on the PATH: install it, or give --redis-server")
    if not 0 <= args.sms_share <= 1 or not 0 <= args.typed_share <= 1:
        sys.exit("--sms-share and --typed-share are shares, from 0 to 1")
    if args.rate < 0:
        sys.exit("--rate is registrants per second: 0 (the closed loop) or more")
    if args.rate > 0 and args.concurrency is not None:
        sys.exit("--concurrency is the closed loop's: give --rate 0 with it (the open loop's dialogues in flight "
                 "follow from --rate and --think)")
    if args.concurrency is None:
        args.concurrency = 400
    if args.think is None:
        args.think = 1.0 if args.rate > 0 else 0.0
    if args.connections < 1 or args.procs < 1 or args.concurrency < 1:
        sys.exit("--connections, --procs and --concurrency are at least 1")
    procs = args.procs if args.rate > 0 else max(1, min(args.procs, args.concurrency))
    if args.sms_rate is None and args.sms_share > 0:
        args.sms_rate = 100.0
    if any("=" not in pair for pair in args.server_env):
        sys.exit("--server-env takes NAME=VALUE")

    folder = Path(tempfile.mkdtemp(prefix="guichet-campaign-"))
    try:
        return run(args, procs, folder)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, procs: int, folder: Path) -> int:
    import redis

    n = args.customers
    print(f"campaign bench: {n:,} registrants, {mode(args)}, from {procs} client processes x {args.connections} "
          "connections"
          f"{f', {args.sms_share:.0%} by SMS' if args.sms_share else ''}"
          f"{f', quota {args.quota:,}' if args.quota is not None else ''}; {machine()}; folder {folder}", flush=True)
    print("  the load generator runs on the same machine as the server and Redis, and takes its share of the CPU")
    registrants = [registrant(i, args.sms_share, args.typed_share) for i in range(n)]
    by_meter = {who.meter: who for who in registrants}
    sms_phones = {who.phone: who for who in registrants if who.channel == "sms"}
    figures: dict = {"customers": n, "mode": "open" if args.rate > 0 else "closed", "rate": args.rate or None,
                     "concurrency": None if args.rate > 0 else args.concurrency, "procs": procs,
                     "connections": args.connections, "sms_share": args.sms_share,
                     "quota": args.quota, "think": args.think, "sms_rate": args.sms_rate, "server_env": args.server_env,
                     "machine": machine()}
    missed: list[str] = []

    with redis_server(args.redis_server, folder) as (redis_url, redis_pid):
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        started = time.perf_counter()
        population = accounts(n)
        result = RedisCustomerBase(client).upsert(population)
        imported = time.perf_counter() - started
        print(f"  imported       {result.imported:,} accounts ({n:,} meters) in {imported:.1f} s", flush=True)

        key = secrets.token_urlsafe(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_") and k != "REDIS_URL"}
        env.pop("WEB_CONCURRENCY", None)
        env.update({"REDIS_URL": redis_url, "GUICHET_ADMIN_KEY": key, "GUICHET_PAYMENT_PROVIDER": "demo",
                    "GUICHET_SMS_PROVIDER": "file", "GUICHET_SMS_FILE": str(folder / "sms.jsonl"),
                    # The whole population arrives from one address, as through one aggregator:
                    # the per-address limits (meant to bind a flood) are off; admission control is not.
                    "GUICHET_RATE_LIMIT_USSD": "0", "GUICHET_RATE_LIMIT_SMS": "0"})
        if args.sms_rate is not None:
            env["GUICHET_SMS_RATE_PER_SECOND"] = f"{args.sms_rate:g}"
        env.update(pair.split("=", 1) for pair in args.server_env)
        if args.server_processes:
            env["WEB_CONCURRENCY"] = str(args.server_processes)
        if args.threads:
            env["GUICHET_THREADS"] = str(args.threads)
        with guichet(env, folder) as (port, group):
            now = datetime.datetime.now(datetime.UTC)
            definition = {"code": CODE, "name": NAME, "starts_at": (now - datetime.timedelta(hours=1)).isoformat(),
                          "ends_at": (now + datetime.timedelta(days=7)).isoformat(),
                          "benefit": {"kind": "kwh", "amount": 50},
                          "eligibility": {"tariffs": TARIFFS, "regions": []}, "quota": args.quota}
            status, body = admin(port, key, "POST", "/admin/campaigns", definition)
            if status != 201:
                print(f"  POST /admin/campaigns answered {status}: {body[:500]!r}")
                return 1
            wait_for_menu(port)
            print(f"  serving        guichet serve on port {port} (granian, processes "
                  f"{args.server_processes or 'default'}, threads {args.threads or 'default'}); campaign {CODE} "
                  f"created; SMS at {f'{args.sms_rate:g}/s' if args.sms_rate else 'the default rate'} into a file"
                  + "".join(f"; {pair}" for pair in args.server_env), flush=True)

            def cpu_now() -> dict[str, float]:
                times = os.times()
                background = cpu_seconds(pids={group})  # granian's supervising process: the background work
                return {"serving processes": cpu_seconds(group=group) - background, "background work": background,
                        "redis": cpu_seconds(pids={redis_pid}),
                        "load generator": times.children_user + times.children_system}

            cpu_before = cpu_now()
            tally, wall, samples = load(args, procs, port)
            cpu = {name: seconds - cpu_before[name] for name, seconds in cpu_now().items()}
            report_load(args, procs, tally, wall, samples, cpu, figures, missed)

            sms_got: dict[int, list[tuple[str, str]]] = {}
            if sms_phones:
                sms_got = wait_for_sms(folder / "sms.jsonl", sms_phones, args.settle)
            status, body = admin(port, key, "GET", f"/admin/campaigns/{CODE}")
            stats = json.loads(body) if status == 200 else {}
            if status != 200:
                missed.append(f"GET /admin/campaigns/{CODE} answered {status}")
            status, export = admin(port, key, "GET", f"/admin/campaigns/{CODE}/registrations.csv")
            if status != 200:
                missed.append(f"GET /admin/campaigns/{CODE}/registrations.csv answered {status}")
                export = b""
            (folder / "registrations.csv").write_bytes(export)
            check_counts(args, registrants, by_meter, tally, sms_got, stats, export, figures, missed)
            server_log(folder / "serve.log", figures)
            redis_info(client, figures)

    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    if missed:
        print("targets        MISSED:")
        for line in missed:
            print(f"  - {line}")
        return 1
    print("targets        met")
    return 0


def wait_for_menu(port: int, within: float = 20.0) -> None:
    """Dial with throwaway phones until the main menu offers the campaign ten times running (each
    serving process keeps a copy of the open campaigns for a few seconds)."""
    deadline, running, number = time.monotonic() + within, 0, 0
    while running < 10:
        number += 1
        body = urlencode({"sessionId": f"ATUid_probe_{number}", "serviceCode": SERVICE_CODE,
                          "phoneNumber": f"+23768{number:07d}", "networkCode": NETWORK, "text": ""}).encode()
        screen = urllib.request.urlopen(f"http://127.0.0.1:{port}{USSD_PATH}", data=body, timeout=5).read().decode()
        running = running + 1 if pick(screen, lambda label: label == MENU_ENTRY) else 0
        if time.monotonic() > deadline:
            raise SystemExit(f"the main menu does not offer {MENU_ENTRY!r} within {within:g} s: {screen!r}")
        if not running:
            time.sleep(0.5)


def mode(args: argparse.Namespace) -> str:
    think = f"{args.think:g} s thinking between screens" if args.think > 0 else "no thinking between screens"
    if args.rate > 0:
        return f"open loop: {args.rate:g} starting per second (Poisson arrivals), {think}"
    return f"closed loop: {args.concurrency} in flight, {think}"


SAMPLE = 0.5  # seconds between two counts of the dialogues in flight


def load(args: argparse.Namespace, procs: int, port: int) -> tuple[Tally, float, list[tuple[float, int]]]:
    """The registrations, from ``procs`` client processes: (their tally, the wall time, the dialogues
    in flight sampled every SAMPLE seconds, as (seconds since the start, count))."""
    shared = multiprocessing.RawArray("q", 3 * procs)  # per process: started, done, in flight
    results: multiprocessing.Queue = multiprocessing.Queue()
    settings = {"port": port, "customers": args.customers, "timeout": args.timeout, "sms_share": args.sms_share,
                "typed_share": args.typed_share, "think": args.think, "redial_pause": args.redial_pause,
                "max_redials": args.max_redials, "rate": args.rate, "connections": args.connections,
                "run": secrets.token_hex(3), "start_wall": time.time() + 1.0}
    per_proc = [args.concurrency // procs + (1 if k < args.concurrency % procs else 0) for k in range(procs)]
    workers = [multiprocessing.Process(target=client_process, args=(k, procs, per_proc[k], settings, shared, results))
               for k in range(procs)]
    for worker in workers:
        worker.start()
    while time.time() < settings["start_wall"]:
        time.sleep(0.005)
    began = time.perf_counter()
    tallies: list[Tally] = []
    samples: list[tuple[float, int]] = []
    last = began

    def total(slot: int) -> int:
        return sum(shared[3 * k + slot] for k in range(procs))

    while len(tallies) < procs:
        try:
            tallies.append(results.get(timeout=SAMPLE))
        except queue.Empty:
            pass
        now = time.perf_counter()
        samples.append((now - began, total(IN_FLIGHT)))
        if now - last >= 15 and len(tallies) < procs:
            last = now
            done, started, elapsed = total(DONE), total(STARTED), now - began
            print(f"  ... {elapsed:6.0f} s  {done:>9,} of {args.customers:,} registrants  {done / elapsed:7.0f}/s"
                  f"   started {started:,} ({started / elapsed:.0f}/s)   in flight {samples[-1][1]:,}", flush=True)
        if any(worker.exitcode not in (None, 0) for worker in workers):
            raise SystemExit("a client process died")
    wall = time.perf_counter() - began
    for worker in workers:
        worker.join()
    tally = merge(tallies)
    tally.last_start -= settings["start_wall"]  # seconds since the start
    return tally, wall, samples


def report_load(args: argparse.Namespace, procs: int, tally: Tally, wall: float, samples: list[tuple[float, int]],
                cpu: dict[str, float], figures: dict, missed: list[str]) -> None:
    n = args.customers
    hops = sorted(tally.hops)
    p50, p99, top = (percentile(hops, 50) * 1000, percentile(hops, 99) * 1000, (hops[-1] * 1000) if hops else 0.0)
    sms = sorted(tally.sms)
    rate = n / wall
    print(f"  registrations  {n:,} in {wall:.1f} s = {rate:,.0f}/s"
          f"{'' if n == SEEG else f' (248,000 at this rate: {SEEG / rate:.0f} s)'}")
    print(f"  USSD hops      {len(hops):,} answered = {len(hops) / wall:,.0f} hops/s   p50 {p50:.1f} ms   "
          f"p99 {p99:.1f} ms   max {top:.1f} ms   (from writing the request to the answer's last byte)")
    for kind, seconds in tally.by_hop.items():
        ordered = sorted(seconds)
        print(f"    {kind:<12} {len(ordered):>9,}   p50 {percentile(ordered, 50) * 1000:.1f} ms   "
              f"p99 {percentile(ordered, 99) * 1000:.1f} ms   max {ordered[-1] * 1000:.1f} ms")
    if sms:
        print(f"  SMS callbacks  {len(sms):,} answered   p50 {percentile(sms, 50) * 1000:.1f} ms   "
              f"p99 {percentile(sms, 99) * 1000:.1f} ms   max {sms[-1] * 1000:.1f} ms")

    # The load as it was offered and as it came: arrivals, dialogues in flight, the client's own queue.
    span, achieved = tally.last_start, tally.achieved
    lags = sorted(tally.lags)
    lag99, lag_top = (percentile(lags, 99), lags[-1]) if lags else (0.0, 0.0)
    if args.rate > 0:
        behind = lag99 > 0.25
        print(f"  arrivals       offered {args.rate:,.0f}/s, achieved {achieved:,.0f}/s ({tally.started:,} started, the "
              f"last {span:.1f} s in); starts behind schedule p99 {lag99 * 1000:.1f} ms, max {lag_top * 1000:.1f} ms"
              + ("   THE LOAD GENERATOR FELL BEHIND" if behind else ""))
        if behind:
            missed.append(f"the load generator fell behind its schedule (p99 {lag99:.2f} s late, started "
                          f"{achieved:,.0f}/s of {args.rate:,.0f}/s offered): the load was not the one asked for")
    else:
        print(f"  arrivals       {achieved:,.0f}/s ({tally.started:,} started, the last {span:.1f} s in; closed loop: "
              f"each when a dialogue in flight ended)")
    counts = [count for _, count in samples]
    mean_flying = sum(counts) / len(counts) if counts else 0.0
    quarters: list[float] = []
    durations = sorted(tally.durations)
    typical = percentile(durations, 50) if durations else 0.0
    if args.rate > 0 and span >= 16 * SAMPLE:  # 4 samples a quarter at least
        for q in range(4):
            inside = [count for at, count in samples if q * span / 4 <= at < (q + 1) * span / 4]
            quarters.append(sum(inside) / len(inside) if inside else 0.0)
    # Little's law: the dialogues in flight that the arrivals and the thinking explain, every hop
    # answered at the p99 target (the first quarter also holds the ramp-up, the growth is read after it)
    pauses = 3 if "campaign" in tally.by_hop else 2
    hop_target = args.p99_target / 1000
    explained = achieved * ((1 - args.sms_share) * (pauses * args.think + 3 * hop_target) + args.sms_share * hop_target)
    growing = bool(quarters) and quarters[3] > 1.5 * quarters[1] + 10
    behind_server = args.rate > 0 and (growing or mean_flying > 1.5 * explained + 10)
    print(f"  in flight      mean {mean_flying:,.0f}, max {max(counts, default=0):,} dialogues (sampled every "
          f"{SAMPLE:g} s)"
          + (f"; by quarter of the arrivals {' / '.join(f'{q:,.0f}' for q in quarters)}" if quarters else "")
          + (f"; the arrivals and thinking explain up to ~{explained:,.0f}" if args.rate > 0 else "")
          + ("\n                 THE SERVER DID NOT KEEP UP WITH THE ARRIVALS: dialogues pile up"
             + (" (growing)" if growing else "") if behind_server else ""))
    if durations:
        print(f"  dialogues      p50 {typical:.2f} s   p99 {percentile(durations, 99):.2f} s   max {durations[-1]:.2f} s "
              "from the first request to the verdict (thinking and redials included)")
    waits = sorted(tally.waits)
    waited = len(waits) - bisect.bisect_right(waits, 0.001)
    wait50, wait99, wait_top = ((percentile(waits, 50), percentile(waits, 99), waits[-1]) if waits else (0.0,) * 3)
    queued = sorted(tally.queued)
    queued50, queued99 = (percentile(queued, 50), percentile(queued, 99)) if queued else (0.0, 0.0)
    print(f"  pool waits     {waited:,} of {len(waits):,} requests ({waited / max(1, len(waits)):.1%}) waited over 1 ms "
          f"for one of the {procs} x {args.connections} connections: p50 {wait50 * 1000:.1f} ms   "
          f"p99 {wait99 * 1000:.1f} ms   max {wait_top * 1000:.1f} ms; USSD hops with that wait: "
          f"p50 {queued50 * 1000:.1f} ms   p99 {queued99 * 1000:.1f} ms")
    bottleneck = waited >= 0.05 * len(waits) > 0
    if bottleneck:
        print("                 THE CLIENT'S POOL WAS A BOTTLENECK: requests queued for a connection before the server "
              "saw them; the hop latency above leaves that wait out (more --connections moves the queue to the server)")
    elif wait99 * 1000 > 0.1 * args.p99_target:
        print("                 the pool ran out at times (the server's slowest moments); the hop latency above leaves "
              "those waits out")
    print(f"  not 200        {sum(tally.statuses.values())}{f'  {dict(tally.statuses)}' if tally.statuses else ''}")
    print(f"  failed         {sum(tally.errors.values())}"
          + "".join(f"\n                   {count} x {why}" for why, count in tally.errors.most_common(8)))
    print(f"  reconnects     {tally.reconnects} (kept-alive connections the server closed; the request sent again)")
    print(f"  admission      {tally.saturated:,} dialogues turned away ('Service très demandé'); "
          f"{tally.redialled:,} registrants dialled again, at most {tally.most_redials} times; "
          f"{tally.gave_up} gave up")
    busy = sum(cpu.values())
    print("  CPU            " + ", ".join(f"{name} {seconds:,.1f} s ({seconds / wall:.2f} cores)"
                                          for name, seconds in cpu.items())
          + f"; {busy / wall:.2f} of {os.cpu_count()} cores busy")
    requests = len(tally.waits)
    if requests:
        print(f"                 load generator {cpu['load generator'] / requests * 1e6:,.0f} µs of CPU per request")
    figures.update({"wall_s": round(wall, 2), "registrations_per_s": round(rate, 1), "hops": len(hops),
                    "hops_per_s": round(len(hops) / wall, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                    "max_ms": round(top, 2), "sms_callbacks": len(sms), "not_200": dict(tally.statuses),
                    "failed": dict(tally.errors), "reconnects": tally.reconnects, "saturated": tally.saturated,
                    "redialled": tally.redialled, "most_redials": tally.most_redials, "gave_up": tally.gave_up,
                    "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
                    "offered_per_s": args.rate or None, "achieved_per_s": round(achieved, 1),
                    "started": tally.started, "last_start_s": round(span, 2),
                    "start_lag_p99_ms": round(lag99 * 1000, 2), "start_lag_max_ms": round(lag_top * 1000, 2),
                    "in_flight_mean": round(mean_flying, 1), "in_flight_max": max(counts, default=0),
                    "in_flight_by_quarter": [round(q, 1) for q in quarters], "in_flight_growing": growing,
                    "in_flight_explained": round(explained, 1) if args.rate > 0 else None,
                    "server_kept_up": None if args.rate <= 0 else not behind_server,
                    "dialogue_p50_s": round(typical, 3),
                    "dialogue_p99_s": round(percentile(durations, 99), 3) if durations else None,
                    "requests": requests, "pool_waited": waited, "pool_wait_p50_ms": round(wait50 * 1000, 2),
                    "pool_wait_p99_ms": round(wait99 * 1000, 2), "pool_wait_max_ms": round(wait_top * 1000, 2),
                    "pool_bottleneck": bottleneck, "hop_with_wait_p50_ms": round(queued50 * 1000, 2),
                    "hop_with_wait_p99_ms": round(queued99 * 1000, 2),
                    "load_generator_us_per_request": round(cpu["load generator"] / requests * 1e6, 1)
                    if requests else None})
    if wall > args.wall_target:
        missed.append(f"wall time {wall:.0f} s, target {args.wall_target:.0f} s: {wall - args.wall_target:.0f} s "
                      f"({wall / args.wall_target - 1:.0%}) over")
    if not p99 <= args.p99_target:
        missed.append(f"p99 hop latency {p99:.1f} ms, target {args.p99_target:g} ms: {p99 / args.p99_target:.1f}x")
    # What the customer waits includes the aggregator's queue for a connection: checked too.
    if queued and p99 <= args.p99_target < queued99 * 1000:
        missed.append(f"p99 hop latency with the wait for a connection {queued99 * 1000:.1f} ms, target "
                      f"{args.p99_target:g} ms: {queued99 * 1000 / args.p99_target:.1f}x")
    fives = sum(count for name, count in tally.statuses.items() if name.split()[-1].startswith("5"))
    if fives:
        missed.append(f"{fives} answers were 5xx")
    if sum(tally.statuses.values()) - fives:
        missed.append(f"{sum(tally.statuses.values()) - fives} answers were neither 200 nor 5xx")
    if tally.errors:
        missed.append(f"{sum(tally.errors.values())} registrations failed (requests or screens out of script)")


def wait_for_sms(path: Path, phones: dict[str, Registrant], settle: float) -> dict[int, list[tuple[str, str]]]:
    began = time.monotonic()
    while True:
        got = sms_verdicts(path, phones)
        if len(got) >= len(phones) or time.monotonic() - began > settle:
            print(f"  SMS verdicts   {len(got):,} of {len(phones):,} SMS registrants answered by SMS "
                  f"{time.monotonic() - began:.0f} s after the load", flush=True)
            return got
        time.sleep(1.0)


def check_counts(args: argparse.Namespace, registrants: list[Registrant], by_meter: dict[str, Registrant],
                 tally: Tally, sms_got: dict[int, list[tuple[str, str]]], stats: dict, export: bytes, figures: dict,
                 missed: list[str]) -> None:
    n = args.customers
    expected = n if args.quota is None else min(n, args.quota)
    # What each registrant was told: on the END screen, or in the SMS reply.
    told: dict[int, tuple[str, str]] = {}
    for i, channel, outcome, reference in tally.outcomes:
        if channel == "ussd":
            told[i] = (outcome, reference)
    for i, verdicts in sms_got.items():
        told[i] = verdicts[0]
        if len(verdicts) > 1:
            missed.append(f"SMS registrant {i} got {len(verdicts)} verdicts by SMS")
    outcomes = Counter(outcome for outcome, _ in told.values())
    accepted_refs = [reference for outcome, reference in told.values() if outcome == "accepted"]
    untold = n - len(told)
    others = Counter(reference for outcome, reference in told.values() if outcome == "other")

    rows = list(csv.DictReader(io.StringIO(export.decode("utf-8")))) if export else []
    references = Counter(row["reference"] for row in rows)
    seen = Counter(row["meter"] for row in rows)
    strangers = [row for row in rows if row["meter"] not in by_meter]
    wrong = [row for row in rows if row["meter"] in by_meter and (
        row["phone"] != by_meter[row["meter"]].phone or row["channel"] != by_meter[row["meter"]].channel)]
    mismatched = sum(1 for row in rows if row["meter"] in by_meter
                     and told.get(by_meter[row["meter"]].index, ("", ""))[0] == "accepted"
                     and told[by_meter[row["meter"]].index][1] != row["reference"])
    exported_not_told = sum(1 for row in rows if row["meter"] in by_meter
                            and told.get(by_meter[row["meter"]].index, ("", ""))[0] not in ("accepted", ""))
    registered = stats.get("registered")
    refusals = {reason: count for reason, count in (stats.get("refusals") or {}).items() if count}

    print(f"  verdicts       {dict(outcomes)}; without a verdict {untold}"
          + "".join(f"\n                   {count} x other: {text}" for text, count in others.most_common(5)))
    print(f"  admin API      registered {registered}, refusals {refusals}, remaining quota "
          f"{stats.get('remaining_quota')}, fulfilled so far {stats.get('fulfilled')}")
    print(f"  export         {len(rows):,} rows, {len(references):,} distinct references, {len(seen):,} distinct meters; "
          f"{sum(1 for row in rows if row['channel'] == 'sms'):,} by SMS")
    print(f"  expected       registered {expected:,} (of {n:,}{f', quota {args.quota:,}' if args.quota else ''}), "
          f"quota refusals {n - expected:,}")
    figures.update({"verdicts": dict(outcomes), "untold": untold, "registered": registered, "refusals": refusals,
                    "distinct_accepted_verdicts": len(set(accepted_refs)), "export_rows": len(rows),
                    "export_distinct_references": len(references), "expected_registered": expected,
                    "sms_verdicts": len(sms_got), "fulfilled": stats.get("fulfilled")})

    def must(ok: bool, what: str) -> None:
        if not ok:
            missed.append(what)

    must(registered == expected, f"registered {registered}, expected {expected:,}"
         + (f": {registered - expected:+,}" if isinstance(registered, int) else ""))
    must(len(set(accepted_refs)) == len(accepted_refs), f"{len(accepted_refs) - len(set(accepted_refs))} "
         "accepted verdicts repeat another's reference")
    must(len(set(accepted_refs)) == registered, f"{len(set(accepted_refs)):,} distinct accepted verdicts, "
         f"registered {registered}")
    must(outcomes.get("quota", 0) == n - expected, f"{outcomes.get('quota', 0):,} told 'quota reached', "
         f"expected {n - expected:,}")
    must(refusals.get("quota", 0) == n - expected, f"the admin API counts {refusals.get('quota', 0):,} quota "
         f"refusals, expected {n - expected:,}")
    must(not (set(refusals) - {"quota"}), f"refusals other than quota: {refusals}")
    must(untold == 0, f"{untold:,} registrants were told no verdict")
    must(not (set(outcomes) - {"accepted", "quota"}), f"verdicts other than accepted and quota: {dict(outcomes)}")
    must(len(rows) == registered, f"the export has {len(rows):,} rows, registered {registered}")
    must(len(references) == len(rows), f"{len(rows) - len(references)} references repeat in the export")
    must(all(count == 1 for count in seen.values()), f"{sum(1 for c in seen.values() if c > 1)} meters appear "
         "more than once in the export")
    must(not strangers, f"{len(strangers)} exported registrations are not the bench's registrants")
    must(not wrong, f"{len(wrong)} exported registrations name another phone or channel than the registrant's")
    must(mismatched == 0, f"{mismatched} registrants were told another reference than the export's")
    must(exported_not_told == 0, f"{exported_not_told} exported registrations were told a refusal")
    accepted_meters = {registrants[i].meter for i, (outcome, _) in told.items() if outcome == "accepted"}
    must(accepted_meters == set(seen), f"{len(accepted_meters - set(seen))} registrants told 'accepted' are not in "
         f"the export, {len(set(seen) - accepted_meters)} exported were not told so")


def server_log(path: Path, figures: dict) -> None:
    text = path.read_text(errors="replace") if path.exists() else ""
    tracebacks = text.count("Traceback (most recent call last)")
    saturated = text.count("saturated: a new dialogue")
    errors = sum(1 for line in text.splitlines() if " ERROR " in line or line.startswith("ERROR"))
    print(f"  server log     {tracebacks} tracebacks, {errors} ERROR lines, {saturated} 'saturated' warnings")
    figures.update({"server_tracebacks": tracebacks, "server_error_lines": errors, "server_saturated": saturated})


def redis_info(client, figures: dict) -> None:
    info = client.info()
    print(f"  redis          {info['total_commands_processed']:,} commands, {info['used_memory_human']} used, "
          f"CPU {info['used_cpu_user'] + info['used_cpu_sys']:.0f} s in all")
    figures["redis_commands"] = info["total_commands_processed"]


if __name__ == "__main__":
    sys.exit(main())
