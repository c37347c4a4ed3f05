"""Guichet's hop against its two floors, in one run, under the same client load.

    .venv/bin/python bench/peers.py                  # 2 rounds x 3 servers x 15 s: about 2 minutes
    .venv/bin/python bench/peers.py --rounds 1 --duration 5
    .venv/bin/python bench/peers.py --guichet-args "--server gunicorn"   # another way to serve Guichet

It starts a redis-server of its own (a free port, no persistence; or --redis-url), then, one
at a time, for each round:

    bare floor     Flask answering END ok under gunicorn, 5 sync workers (bench/floors.py)
    redis floor    the same endpoint doing a hop's Redis work (two pipelines) and nothing else,
                   under granian, 2 processes x 1 thread (bench/floors.py)
    guichet        `guichet serve` as production runs it with REDIS_URL (defaults)

and drives each with bench/loadgen.py: 2 processes x 16 keep-alive clients running the
3-hop Africa's Talking dialogue "" -> "1" -> "1*01234567890", a fresh session and phone per
dialogue. It prints hops/s, p50 and p99 per server and round, then Guichet's ratios to
the floors against the targets: >= 0.6x the bare floor, >= 0.7x the Redis floor, p99 at
most 2x the bare floor's, no errors. The machine's noise hits all three alike: compare the
ratios, not the absolute figures. Exit status 1 when a target is missed. Loopback only.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))

from campaign import stop_group  # noqa: E402  (bench/ on the path above)
from loadgen import Load, run_load  # noqa: E402

TARGETS = {"vs bare floor": 0.6, "vs redis floor": 0.7, "p99 vs bare floor's": 2.0}


@dataclass
class Server:
    name: str
    command: list[str]
    path: str  # where the USSD callback is posted
    cwd: Path
    env: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(url: str | None, logs: Path) -> Iterator[str]:
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("no redis-server on the PATH: install it, or give --redis-url")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=(logs / "redis.log").open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.2).close(), "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def wait_for(probe: Callable[[], object], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            probe()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not come up within {within:g} s") from None
            time.sleep(0.1)


def servers(redis_url: str, guichet_args: list[str]) -> list[Server]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_") and k != "REDIS_URL"}
    floor_url = redis_url.rsplit("/", 1)[0] + "/1"  # the floor's keys apart from Guichet's
    return [
        Server("bare floor", [str(BIN / "gunicorn"), "-w", "5", "-k", "sync", "-b", "127.0.0.1:{port}", "floors:bare"],
               "/ussd", BENCH, clean),
        Server("redis floor", [str(BIN / "granian"), "--interface", "wsgi", "--workers", "2", "--blocking-threads", "1",
                               "--host", "127.0.0.1", "--port", "{port}", "--no-ws", "floors:redis_floor"],
               "/ussd", BENCH, {**clean, "REDIS_URL": floor_url}),
        # The whole load comes from one address, an aggregator's gateway at full tilt: the
        # per-address limit (GUICHET_RATE_LIMIT_USSD, meant to bind a flood) is off here.
        Server("guichet", [str(BIN / "guichet"), "serve", "--port", "{port}", *guichet_args],
               "/ussd/africastalking", ROOT, {**clean, "REDIS_URL": redis_url, "GUICHET_RATE_LIMIT_USSD": "0"}),
    ]


@contextmanager
def serving(server: Server, logs: Path) -> Iterator[int]:
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in server.command]
    log = (logs / f"{server.name.replace(' ', '-')}.log").open("a")
    process = subprocess.Popen(command, cwd=server.cwd, env=server.env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    body = b"sessionId=warm&serviceCode=*384%23&phoneNumber=%2B237600000000&networkCode=62401&text="

    def answers() -> None:
        if process.poll() is not None:
            raise SystemExit(f"{server.name} exited ({process.returncode}); see {log.name}")
        urllib.request.urlopen(f"http://127.0.0.1:{port}{server.path}", data=body, timeout=2).read()

    try:
        wait_for(answers, server.name)
        yield port
    finally:
        stop_group(process, patience=15)


def ratios(results: dict[str, Load]) -> dict[str, float]:
    guichet, bare, floor = results["guichet"], results["bare floor"], results["redis floor"]
    return {
        "vs bare floor": guichet.rate / bare.rate,
        "vs redis floor": guichet.rate / floor.rate,
        "p99 vs bare floor's": guichet.p99_ms / bare.p99_ms,
    }


def met(name: str, value: float) -> bool:
    return value <= TARGETS[name] if name.startswith("p99") else value >= TARGETS[name]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per server and round")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=16, help="keep-alive clients per process")
    parser.add_argument("--redis-url", help="a Redis to use (default: start a redis-server of our own)")
    parser.add_argument("--guichet-args", default="", help="more arguments for `guichet serve`")
    parser.add_argument("--json", type=Path, help="append each round's figures to this file, one JSON line each")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="guichet-peers-"))
    print(f"peer hop benchmark: {args.rounds} round(s), {args.procs}x{args.threads} clients, "
          f"{args.duration:g} s per server; {os.cpu_count()} CPUs; logs in {logs}")
    all_met = True
    every_round: list[dict[str, float]] = []
    with redis_server(args.redis_url, logs) as url:
        for number in range(1, args.rounds + 1):
            results: dict[str, Load] = {}
            for server in servers(url, shlex.split(args.guichet_args)):
                with serving(server, logs) as port:
                    load = results[server.name] = run_load(port, server.path, args.procs, args.threads,
                                                           args.duration)
                print(f"  round {number}  {server.name:<12} {load.rate:>8,.0f} hops/s   p50 {load.p50_ms:6.1f} ms"
                      f"   p99 {load.p99_ms:6.1f} ms   errors {load.errors}", flush=True)
            figures = ratios(results)
            every_round.append(figures)
            marks = []
            for name, value in figures.items():
                ok = met(name, value)
                all_met &= ok
                marks.append(f"{name} {value:.2f}x ({'ok' if ok else 'MISSED'}, target {TARGETS[name]:g}x)")
            errors = sum(load.errors for load in results.values())
            all_met &= errors == 0
            print(f"  round {number}  guichet: " + "; ".join(marks) + f"; errors {errors}", flush=True)
            if args.json:
                with args.json.open("a") as out:
                    out.write(json.dumps({"round": number, "guichet_args": args.guichet_args,
                                          **{name: {**asdict(load), "rate": load.rate} for name, load in results.items()},
                                          "ratios": figures}) + "\n")
    if len(every_round) > 1:
        # The machine drifts between one server's window and the next: the median of the
        # rounds' ratios is the steadier figure (the verdict still wants every round).
        medians = {name: statistics.median(r[name] for r in every_round) for name in TARGETS}
        print("  median   guichet: " + "; ".join(
            f"{name} {value:.2f}x ({'ok' if met(name, value) else 'MISSED'})" for name, value in medians.items()))
    print("targets " + ("met in every round" if all_met else "MISSED"))
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
