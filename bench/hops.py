"""Hop benchmark: N USSD dialogues against a running Guichet, then hops/s and latencies.

    make run                                   # in another terminal
    .venv/bin/python bench/hops.py --dialogues 2000 --concurrency 8

It drives the same `Phone` as `guichet dial`, so it measures what a handset would get.
It only talks to loopback URLs unless --allow-remote is given: a load generator must
never hit someone else's server by accident.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # runnable as `python bench/hops.py` from a checkout

from ussd.dial import (  # noqa: E402  (needs the path above)
    DEFAULT_CODE,
    DEFAULT_NETWORK,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    BadAnswer,
    DialError,
    Phone,
    Refused,
    Screen,
    Transport,
)

DEMO_PHONES = "+237699000001,+237699000002,+24107000003"
DEFAULT_SCRIPT = "3,0,4,1"


@dataclass
class Tally:
    """What one worker saw; workers never share one, so counting needs no lock."""

    latencies: list[float] = field(default_factory=list)  # seconds, answered hops only
    errors: Counter[str] = field(default_factory=Counter)
    dialogues: int = 0
    ended: int = 0  # END after the script's last input
    ended_early: int = 0  # END before the script ran out: the script does not fit the menu
    left_open: int = 0  # still CON after the last input

    def merge(self, other: Tally) -> None:
        self.latencies.extend(other.latencies)
        self.errors.update(other.errors)
        self.dialogues += other.dialogues
        self.ended += other.ended
        self.ended_early += other.ended_early
        self.left_open += other.left_open


class Tickets:
    """Hands out dialogue numbers until the count or the time runs out."""

    def __init__(self, count: int, deadline: float) -> None:
        self.count = count
        self.deadline = deadline
        self.issued = 0
        self.timed_out = False
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.issued >= self.count:
                return None
            if time.monotonic() >= self.deadline:
                self.timed_out = True
                return None
            self.issued += 1
            return self.issued - 1


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it could resolve anywhere
        return False


def connect_error(url: str, timeout: float) -> str | None:
    """Why nothing accepts a connection at ``url``, or None; a bare connect sends no hop."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return str(exc)
    return None


def parse_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")] if value.strip() else []


def error_label(exc: DialError) -> str:
    """Errors grouped by kind, so a thousand identical failures make one line."""
    if isinstance(exc, Refused):
        return f"HTTP 400: {exc.reason}"
    if isinstance(exc, BadAnswer):
        return f"HTTP {exc.status}" if exc.status != 200 else "HTTP 200 but neither CON nor END"
    return str(exc)


def timed(hop: Callable[[], Screen], tally: Tally) -> Screen:
    started = time.perf_counter()
    screen = hop()
    tally.latencies.append(time.perf_counter() - started)
    return screen


def run_dialogue(phone: Phone, script: Sequence[str], tally: Tally) -> None:
    """One session: the opening hop, then each input of the script while it lasts."""
    tally.dialogues += 1
    try:
        screen = timed(phone.start, tally)
        for step in script:
            if screen.ended:
                tally.ended_early += 1
                return
            screen = timed(partial(phone.send, step), tally)
    except DialError as exc:
        tally.errors[error_label(exc)] += 1
        return  # a failed hop ends the session on a real handset too
    if screen.ended:
        tally.ended += 1
    else:
        tally.left_open += 1


@dataclass(frozen=True)
class Plan:
    url: str
    script: list[str]
    code: str
    network: str
    timeout: float
    # Starts every session id: random per run, so a rerun never meets the sessions of a
    # previous one still held by the server.
    session_prefix: str


def run_worker(plan: Plan, phones: Sequence[str], tickets: Tickets, tally: Tally) -> None:
    transport = Transport(plan.url, plan.timeout)  # one keep-alive connection per thread
    try:
        turn = 0
        while (number := tickets.take()) is not None:
            phone = Phone(
                plan.url,
                phones[turn % len(phones)],
                plan.code,
                plan.network,
                session_id=f"{plan.session_prefix}_{number}",
                transport=transport,
            )
            turn += 1
            run_dialogue(phone, plan.script, tally)
    finally:
        transport.close()


def run_threads(plan: Plan, phones: Sequence[str], threads: int, tickets: Tickets) -> Tally:
    # Each thread owns its own phones: a phone never holds two sessions at once, as on
    # a real network (the server keeps a resume point per phone, which a second
    # concurrent session of the same phone would pick up and wander off the script).
    tallies = [Tally() for _ in range(threads)]
    workers = [
        threading.Thread(target=run_worker, args=(plan, phones[k::threads], tickets, tallies[k]), daemon=True)
        for k in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if len(ordered) < 2:
        return dict.fromkeys(("median", "p90", "p99", "max"), ordered[0])
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"median": statistics.median(ordered), "p90": cuts[89], "p99": cuts[98], "max": ordered[-1]}


