"""A free-credit campaign for a whole population: N registrations as full USSD dialogues.

    .venv/bin/python bench/campaign.py                              # 248,000: the SEEG story (15 to 20 minutes)
    .venv/bin/python bench/campaign.py --sms-share 0.1              # a tenth of them by SMS
    .venv/bin/python bench/campaign.py --customers 30000 --quota 20000
    .venv/bin/python bench/campaign.py --customers 300 --concurrency 20 --quota 250 --sms-share 0.1   # seconds

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
3. registers each of the N customers once, from several client processes (keep-alive
   http.client connections, a thread per dialogue in flight: --concurrency in all), as
   Africa's Talking would send it: dial -> the main menu, whose "Credits gratuits" option is
   found by its text -> the caller's meters and accounts, whose "Compteur <meter>" line is
   picked (a caller from a phone the base does not know types the meter instead) -> the
   verdict, an END screen. With --sms-share, that share texts "GRATUIT <meter>" to the
   inbound SMS callback instead, and reads its verdict in the SMS the server sends back.
   A dialogue turned away by admission control ("Service tres demande") is dialled again
   after --redial-pause seconds, as a customer would;
4. reads the campaign's figures (`GET /admin/campaigns/GRATUIT`) and every registration
   (`GET /admin/campaigns/GRATUIT/registrations.csv`) and checks them against what the
   customers were told: the count exact, each reference once, each registrant once, the
   quota never passed by one.

It prints the wall time of the registrations, hop latency (p50, p99, max), the answers
that were not 200, the admission refusals and redials, the counts, where the CPU went
(server, Redis, load generator: all on this machine), and the machine. Targets: all
registrations within 10 minutes, p99 hop latency <= 100 ms, no 5xx and no failed request,
every count exact. Exit status 1 when one is missed, saying by how much. Loopback only.
"""
from __future__ import annotations

