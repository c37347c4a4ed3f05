"""Orders per second through the whole pipeline, as `make run` runs it.

    .venv/bin/python bench/orders.py --orders 300 --redis redis://127.0.0.1:6379/15

For each order: the USSD dialogue (8 hops) up to "confirm", the demo payment provider
approving by calling our callback over HTTP, the vend (real STS tokens, tariffs), and the
receipt SMS written by the file provider. The clock stops when the last receipt is in the
file. The app and its in-process worker run here, on a local port; --redis FLUSHES that
database (use a spare db number); without it, the embedded store (fakeredis) is used.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fakeredis  # noqa: E402
import redis  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from app import create_app  # noqa: E402
from state import worker  # noqa: E402
from utility.customers import Account  # noqa: E402
from utility.meters import with_check_digit  # noqa: E402
from utility.services import services  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--redis", help="Redis URL (its database is FLUSHED); default: the embedded store")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()

    client = (redis.Redis.from_url(args.redis, decode_responses=True) if args.redis
              else fakeredis.FakeRedis(decode_responses=True))
    client.flushdb()
    sms_file = Path(tempfile.mkdtemp()) / "sms.jsonl"
    port = free_port()
    app = create_app({
        "REDIS_CLIENT": client, "PUBLIC_URL": f"http://127.0.0.1:{port}", "DEMO_PAYMENT_DELAY": 0,
        "SMS_PROVIDER": "file", "SMS_FILE": str(sms_file), "SMS_RATE_PER_SECOND": 100_000, "SMS_SWEEP_EVERY": 0,
    })
    # Numbers ending in 0: the demo provider declines payers ending in 9.
    phones = [f"+23769{n:06d}0" for n in range(args.orders)]
    services(app).customers.upsert([
        Account(f"CM-{n}", with_check_digit(f"014{n:07d}"), "Jean Mbarga", phone, "Centre", "prepaid", 0, None)
        for n, phone in enumerate(phones)
    ])
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    background = worker.start_in_thread(app)
    ussd = app.test_client()
    hop_times: list[float] = []
    started = time.perf_counter()
    try:
        for n, phone in enumerate(phones):
            text = ""
            for step in ["", "1", "5000", "1", "1", "1"]:  # buy, (one meter) amount, pay, this number, confirm
                text = step if not text and step else (f"{text}*{step}" if step else text)
                t0 = time.perf_counter()
                answer = ussd.post("/ussd/africastalking", data={
                    "sessionId": f"bench-{n}", "serviceCode": "*384#", "phoneNumber": phone, "networkCode": "62401",
                    "text": text})
                hop_times.append(time.perf_counter() - t0)
                assert answer.status_code == 200
            assert answer.get_data(as_text=True).startswith("END Validez"), answer.get_data(as_text=True)
        placed = time.perf_counter()
        deadline = started + args.max_seconds

        def receipts() -> int:
            # One SMS per order on this path: its receipt with the token.
            return len(sms_file.read_text().splitlines()) if sms_file.exists() else 0

        orders = services(app).orders

        def served() -> int:
            return sum(1 for phone in phones if (o := orders.recent(phone, 1)) and o[0].state == "receipt_sent")

        while (receipts() < len(phones) or served() < len(phones)) and time.perf_counter() < deadline:
            time.sleep(0.1)
        done = time.perf_counter()
        got, finished = receipts(), served()
    finally:
        background.stop()
        server.shutdown()
    if finished < len(phones):
        from collections import Counter

        states = Counter(o[0].state for phone in phones if (o := orders.recent(phone, 1)))
        print(f"order states   {dict(states)}")
    print(f"orders         {len(phones)} ({args.redis or 'embedded store'})")
    print(f"receipts sent  {got}, orders receipt_sent {finished}"
          + ("" if finished == len(phones) else "   (INCOMPLETE: see --max-seconds)"))
    print(f"dialogues      {placed - started:.1f} s for {len(hop_times)} hops, median hop "
          f"{statistics.median(hop_times) * 1000:.2f} ms")
    print(f"pipeline       {done - started:.1f} s from the first hop to the last receipt SMS")
    print(f"throughput     {got / (done - started):.1f} orders/s end to end (one process, one worker thread)")
    client.flushdb()


if __name__ == "__main__":
    main()
