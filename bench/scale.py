"""Hops at 1,000 concurrent dialogues: Guichet next to a bare Flask `END ok` endpoint, same server setup.

    .venv/bin/python bench/scale.py                         # one redis-server: 2 servers x (8 + 25) s, ~1.5 minutes
    .venv/bin/python bench/scale.py --cluster               # Guichet on a throwaway 3-master Redis Cluster
    .venv/bin/python bench/scale.py --duration 2 --warmup 1 --ramp 0.5 --customers 500 --concurrency 50  # seconds

It starts its own Redis: one redis-server, or with --cluster a 3-master Redis Cluster
(tests/redis_server.ThrowawayCluster) for Guichet's keys plus a plain redis-server for the
background jobs (GUICHET_REDIS_JOBS_URL: rq has no cluster support); a free port each, nothing
saved. It imports --customers customers into the customer base (bench/campaign.accounts: one
prepaid meter on the holder's phone, one in seven also a postpaid account) and measures
the memory the base took in Redis (INFO memory, every master). Then, one after the other,
under the same server setup (granian, WSGI, the same processes and threads, backlog 2048):

    bare      bench/floors.py's Flask app answering `END ok`: the floor of any Flask
              endpoint under that server
    guichet   `guichet serve` as production runs it (REDIS_URL; defaults: granian, one
              serving process per CPU, 2 threads each, the background work in the
              supervising process, no access log)

and drives each, for --warmup then --duration seconds, with a closed loop of --concurrency
dialogues always in flight (1,000), started at random over the first --ramp seconds. Each dialogue is the Africa's Talking protocol with a
fresh session, from the next seeded customer's phone: dial "" (main menu) -> "1" (buy units:
the caller's meter, the amount prompt) -> "1*5000" (the tariff's quote) -> "1*5000*1" (pay
with which number) -> "1*5000*1*1" (the summary to confirm) -> "1*5000*1*1*2" (cancel: END),
six hops that read the customer base, price the units and end the session without placing
an order, so that a phone can dial again and a run can last. The bare endpoint gets the same
requests. The client is bench/campaign.py's (imported, not copied): --procs processes, each
one asyncio event loop whose coroutines are the dialogues, borrowing one of --connections
keep-alive connections per process for each request (an aggregator's gateway).

It prints, per server, for the hops answered inside the window: hops/s, the hop latency p50,
p99 and max (writing the request to the answer's last byte), the wait for a pooled connection
and the hop with it (what the customer waits: by Little's law about concurrency / hops/s in a
closed loop), answers not 200, failed requests and screens out of script; the CPU seconds per
hop of the serving processes, the supervising process, Redis (each master) and the load
generator over the same window, and hops/s per serving core (hops/s / the serving processes'
cores: 1 / their CPU per hop), Redis commands per hop, Redis's memory and keys after the load.
Then Guichet's ratios to the bare endpoint (hops/s, p99, serving CPU per hop).
`--json FILE` writes the figures. Exit status 1 on any error. Loopback only.

Everything shares this machine's CPUs: the load generator, Redis and the server compete, so
hops/s is what is left to the server; the CPU per hop is the steadier figure to size with.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import campaign  # noqa: E402  (bench/ on the path above): the pooled asyncio client, CPU from /proc
from campaign import (  # noqa: E402
    Client,
    ScriptError,
    Tally,
    accounts,
    cpu_seconds,
    free_port,
    machine,
    percentile,
    stop_group,
    wait_for,
)

# The dialogue: (text, what Guichet's answer starts with). The bare endpoint answers END ok to each.
SCRIPT = [("", "CON "), ("1", "CON "), ("1*5000", "CON "), ("1*5000*1", "CON "), ("1*5000*1*1", "CON "),
          ("1*5000*1*1*2", "END ")]
USSD_PATH = campaign.USSD_PATH
BARE_PATH = "/ussd"  # floors.bare's route
PHONE = "+23765{:07d}"  # campaign.accounts' holders' phones


@dataclass
class Server:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    path: str
    ready: str  # a GET that answers 200 once the server serves (or "" to post a hop)


@contextmanager
def serving(server: Server, logs: Path) -> Iterator[tuple[int, int]]:
    """The server on a free port, in a process group of its own: (port, the group)."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in server.command]
    log = (logs / f"{server.name}.log").open("a")
    process = subprocess.Popen(command, cwd=server.cwd, env=server.env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)

    def answers() -> None:
        if process.poll() is not None:
            raise SystemExit(f"{server.name} exited ({process.returncode}); see {log.name}")
        if server.ready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{server.ready}", timeout=2).read()
        else:
            body = urlencode({"sessionId": "warm", "serviceCode": campaign.SERVICE_CODE, "phoneNumber": "+237600000000",
                              "networkCode": campaign.NETWORK, "text": ""}).encode()
            urllib.request.urlopen(f"http://127.0.0.1:{port}{server.path}", data=body, timeout=2).read()

    try:
        wait_for(answers, server.name)
        yield port, process.pid
    finally:
        stop_group(process)


