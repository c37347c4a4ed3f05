"""An incident broadcast to a whole region: every customer texted once, at the configured rate.

    .venv/bin/python bench/broadcast.py                                  # 100,000 customers in the Littoral
    .venv/bin/python bench/broadcast.py --customers 2000 --sms-rate 100  # seconds
    .venv/bin/python bench/broadcast.py --sms-rate 1000 --bulk-share 1 --bulk-workers 4

An outage in one region: the operator declares it with "broadcast": true and every phone of
the region must get the SMS once, in its language, at the pace the SMS provider allows,
while receipts keep their share. This bench replays it against `guichet serve`:

1. starts a throwaway redis-server (a free port, a temporary folder, no persistence) and
   imports --customers customers in the Littoral (one postpaid account each, on a phone of
   its own; --english-share of the phones read English, --opted-out-share texted STOP), plus
   a few in the Centre (--others, who must hear nothing) and phones without an account that
   subscribed to the Littoral's notices (--subscribers, who must hear it);
2. starts a stand-in Africa's Talking SMS API of its own (POST /version1/messaging, answered as
   Africa's Talking does: shared PROTOCOLS.md) and `guichet serve` against both, as production
   runs it (granian; REDIS_URL, an admin key, GUICHET_SMS_PROVIDER=africastalking with
   AFRICASTALKING_API_URL pointing at the stand-in, GUICHET_SMS_RATE_PER_SECOND=--sms-rate,
   GUICHET_SMS_BULK_SHARE=--bulk-share, GUICHET_BULK_WORKERS=--bulk-workers);
3. asks the admin API for a dry run (`POST /admin/incidents?dry_run=1`: recipients, segments),
   then declares the incident (`POST /admin/incidents`) and follows its broadcast
   (`GET /admin/incidents/<id>`) until it is done;
4. checks what the stand-in received: every recipient exactly one SMS, in its language;
   nothing to the phones that opted out, to the Centre, or to anyone else.

It prints recipients queued per second (the pump hands them to the bulk queue no faster
than they can be sent: it holds back past 10 s of bulk SMS booked ahead), messages sent per
second at the stand-in against the bulk rate configured (rate x bulk share), Redis's memory
(after the import, at its peak) and the server processes' (the largest resident size seen),
the CPU of each, and the checks. Exit status 1 when a check fails. Loopback only.
"""
from __future__ import annotations

import argparse
import http.server
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.campaign import admin, cpu_seconds, guichet, machine, processes, redis_server  # noqa: E402
from sms import optout  # noqa: E402
from state import keys  # noqa: E402
from utility.customers import Account, RedisCustomerBase  # noqa: E402
from utility.incidents.service import Incidents  # noqa: E402

REGION, ELSEWHERE = "Littoral", "Centre"
TITLE = {"fr": "Coupure Douala Nord", "en": "Outage Douala North"}
DEFINITION = {"title": TITLE,
              "message": {"fr": "Travaux sur la ligne de Bonaberi.", "en": "Works on the Bonaberi line."},
              "regions": [REGION], "services": ["supply"], "expected_end": "2099-05-12T18:00",
              "waive_penalties": True, "broadcast": True}
AT_USER, AT_KEY = "bench", "bench-key"


# -- the population ------------------------------------------------------------------------
def _share(i: int, salt: int) -> float:
    """A number in [0, 1) that looks random but is the same for the same customer."""
    return ((i * 2654435761 + salt * 40503) % 4294967296) / 4294967296


def phone_of(i: int) -> str:
    return f"+23765{i:07d}"


def populate(client: Any, args: argparse.Namespace) -> tuple[dict[str, str], set[str]]:
    """Import the customers and their choices; ({phone: language} of who must be texted,
    the phones that must not be)."""
    base = RedisCustomerBase(client)
    n = args.customers
    accounts = [Account(f"LT-{i:07d}", "", f"Client {i}", phone_of(i), REGION, "postpaid", 0, None) for i in range(n)]
    others = [Account(f"CE-{i:07d}", "", f"Client {i}", f"+23767{i:07d}", ELSEWHERE, "postpaid", 0, None)
              for i in range(args.others)]
    base.upsert(accounts + others)
    expected: dict[str, str] = {}
    silent = {account.phone for account in others}
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        phone = phone_of(i)
        if _share(i, 1) < args.opted_out_share:
            silent.add(phone)
            continue
        lang = "en" if _share(i, 2) < args.english_share else "fr"
        if lang == "en":
            pipe.hset(keys.profile(phone), "lang", "en")  # as the USSD language screen leaves it
        expected[phone] = lang
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()
    for phone in silent - {account.phone for account in others}:
        optout.set_notices(client, phone, False, "sms")
    incidents = Incidents(client, base)
    for i in range(args.subscribers):
        phone = f"+23766{i:07d}"
        incidents.subscribe(phone, REGION)
        expected[phone] = "fr"  # never chose a language: the default
    return expected, silent