def script_texts(script: Sequence[str]) -> str:
    """The successive `text` fields the script sends, as the server will see them."""
    texts = ['""'] + ["*".join(script[: i + 1]) for i in range(len(script))]
    return " -> ".join(texts)


def report(total: Tally, elapsed: float, asked: int, tickets: Tickets, max_seconds: float) -> None:
    hops = len(total.latencies)
    rate = hops / elapsed if elapsed > 0 else 0.0
    click.echo(
        f"  dialogues  {total.dialogues} of {asked}   END {total.ended}   "
        f"left open {total.left_open}   ended early {total.ended_early}"
    )
    click.echo(f"  hops       {hops} in {elapsed:.2f} s = {rate:.1f} hops/s")
    if hops:
        ms = {name: value * 1000 for name, value in percentiles(total.latencies).items()}
        click.echo(
            f"  latency    median {ms['median']:.2f} ms   p90 {ms['p90']:.2f} ms   "
            f"p99 {ms['p99']:.2f} ms   max {ms['max']:.2f} ms"
        )
    click.echo(f"  errors     {sum(total.errors.values())}")
    for label, count in total.errors.most_common(5):
        click.echo(f"    {count:>6}  {label}")
    if tickets.timed_out:
        click.echo(f"  stopped at --max-seconds {max_seconds:g} after {total.dialogues} dialogues")
    if total.left_open:
        click.echo("  (left open: the server may offer those phones a resume screen on their next dial)")
    if total.ended_early:
        click.echo("  (ended early: the server closed before the script's last input; check --script)")


@click.command()
@click.option("--url", default=DEFAULT_URL, show_default=True, help="The USSD endpoint (Africa's Talking protocol).")
@click.option("--dialogues", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True, help="Threads.")
@click.option("--phones", default=DEMO_PHONES, show_default=True, help="Callers to cycle through, comma-separated.")
@click.option("--script", default=DEFAULT_SCRIPT, show_default=True, help="The inputs after the opening hop.")
@click.option("--code", default=DEFAULT_CODE, show_default=True, help="The dial string sent as serviceCode.")
@click.option("--network", default=DEFAULT_NETWORK, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Unmeasured dialogues first.")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True)
@click.option("--allow-remote", is_flag=True, help="Allow a URL whose host is not loopback (your own server only).")
def main(
    url: str,
    dialogues: int,
    concurrency: int,
    phones: str,
    script: str,
    code: str,
    network: str,
    warmup: int,
    max_seconds: float,
    timeout: float,
    allow_remote: bool,
) -> None:
    """Drive USSD dialogues against a running Guichet; print hops/s and latencies."""
    if not is_loopback(url) and not allow_remote:
        raise click.BadParameter(
            f"{urlsplit(url).hostname or url} is not a loopback address; "
            "pass --allow-remote to benchmark a server of your own elsewhere",
            param_hint="--url",
        )
    callers = [phone for phone in parse_list(phones) if phone]
    if not callers:
        raise click.BadParameter("give at least one phone number", param_hint="--phones")
    try:
        Transport(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from exc
    plan = Plan(url, parse_list(script), code, network, timeout, f"ATUid_bench_{secrets.token_hex(4)}")
    deadline = time.monotonic() + max_seconds
    threads = min(concurrency, len(callers))

    click.echo(f"Guichet hop benchmark: {url}")
    click.echo(f"  script     {script_texts(plan.script)}")
    note = "" if threads == concurrency else f" ({concurrency} asked: at most one thread per phone)"
    click.echo(f"  phones     {len(callers)}, threads {threads}{note}")

    refusal = connect_error(url, timeout)
    if refusal is not None:
        click.echo(f"No server answers at {url} ({refusal}). Start it with `make run`.", err=True)
        sys.exit(1)
    warm = Tally()
    warm_tickets = Tickets(warmup, deadline)
    run_worker(replace(plan, session_prefix=plan.session_prefix + "_warm"), callers, warm_tickets, warm)
    click.echo(f"  warm-up    {warm.dialogues} dialogues, {sum(warm.errors.values())} errors")
    click.echo()

    tickets = Tickets(dialogues, deadline)
    started = time.perf_counter()
    total = run_threads(plan, callers, threads, tickets)
    elapsed = time.perf_counter() - started
    report(total, elapsed, dialogues, tickets, max_seconds)
    sys.exit(1 if total.errors or not total.latencies else 0)


if __name__ == "__main__":
    main()