# -- the load ------------------------------------------------------------------------------
@dataclass
class Seen:
    """What one client process saw inside the window (answers whose last byte came in it)."""

    hops: array.array = field(default_factory=lambda: array.array("d"))  # seconds: write -> last byte
    waits: array.array = field(default_factory=lambda: array.array("d"))  # seconds waited for a connection
    dialogues: int = 0  # dialogues whose last hop was answered in the window
    statuses: Counter = field(default_factory=Counter)  # answers not 200, by status (whole run)
    errors: Counter = field(default_factory=Counter)  # failed requests, screens out of script (whole run)
    reconnects: int = 0
    requests: int = 0  # every request written (whole run)


def client_process(number: int, dialogues: int, settings: dict, results: multiprocessing.Queue) -> None:
    results.put(asyncio.run(client_loop(number, dialogues, settings)))


async def client_loop(number: int, dialogues: int, settings: dict) -> Seen:
    seen, tally = Seen(), Tally()
    client = Client(settings["port"], settings["timeout"], tally, settings["connections"])
    path, bare = settings["path"], settings["bare"]
    if path not in client.heads:  # the bare endpoint's route: the same request head, another path
        client.heads[path] = client.heads[USSD_PATH].replace(USSD_PATH.encode(), path.encode(), 1)
    start, end, procs, customers = settings["start"], settings["end"], settings["procs"], settings["customers"]
    run, counter = settings["run"], [0]
    mine = range(number, customers, procs)

    def phones() -> Iterator[int]:
        while True:
            yield from mine

    callers = phones()

    async def dialogue() -> None:
        # Started at random over the ramp: all started at once, the dialogues would move in step (a
        # closed loop served first come first served keeps them so): 1,000 dials, then 1,000 quotes...
        await asyncio.sleep(random.uniform(0.0, settings["ramp"]))
        while time.monotonic() < end:
            counter[0] += 1
            session, phone = f"ATUid_{run}_{number}_{counter[0]}", PHONE.format(next(callers))
            for text, expected in SCRIPT:
                if time.monotonic() >= end:
                    return
                fields = {"sessionId": session, "serviceCode": campaign.SERVICE_CODE, "phoneNumber": phone,
                          "networkCode": campaign.NETWORK, "text": text}
                try:
                    status, body, seconds, waited = await client.post(path, fields)
                except ScriptError as exc:
                    seen.errors[str(exc)] += 1
                    break
                done = time.monotonic()
                if status != 200:
                    seen.statuses[status] += 1
                    break
                if not (body == "END ok" if bare else body.startswith(expected)):
                    seen.errors[f"out of script after {text!r}: {body[:50]!r}"] += 1
                    break
                if start <= done <= end:
                    seen.hops.append(seconds)
                    seen.waits.append(waited)
                    if expected == "END ":
                        seen.dialogues += 1

    await asyncio.sleep(max(0.0, settings["begin"] - time.monotonic()))
    await asyncio.gather(*(dialogue() for _ in range(dialogues)))
    client.close()
    await asyncio.sleep(0)
    seen.reconnects, seen.requests = tally.reconnects, len(tally.waits)
    return seen