# -- the stand-in Africa's Talking ------------------------------------------------------------
class StandIn:
    """POST /version1/messaging as Africa's Talking answers it (shared PROTOCOLS.md): a form with
    username, to, message (and from), the key in the apiKey header; JSON with one Recipients
    entry per number. It counts what each number received, and when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_phone: dict[str, list[str]] = {}
        self.first = self.last = 0.0
        self.requests = 0
        self.refused = 0
        self.ids = itertools.count(1)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def received(self) -> int:
        return sum(len(bodies) for bodies in self.by_phone.values())

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
                if (self.path != "/version1/messaging" or self.headers.get("apiKey") != AT_KEY
                        or form.get("username") != AT_USER or not form.get("to") or "message" not in form):
                    with standin.lock:
                        standin.refused += 1
                    return self._send(401, b"The supplied authentication is invalid", "text/plain")
                recipients = []
                now = time.time()
                with standin.lock:
                    standin.requests += 1
                    standin.first = standin.first or now
                    standin.last = now
                    for number in form["to"].split(","):
                        standin.by_phone.setdefault(number.strip(), []).append(form["message"])
                        recipients.append({"statusCode": 101, "number": number.strip(), "status": "Success",
                                           "cost": "XAF 20.0000", "messageId": f"ATXid_{next(standin.ids):032x}"})
                data = {"SMSMessageData": {"Message": f"Sent to {len(recipients)}/{len(recipients)}",
                                           "Recipients": recipients}}
                self._send(201, json.dumps(data).encode(), "application/json")

        return Handler


# -- the run -------------------------------------------------------------------------------
def rss_kb(group: int) -> int:
    """Resident memory (kB) of the processes of ``group``, in all."""
    total = 0
    for pid, _ in processes(group=group):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the region of the incident")
    parser.add_argument("--sms-rate", type=float, default=400.0, help="GUICHET_SMS_RATE_PER_SECOND, all SMS")
    parser.add_argument("--bulk-share", type=float, default=0.5, help="GUICHET_SMS_BULK_SHARE: of it, what bulk takes")
    parser.add_argument("--bulk-workers", type=int, default=2, help="GUICHET_BULK_WORKERS of guichet serve")
    parser.add_argument("--english-share", type=float, default=0.3, help="share of phones that read English")
    parser.add_argument("--opted-out-share", type=float, default=0.02, help="share of phones that texted STOP")
    parser.add_argument("--subscribers", type=int, help="phones without an account subscribed to the region "
                                                        "(default: 1%% of --customers, at least 1)")
    parser.add_argument("--others", type=int, help="customers in another region (default: as --subscribers)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the broadcast (default: twice what the "
                                                      "bulk rate needs, and 2 minutes)")
    parser.add_argument("--redis-server", default=shutil.which("redis-server"), help="the redis-server binary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not args.redis_server:
        sys.exit("no redis-server on the PATH: install it, or give --redis-server")
    if args.customers < 1 or args.sms_rate <= 0 or not 0 < args.bulk_share <= 1:
        sys.exit("--customers and --sms-rate are more than 0, --bulk-share more than 0 and at most 1")
    if args.subscribers is None:
        args.subscribers = max(1, args.customers // 100)
    if args.others is None:
        args.others = args.subscribers
    folder = Path(tempfile.mkdtemp(prefix="guichet-broadcast-"))
    try:
        return run(args, folder)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path) -> int:
    import redis

    bulk_rate = args.sms_rate * args.bulk_share
    print(f"broadcast bench: {args.customers:,} customers in the {REGION}, {args.subscribers:,} subscribers, "
          f"{args.others:,} in the {ELSEWHERE}; SMS at {args.sms_rate:g}/s, bulk share {args.bulk_share:g} "
          f"({bulk_rate:g}/s), {args.bulk_workers} bulk worker(s); {machine()}", flush=True)
    figures: dict[str, Any] = {"customers": args.customers, "subscribers": args.subscribers, "others": args.others,
                               "sms_rate": args.sms_rate, "bulk_share": args.bulk_share, "bulk_rate": bulk_rate,
                               "bulk_workers": args.bulk_workers, "machine": machine()}
    missed: list[str] = []
    standin = StandIn()
    standin.thread.start()
    with redis_server(args.redis_server, folder) as (redis_url, redis_pid):
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        began = time.perf_counter()
        expected, silent = populate(client, args)
        imported = time.perf_counter() - began
        memory_imported = client.info("memory")["used_memory"]
        print(f"  imported       {args.customers + args.others:,} accounts and {args.subscribers:,} subscriptions in "
              f"{imported:.1f} s; Redis {memory_imported / 2**20:,.1f} MB", flush=True)

        key = "bench-" + os.urandom(8).hex()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUICHET_", "AFRICASTALKING_"))}
        env.pop("WEB_CONCURRENCY", None)
        env.update({"REDIS_URL": redis_url, "GUICHET_ADMIN_KEY": key, "GUICHET_UTILITY_NAME": "Eneo",
                    "GUICHET_SMS_PROVIDER": "africastalking", "AFRICASTALKING_USERNAME": AT_USER,
                    "AFRICASTALKING_API_KEY": AT_KEY, "AFRICASTALKING_API_URL": standin.url,
                    "GUICHET_SMS_RATE_PER_SECOND": f"{args.sms_rate:g}", "GUICHET_SMS_BULK_SHARE": f"{args.bulk_share:g}",
                    "GUICHET_BULK_WORKERS": str(args.bulk_workers)})
        with guichet(env, folder) as (port, group):
            status, body = admin(port, key, "POST", "/admin/incidents?dry_run=1", DEFINITION)
            preview = json.loads(body) if status == 200 else {}
            if status != 200:
                print(f"  dry run answered {status}: {body[:300]!r}")
                return 1
            print(f"  dry run        {preview['recipients']:,} recipients, {preview['opted_out']:,} opted out, "
                  f"{preview['total_segments']:,} segments", flush=True)
            if preview["recipients"] != len(expected):
                missed.append(f"the dry run counts {preview['recipients']:,} recipients, expected {len(expected):,}")
            cpu_before = {"background": cpu_seconds(pids={group}), "serving": cpu_seconds(group=group),
                          "redis": cpu_seconds(pids={redis_pid})}
            started = time.time()
            status, body = admin(port, key, "POST", "/admin/incidents", DEFINITION)
            if status != 201:
                print(f"  POST /admin/incidents answered {status}: {body[:300]!r}")
                return 1
            incident_id = json.loads(body)["id"]
            timeout = args.timeout or max(120.0, 2 * len(expected) / bulk_rate)
            progress, queued_at, peak_rss = follow(port, key, incident_id, len(expected), started, timeout, group)
            done_at = time.time()
            cpu = {"background": cpu_seconds(pids={group}) - cpu_before["background"],
                   "serving": cpu_seconds(group=group) - cpu_before["serving"] - (
                       cpu_seconds(pids={group}) - cpu_before["background"]),
                   "redis": cpu_seconds(pids={redis_pid}) - cpu_before["redis"]}
        memory = client.info("memory")
    standin.server.shutdown()

    report(args, figures, missed, expected, silent, standin, progress, started, queued_at, done_at, peak_rss,
           memory_imported, memory, cpu, bulk_rate)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if missed:
        print("  targets        MISSED:\n" + "\n".join(f"    - {why}" for why in missed))
        return 1
    print("  targets        met")
    return 0


def follow(port: int, key: str, incident_id: str, recipients: int, started: float, timeout: float,
           group: int) -> tuple[dict[str, Any], float | None, int]:
    """Watch the broadcast through the admin API until it is done (or ``timeout``): its last
    figures, when every recipient was queued, the largest resident size of the server."""
    queued_at: float | None = None
    peak_rss = 0
    progress: dict[str, Any] = {}
    last_print = 0.0
    while time.time() - started < timeout:
        status, body = admin(port, key, "GET", f"/admin/incidents/{incident_id}")
        if status == 200 and json.loads(body)["broadcasts"]:
            progress = json.loads(body)["broadcasts"][0]
            handled = progress["queued"] + progress["opted_out"] + progress["skipped"]
            if queued_at is None and progress["state"] != "selecting" and handled >= progress["recipients"]:
                queued_at = time.time()
            if progress["state"] == "done":
                break
        peak_rss = max(peak_rss, rss_kb(group))
        if time.time() - last_print >= 10:
            last_print = time.time()
            print(f"  ... {time.time() - started:5.0f} s  {progress.get('state')}: queued {progress.get('queued', 0):,}"
                  f" sent {progress.get('sent', 0):,} of {recipients:,}; expected end {progress.get('expected_end')}",
                  flush=True)
        time.sleep(0.5)
    return progress, queued_at, peak_rss


def report(args: argparse.Namespace, figures: dict[str, Any], missed: list[str], expected: dict[str, str],
           silent: set[str], standin: StandIn, progress: dict[str, Any], started: float, queued_at: float | None,
           done_at: float, peak_rss: int, memory_imported: int, memory: dict[str, Any], cpu: dict[str, float],
           bulk_rate: float) -> None:
    n = len(expected)
    queued_s = (queued_at - started) if queued_at else None
    sending_s = standin.last - standin.first if standin.last > standin.first else 0.0
    sent_rate = (standin.received - 1) / sending_s if sending_s else 0.0
    print(f"  broadcast      {progress.get('state')} after {done_at - started:,.1f} s: recipients "
          f"{progress.get('recipients', 0):,}, queued {progress.get('queued', 0):,}, opted out "
          f"{progress.get('opted_out', 0):,}, sent {progress.get('sent', 0):,}, failed {progress.get('failed', 0):,}")
    print(f"  queued         {n:,} in {queued_s:,.1f} s: {n / queued_s:,.1f} recipients/s" if queued_s else
          "  queued         not all within the timeout")
    print(f"  sent           {standin.received:,} at the stand-in in {sending_s:,.1f} s: {sent_rate:,.1f} messages/s "
          f"(bulk rate configured {bulk_rate:g}/s: {sent_rate / bulk_rate:.0%}); {standin.requests:,} requests")
    print(f"  memory         Redis {memory_imported / 2**20:,.1f} MB after the import, peak "
          f"{memory['used_memory_peak'] / 2**20:,.1f} MB, {memory['used_memory'] / 2**20:,.1f} MB at the end; guichet "
          f"serve {peak_rss / 1024:,.0f} MB resident at most (every process)")
    print("  CPU            " + ", ".join(f"{name} {seconds:,.1f} s" for name, seconds in cpu.items()))
    counts = Counter(len(standin.by_phone.get(phone, [])) for phone in expected)
    wrong_language = sum(1 for phone, lang in expected.items()
                         if standin.by_phone.get(phone) and not standin.by_phone[phone][0].startswith(
                             f"Eneo: {TITLE[lang]}\n"))
    silenced = sum(1 for phone in silent if standin.by_phone.get(phone))
    strangers = sum(1 for phone in standin.by_phone if phone not in expected and phone not in silent)
    print(f"  exactly one    {counts.get(1, 0):,} of {n:,} recipients got exactly one SMS; none: {counts.get(0, 0):,}, "
          f"more: {sum(c for k, c in counts.items() if k > 1):,}; in another language: {wrong_language:,}; to opted-out "
          f"or other-region phones: {silenced:,}; to strangers: {strangers:,}")
    figures.update({"recipients": n, "queued_s": round(queued_s, 2) if queued_s else None,
                    "queued_per_s": round(n / queued_s, 1) if queued_s else None,
                    "sent": standin.received, "sending_s": round(sending_s, 2), "sent_per_s": round(sent_rate, 1),
                    "done_s": round(done_at - started, 2), "state": progress.get("state"),
                    "redis_mb_imported": round(memory_imported / 2**20, 1),
                    "redis_mb_peak": round(memory["used_memory_peak"] / 2**20, 1),
                    "server_rss_mb": round(peak_rss / 1024, 1), "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
                    "exactly_one": counts.get(1, 0), "none": counts.get(0, 0),
                    "more_than_one": sum(c for k, c in counts.items() if k > 1), "wrong_language": wrong_language,
                    "to_silent": silenced, "to_strangers": strangers, "api": {k: progress.get(k) for k in (
                        "recipients", "queued", "opted_out", "skipped", "sent", "failed", "unconfirmed")}})
    if progress.get("state") != "done":
        missed.append(f"the broadcast is {progress.get('state')}, not done, after {done_at - started:,.0f} s")
    if counts.get(1, 0) != n:
        missed.append(f"{n - counts.get(1, 0):,} recipients did not get exactly one SMS")
    if wrong_language or silenced or strangers:
        missed.append(f"{wrong_language} in the wrong language, {silenced} to phones that must hear nothing, "
                      f"{strangers} to strangers")
    if progress.get("sent") != n or progress.get("queued") != n:
        missed.append(f"the admin API says queued {progress.get('queued')}, sent {progress.get('sent')}: expected {n:,}")
    if standin.refused:
        missed.append(f"the stand-in refused {standin.refused} requests")


if __name__ == "__main__":
    sys.exit(main())