import argparse
import array
import csv
import datetime
import http.client
import io
import json
import multiprocessing
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def cpu_seconds(pids: set[int] | None = None, group: int | None = None) -> float:
    """CPU time (user + system) of the processes ``pids`` or of the process group ``group``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if (pids is not None and int(entry) in pids) or (group is not None and int(fields[2]) == group):
            total += int(fields[11]) + int(fields[12])
    return total / tick


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


class ScriptError(Exception):
    """The server answered something the dialogue did not expect."""


class Client:
    def __init__(self, port: int, timeout: float, tally: Tally, lock: threading.Lock) -> None:
        self.port, self.timeout, self.tally, self.lock = port, timeout, tally, lock
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.used = False  # the connection has carried a request: the server may have closed it since

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str, float]:
        body = urlencode(fields)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "keep-alive"}
        for attempt in (1, 2):
            began = time.perf_counter()
            try:
                self.connection.request("POST", path, body=body, headers=headers)
                answer = self.connection.getresponse()
                data = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.connection.close()
                if attempt == 1 and self.used:  # a kept-alive connection closed by the server: a fresh one
                    with self.lock:
                        self.tally.reconnects += 1
                    self.used = False
                    continue
                raise ScriptError(f"connection failed ({type(exc).__name__})") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.connection.close()
                self.used = False
                raise ScriptError(f"request failed ({type(exc).__name__}: {exc})") from exc
            self.used = True
            return answer.status, data.decode("utf-8", "replace"), time.perf_counter() - began
        raise AssertionError("unreachable")

    def hop(self, session: str, phone: str, text: str, kind: str) -> str:
        status, body, seconds = self.post(USSD_PATH, {"sessionId": session, "serviceCode": SERVICE_CODE,
                                                      "phoneNumber": phone, "networkCode": NETWORK, "text": text})
        with self.lock:
            if status == 200:
                self.tally.hops.append(seconds)
                self.tally.by_hop.setdefault(kind, array.array("d")).append(seconds)
            else:
                self.tally.statuses[f"USSD {status}"] += 1
        if status != 200:
            raise ScriptError(f"USSD HTTP {status}")
        if body[:4] not in ("CON ", "END "):
            raise ScriptError(f"neither CON nor END: {body[:40]!r}")
        return body

    def ussd(self, who: Registrant, run: str, think: float, pause: float, max_redials: int) -> tuple[str, str]:
        redials = 0
        try:
            while True:
                session = f"ATUid_{run}_{who.index}_{redials}"
                screen = self.hop(session, who.phone, "", "dial")
                if screen.startswith("END ") and SATURATED in screen:
                    with self.lock:
                        self.tally.saturated += 1
                    if redials >= max_redials:
                        with self.lock:
                            self.tally.gave_up += 1
                        return "error", "turned away by admission control every time"
                    redials += 1
                    time.sleep(pause)
                    continue
                break
        finally:
            if redials:
                with self.lock:
                    self.tally.redialled += 1
                    self.tally.most_redials = max(self.tally.most_redials, redials)
        if not screen.startswith("CON "):
            raise ScriptError(f"the first screen ends the call: {screen[4:60]!r}")
        entry = pick(screen, lambda label: label == MENU_ENTRY)
        if entry is None:
            raise ScriptError(f"no {MENU_ENTRY!r} on the main menu")
        path = [entry]
        pause_for(think)
        screen = self.hop(session, who.phone, "*".join(path), "choice")
        if screen.startswith("CON ") and CAMPAIGN_LIST in screen:  # several campaigns open: ours by its name
            choice = pick(screen, lambda label: label == NAME["fr"])
            if choice is None:
                raise ScriptError(f"{NAME['fr']!r} is not among the campaigns open")
            path.append(choice)
            pause_for(think)
            screen = self.hop(session, who.phone, "*".join(path), "campaign")
        if screen.startswith("CON ") and TARGET_LIST in screen:
            choice = pick(screen, lambda label: label == f"Compteur {who.meter}")
            if choice is None:
                raise ScriptError("the caller's meter is not on the list")
            path.append(choice)
        elif screen.startswith("CON ") and NUMBER_PROMPT in screen:
            path.append(who.meter)
        else:
            raise ScriptError(f"unexpected screen after the menu: {screen[:60]!r}")
        pause_for(think)
        screen = self.hop(session, who.phone, "*".join(path), "verdict")
        if not screen.startswith("END "):
            raise ScriptError(f"no verdict: {screen[:60]!r}")
        return verdict(screen[4:], who.meter)

    def sms(self, who: Registrant, run: str) -> tuple[str, str]:
        status, body, seconds = self.post(SMS_PATH, {
            "from": who.phone, "to": SHORT_CODE, "text": f"{CODE} {who.meter}",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "id": f"ATXid_{run}_{who.index}", "linkId": "", "networkCode": NETWORK})
        with self.lock:
            if status == 200:
                self.tally.sms.append(seconds)
            else:
                self.tally.statuses[f"SMS {status}"] += 1
        if status != 200:
            raise ScriptError(f"SMS HTTP {status}")
        return "sent", ""


def pause_for(think: float) -> None:
    """A customer reading a screen and typing: ``think`` seconds on average, from half to one
    and a half times that, so that the dialogues in flight do not move in step."""
    if think > 0:
        time.sleep(random.uniform(0.5, 1.5) * think)


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


def client_process(number: int, procs: int, threads: int, settings: dict, progress, results) -> None:
    port, n = settings["port"], settings["customers"]
    tally, lock = Tally(), threading.Lock()
    mine = iter(range(number, n, procs))

    def dialogues() -> None:
        client = Client(port, settings["timeout"], tally, lock)
        if settings["think"] > 0:  # the dialogues in flight start spread over one dialogue's thinking
            time.sleep(random.uniform(0, 2 * settings["think"]))
        while True:
            with lock:
                i = next(mine, None)
            if i is None:
                break
            who = registrant(i, settings["sms_share"], settings["typed_share"])
            try:
                if who.channel == "sms":
                    outcome, reference = client.sms(who, settings["run"])
                else:
                    outcome, reference = client.ussd(who, settings["run"], settings["think"],
                                                     settings["redial_pause"], settings["max_redials"])
            except ScriptError as exc:
                outcome, reference = "error", str(exc)
            with lock:
                if outcome == "error":
                    tally.errors[reference] += 1
                tally.outcomes.append((i, who.channel, outcome, reference))
            with progress.get_lock():
                progress.value += 1
        client.connection.close()

    while time.time() < settings["start_wall"]:  # every process starts at the same moment
        time.sleep(0.005)
    workers = [threading.Thread(target=dialogues, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(tally)


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
    parser.add_argument("--concurrency", type=int, default=400, help="registrations in flight, in all")
    parser.add_argument("--procs", type=int, default=4, help="client processes the concurrency is spread over")
    parser.add_argument("--sms-share", type=float, default=0.0, help="share of registrants who text instead")
    parser.add_argument("--typed-share", type=float, default=0.1,
                        help="share of USSD registrants calling from a phone the base does not know")
    parser.add_argument("--quota", type=int, help="the campaign's quota (default: none)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds between a screen and the next hop (0: at once, every dialogue always has a "
                             "hop in flight)")
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
    procs = max(1, min(args.procs, args.concurrency))
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
    print(f"campaign bench: {n:,} registrants, {args.concurrency} in flight from {procs} client processes"
          f"{f', {args.sms_share:.0%} by SMS' if args.sms_share else ''}"
          f"{f', quota {args.quota:,}' if args.quota is not None else ''}; {machine()}; folder {folder}", flush=True)
    print("  the load generator runs on the same machine as the server and Redis, and takes its share of the CPU")
    registrants = [registrant(i, args.sms_share, args.typed_share) for i in range(n)]
    by_meter = {who.meter: who for who in registrants}
    sms_phones = {who.phone: who for who in registrants if who.channel == "sms"}
    figures: dict = {"customers": n, "concurrency": args.concurrency, "procs": procs, "sms_share": args.sms_share,
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
                    "GUICHET_SMS_PROVIDER": "file", "GUICHET_SMS_FILE": str(folder / "sms.jsonl")})
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
            tally, wall = load(args, procs, port)
            cpu = {name: seconds - cpu_before[name] for name, seconds in cpu_now().items()}
            report_load(args, tally, wall, cpu, figures, missed)

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


def load(args: argparse.Namespace, procs: int, port: int) -> tuple[Tally, float]:
    progress = multiprocessing.Value("q", 0)
    results: multiprocessing.Queue = multiprocessing.Queue()
    settings = {"port": port, "customers": args.customers, "timeout": args.timeout, "sms_share": args.sms_share,
                "typed_share": args.typed_share, "think": args.think, "redial_pause": args.redial_pause,
                "max_redials": args.max_redials, "run": secrets.token_hex(3), "start_wall": time.time() + 1.0}
    per_proc = [args.concurrency // procs + (1 if k < args.concurrency % procs else 0) for k in range(procs)]
    workers = [multiprocessing.Process(target=client_process, args=(k, procs, per_proc[k], settings, progress, results))
               for k in range(procs)]
    for worker in workers:
        worker.start()
    while time.time() < settings["start_wall"]:
        time.sleep(0.005)
    began = time.perf_counter()
    tallies: list[Tally] = []
    last = began
    while len(tallies) < procs:
        try:
            tallies.append(results.get(timeout=0.5))
        except Exception:  # queue.Empty
            pass
        now = time.perf_counter()
        if now - last >= 15 and len(tallies) < procs:
            last = now
            done = progress.value
            print(f"  ... {now - began:6.0f} s  {done:>9,} of {args.customers:,} registrants  "
                  f"{done / (now - began):7.0f}/s", flush=True)
        if any(worker.exitcode not in (None, 0) for worker in workers):
            raise SystemExit("a client process died")
    wall = time.perf_counter() - began
    for worker in workers:
        worker.join()
    return merge(tallies), wall


def report_load(args: argparse.Namespace, tally: Tally, wall: float, cpu: dict[str, float], figures: dict,
                missed: list[str]) -> None:
    n = args.customers
    hops = sorted(tally.hops)
    p50, p99, top = (percentile(hops, 50) * 1000, percentile(hops, 99) * 1000, (hops[-1] * 1000) if hops else 0.0)
    sms = sorted(tally.sms)
    rate = n / wall
    print(f"  registrations  {n:,} in {wall:.1f} s = {rate:,.0f}/s"
          f"{'' if n == SEEG else f' (248,000 at this rate: {SEEG / rate:.0f} s)'}")
    print(f"  USSD hops      {len(hops):,} answered = {len(hops) / wall:,.0f} hops/s   p50 {p50:.1f} ms   "
          f"p99 {p99:.1f} ms   max {top:.1f} ms")
    for kind, seconds in tally.by_hop.items():
        ordered = sorted(seconds)
        print(f"    {kind:<12} {len(ordered):>9,}   p50 {percentile(ordered, 50) * 1000:.1f} ms   "
              f"p99 {percentile(ordered, 99) * 1000:.1f} ms   max {ordered[-1] * 1000:.1f} ms")
    if sms:
        print(f"  SMS callbacks  {len(sms):,} answered   p50 {percentile(sms, 50) * 1000:.1f} ms   "
              f"p99 {percentile(sms, 99) * 1000:.1f} ms   max {sms[-1] * 1000:.1f} ms")
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
    figures.update({"wall_s": round(wall, 2), "registrations_per_s": round(rate, 1), "hops": len(hops),
                    "hops_per_s": round(len(hops) / wall, 1), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                    "max_ms": round(top, 2), "sms_callbacks": len(sms), "not_200": dict(tally.statuses),
                    "failed": dict(tally.errors), "reconnects": tally.reconnects, "saturated": tally.saturated,
                    "redialled": tally.redialled, "most_redials": tally.most_redials, "gave_up": tally.gave_up,
                    "cpu_s": {k: round(v, 1) for k, v in cpu.items()}})
    if wall > args.wall_target:
        missed.append(f"wall time {wall:.0f} s, target {args.wall_target:.0f} s: {wall - args.wall_target:.0f} s "
                      f"({wall / args.wall_target - 1:.0%}) over")
    if not p99 <= args.p99_target:
        missed.append(f"p99 hop latency {p99:.1f} ms, target {args.p99_target:g} ms: {p99 / args.p99_target:.1f}x")
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