def drive(server: Server, port: int, group: int, redis_pids: dict[str, int], masters: list,
          args: argparse.Namespace) -> dict:
    """The closed loop against one server; its figures."""
    procs = max(1, min(args.procs, args.concurrency))
    now = time.monotonic()
    begin = now + 1.5  # the client processes are up by then
    start = begin + args.warmup
    end = start + args.duration
    settings = {"port": port, "path": server.path, "bare": server.name == "bare", "timeout": args.timeout,
                "connections": args.connections, "procs": procs, "customers": args.customers,
                "run": secrets.token_hex(3), "begin": begin, "start": start, "end": end, "ramp": args.ramp}
    per_proc = [args.concurrency // procs + (1 if k < args.concurrency % procs else 0) for k in range(procs)]
    results: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=client_process, args=(k, per_proc[k], settings, results))
               for k in range(procs)]
    for worker in workers:
        worker.start()
    clients = {worker.pid for worker in workers if worker.pid is not None}

    def cpu_now() -> dict[str, float]:
        supervisor = cpu_seconds(pids={group})
        figures = {"serving processes": cpu_seconds(group=group) - supervisor, "supervisor": supervisor}
        figures.update({f"redis {name}": cpu_seconds(pids={pid}) for name, pid in redis_pids.items()})
        figures["load generator"] = cpu_seconds(pids=clients)
        return figures

    time.sleep(max(0.0, start - time.monotonic()))
    window_began = time.monotonic()
    before = cpu_now()  # sampled at the window's start and end, each /proc walk as long as the other
    commands_before = commands(masters)
    time.sleep(max(0.0, end - time.monotonic()))
    window = time.monotonic() - window_began
    after = cpu_now()
    commands_sent = commands(masters) - commands_before
    outs: list[Seen] = []
    while len(outs) < procs:
        try:
            outs.append(results.get(timeout=args.timeout + 30))
        except Exception:  # noqa: BLE001 (queue.Empty): a client process died or hangs
            raise SystemExit("a client process gave no figures") from None
    for worker in workers:
        worker.join()
    cpu = {name: after[name] - before[name] for name in after}

    hops = sorted(x for out in outs for x in out.hops)
    waits = sorted(x for out in outs for x in out.waits)
    customer = sorted(a + b for out in outs for a, b in zip(out.hops, out.waits, strict=True))
    statuses: Counter = Counter()
    errors: Counter = Counter()
    for out in outs:
        statuses.update(out.statuses)
        errors.update(out.errors)
    n = len(hops)
    rate = n / args.duration
    serving_cores = cpu["serving processes"] / window
    redis_names = [name for name in cpu if name.startswith("redis ")]
    figures = {
        "server": server.name, "path": server.path, "concurrency": args.concurrency, "procs": procs,
        "connections_per_proc": args.connections, "duration_s": args.duration, "window_s": round(window, 2),
        "hops": n,
        "dialogues": sum(out.dialogues for out in outs), "hops_per_s": round(rate, 1),
        "p50_ms": round(percentile(hops, 50) * 1000, 2), "p99_ms": round(percentile(hops, 99) * 1000, 2),
        "max_ms": round(hops[-1] * 1000, 2) if hops else None,
        "pool_wait_p50_ms": round(percentile(waits, 50) * 1000, 2),
        "pool_wait_p99_ms": round(percentile(waits, 99) * 1000, 2),
        "with_wait_p50_ms": round(percentile(customer, 50) * 1000, 2),
        "with_wait_p99_ms": round(percentile(customer, 99) * 1000, 2),
        "with_wait_max_ms": round(customer[-1] * 1000, 2) if customer else None,
        "not_200": {str(k): v for k, v in statuses.items()}, "failed": dict(errors),
        "reconnects": sum(out.reconnects for out in outs), "requests": sum(out.requests for out in outs),
        "cpu_s": {name: round(seconds, 2) for name, seconds in cpu.items()},
        "cores": {name: round(seconds / window, 3) for name, seconds in cpu.items()},
        "cpu_us_per_hop": {name: round(seconds / n * 1e6, 1) if n else None for name, seconds in cpu.items()},
        "redis_us_per_hop": round(sum(cpu[name] for name in redis_names) / n * 1e6, 1) if n else None,
        "redis_commands_per_hop": round(commands_sent / n, 2) if n else None,
        "hops_per_s_per_serving_core": round(rate / serving_cores, 1) if serving_cores else None,
    }
    # Everything a hop costs on the server's side (serving + supervisor + Redis), the load generator left out.
    server_side = cpu["serving processes"] + cpu["supervisor"] + sum(cpu[name] for name in redis_names)
    figures["hops_per_s_per_server_side_core"] = round(n / server_side, 1) if server_side else None
    return figures


def report(f: dict) -> None:
    name = f["server"]
    print(f"  {name:<8} {f['hops']:,} hops in {f['duration_s']:g} s = {f['hops_per_s']:,.0f} hops/s "
          f"({f['dialogues']:,} dialogues ended)   hop p50 {f['p50_ms']:.1f} ms   p99 {f['p99_ms']:.1f} ms   "
          f"max {f['max_ms'] or 0:.1f} ms")
    print(f"           pool wait p50 {f['pool_wait_p50_ms']:.1f} ms   p99 {f['pool_wait_p99_ms']:.1f} ms; the hop with it "
          f"(what the customer waits) p50 {f['with_wait_p50_ms']:.1f} ms   p99 {f['with_wait_p99_ms']:.1f} ms   "
          f"max {f['with_wait_max_ms'] or 0:.1f} ms")
    not_200 = f" {f['not_200']}" if f["not_200"] else ""
    failed = f" {f['failed']}" if f["failed"] else ""
    print(f"           not 200 {sum(f['not_200'].values())}{not_200}   failed {sum(f['failed'].values())}{failed}   "
          f"reconnects {f['reconnects']}")
    print("           CPU " + ", ".join(f"{k} {v:.1f} s ({f['cores'][k]:.2f} cores, {f['cpu_us_per_hop'][k] or 0:,.0f} µs/hop)"
                                       for k, v in f["cpu_s"].items())
          + f"; {sum(f['cores'].values()):.2f} of {os.cpu_count()} cores busy")
    print(f"           hops/s per serving core {f['hops_per_s_per_serving_core'] or 0:,.0f}   per server-side core "
          f"(serving + supervisor + Redis) {f['hops_per_s_per_server_side_core'] or 0:,.0f}   Redis "
          f"{f['redis_us_per_hop'] or 0:,.0f} µs/hop, {f['redis_commands_per_hop'] or 0:.1f} commands/hop (Guichet's "
          "keys)", flush=True)


# -- Redis ---------------------------------------------------------------------------------
def used_memory(clients: list) -> int:
    return sum(int(client.info("memory")["used_memory"]) for client in clients)


def commands(clients: list) -> int:
    """Commands the masters have processed so far (INFO's own included: a few a sample)."""
    return sum(int(client.info("stats")["total_commands_processed"]) for client in clients)


def keyspace(clients: list) -> tuple[int, int]:
    """(keys, keys with a TTL) on every master, every database."""
    keys = expiring = 0
    for client in clients:
        for name, db in client.info("keyspace").items():
            if name.startswith("db") and isinstance(db, dict):
                keys, expiring = keys + int(db.get("keys", 0)), expiring + int(db.get("expires", 0))
    return keys, expiring


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", action="store_true",
                        help="Guichet's keys on a throwaway 3-master Redis Cluster (the jobs on a plain Redis)")
    parser.add_argument("--masters", type=int, default=3, help="the cluster's masters (with --cluster)")
    parser.add_argument("--concurrency", type=int, default=1000, help="dialogues always in flight, in all")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds measured per server")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of load before the window")
    parser.add_argument("--ramp", type=float, default=4.0,
                        help="seconds over which the dialogues start, at random, at the warm-up's beginning (at most "
                             "the warm-up)")
    parser.add_argument("--procs", type=int, default=2, help="client processes, an event loop each")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections per client process")
    parser.add_argument("--customers", type=int, default=100_000, help="customers imported (the callers)")
    parser.add_argument("--server-processes", type=int, default=os.cpu_count() or 1,
                        help="serving processes of both servers (default: one per CPU, guichet serve's own)")
    parser.add_argument("--threads", type=int, default=2,
                        help="request threads per serving process, both servers (default 2, guichet serve's own)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a request waits for its answer")
    parser.add_argument("--only", choices=["bare", "guichet"], help="drive one server only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (the servers' logs)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    server_bin, cli_bin = shutil.which("redis-server"), shutil.which("redis-cli")
    if server_bin is None or (args.cluster and cli_bin is None):
        sys.exit("redis-server (and redis-cli for --cluster) must be on the PATH")
    if args.customers < args.concurrency:
        sys.exit("--customers at least --concurrency: a phone has one dialogue at a time")
    if not 0 <= args.ramp <= args.warmup:
        sys.exit("--ramp is from 0 to --warmup seconds")
    if min(args.concurrency, args.procs, args.connections, args.customers, args.server_processes, args.threads) < 1:
        sys.exit("--concurrency, --procs, --connections, --customers, --server-processes and --threads are >= 1")
    folder = Path(tempfile.mkdtemp(prefix="guichet-scale-"))
    try:
        return run(args, server_bin, cli_bin, folder)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, server_bin: str, cli_bin: str | None, folder: Path) -> int:

    from state.store import Store, primaries
    from tests.redis_server import ThrowawayCluster, ThrowawayRedis
    from utility.customers import RedisCustomerBase

    procs = max(1, min(args.procs, args.concurrency))
    print(f"scale bench: {args.concurrency:,} dialogues in flight (closed loop, {len(SCRIPT)} hops each, a fresh "
          f"session), {procs} client processes x {args.connections} keep-alive connections; "
          f"{args.warmup:g} s + {args.duration:g} s per server; {machine()}; folder {folder}", flush=True)
    print("  the load generator, Redis and the servers share this machine's CPUs", flush=True)
    figures: dict = {"machine": machine(), "cpus": os.cpu_count(), "cluster": args.cluster,
                     "masters": args.masters if args.cluster else 1, "customers": args.customers,
                     "concurrency": args.concurrency, "duration_s": args.duration, "warmup_s": args.warmup,
                     "script": [text for text, _ in SCRIPT], "server_processes": args.server_processes,
                     "threads": args.threads, "servers": {}}
    with ExitStack() as stack:
        redis_pids: dict[str, int] = {}
        if args.cluster:
            assert cli_bin is not None
            cluster = ThrowawayCluster(server_bin, cli_bin, folder / "cluster", masters=args.masters)
            url = cluster.start()
            stack.callback(cluster.kill)
            jobs = ThrowawayRedis(server_bin, folder / "jobs")
            jobs_url = jobs.start()
            stack.callback(jobs.kill)
            for port, process in zip(cluster.ports, cluster.processes, strict=True):
                redis_pids[f"master :{port}"] = process.pid
            assert jobs.process is not None
            redis_pids["jobs"] = jobs.process.pid
            where = f"a {args.masters}-master Redis Cluster ({url}), the jobs on {jobs_url}"
        else:
            single = ThrowawayRedis(server_bin, folder / "redis")
            url = single.start()
            stack.callback(single.kill)
            jobs_url = None
            assert single.process is not None
            redis_pids["server"] = single.process.pid
            where = f"one redis-server ({url})"
        store = Store.from_url(url, jobs_url=jobs_url)
        masters = primaries(store.data)
        empty = used_memory(masters)
        began = time.perf_counter()
        population = accounts(args.customers)
        result = RedisCustomerBase(store.data).upsert(population)
        seeded, seeded_keys = used_memory(masters), keyspace(masters)
        per_account = (seeded - empty) / max(1, result.imported)
        print(f"  redis          {where}", flush=True)
        print(f"  customers      {args.customers:,} ({result.imported:,} accounts) imported in "
              f"{time.perf_counter() - began:.1f} s; Redis memory {empty / 2**20:.1f} -> {seeded / 2**20:.1f} MiB: "
              f"{per_account:,.0f} bytes an account, {(seeded - empty) / args.customers:,.0f} a customer", flush=True)
        figures.update({"accounts": result.imported, "redis_used_memory_empty": empty,
                        "redis_used_memory_seeded": seeded, "bytes_per_account": round(per_account, 1),
                        "bytes_per_customer": round((seeded - empty) / args.customers, 1)})

        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("GUICHET_", "GRANIAN_")) and k not in ("REDIS_URL", "WEB_CONCURRENCY")}
        guichet_env = {**clean, "REDIS_URL": url, "WEB_CONCURRENCY": str(args.server_processes),
                       "GUICHET_THREADS": str(args.threads), "GUICHET_SMS_PROVIDER": "file",
                       "GUICHET_SMS_FILE": str(folder / "sms.jsonl"),
                       # The whole load comes from one address, 127.0.0.1, as from one aggregator's
                       # gateway at full tilt: the per-address limit (GUICHET_RATE_LIMIT_USSD, 1000/1
                       # per serving process, meant to bind a flood from one source) would turn most
                       # of it away. It is off here; admission control is not.
                       "GUICHET_RATE_LIMIT_USSD": "0"}
        if jobs_url:
            guichet_env["GUICHET_REDIS_JOBS_URL"] = jobs_url
        servers = [
            # granian as `guichet serve` runs it (app.serve_with_granian): WSGI, the same processes,
            # blocking threads and backlog; no access log (granian's default, and Guichet's with Redis).
            Server("bare", [str(BIN / "granian"), "--interface", "wsgi", "--workers", str(args.server_processes),
                            "--blocking-threads", str(args.threads), "--backlog", "2048", "--no-ws",
                            "--respawn-failed-workers", "--host", "127.0.0.1", "--port", "{port}", "floors:bare"],
                   BENCH, clean, BARE_PATH, ""),
            Server("guichet", [str(BIN / "guichet"), "serve", "--port", "{port}"], ROOT, guichet_env, USSD_PATH,
                   "/readyz"),
        ]
        bad = False
        for server in servers:
            if args.only and server.name != args.only:
                continue
            with serving(server, folder) as (port, group):
                result_figures = drive(server, port, group, redis_pids, masters, args)
            figures["servers"][server.name] = result_figures
            report(result_figures)
            bad |= bool(result_figures["not_200"] or result_figures["failed"] or not result_figures["hops"])
        after, after_keys = used_memory(masters), keyspace(masters)
        figures.update({"redis_used_memory_after": after, "keys_seeded": seeded_keys[0],
                        "keys_seeded_with_ttl": seeded_keys[1], "keys_after": after_keys[0],
                        "keys_after_with_ttl": after_keys[1]})
        print(f"  redis memory   {after / 2**20:.1f} MiB after the load ({(after - seeded) / 2**20:+.1f} MiB); keys "
              f"{seeded_keys[0]:,} ({seeded_keys[1]:,} with a TTL) after the import, {after_keys[0]:,} "
              f"({after_keys[1]:,} with a TTL) after the load")
        for client in masters:
            client.close()

    done = figures["servers"]
    if "bare" in done and "guichet" in done and done["bare"]["hops"] and done["guichet"]["hops"]:
        bare, ours = done["bare"], done["guichet"]
        ratios = {"hops_per_s": round(ours["hops_per_s"] / bare["hops_per_s"], 3),
                  "p99": round(ours["p99_ms"] / bare["p99_ms"], 2),
                  "p99_with_wait": round(ours["with_wait_p99_ms"] / bare["with_wait_p99_ms"], 2),
                  "serving_cpu_per_hop": round(ours["cpu_us_per_hop"]["serving processes"]
                                               / bare["cpu_us_per_hop"]["serving processes"], 2)}
        figures["ratios"] = ratios
        print(f"  guichet / bare hops/s {ratios['hops_per_s']:.2f}x   hop p99 {ratios['p99']:.2f}x   p99 with the "
              f"pool wait {ratios['p99_with_wait']:.2f}x   serving CPU per hop {ratios['serving_cpu_per_hop']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print("errors         " + ("SOME: see above" if bad else "none"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
