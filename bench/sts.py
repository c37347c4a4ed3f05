"""Tokens per second of the built-in STS engine on one core, and the cost of a whole `vend`.

    python bench/sts.py [--seconds N] [--vends N] [--redis redis://127.0.0.1:6379/15]

--redis FLUSHES that database (use a spare db number); without it the vend figure is
on fakeredis, which adds its own cost per command.

Issues electricity credit tokens for one meter, as a busy vending day does: the decoder key
is derived once (DKGA02, cached) and every token pays for the amount encoding, the TID, the
CRC, EA07 and the decimal rendering.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utility.vending import sts  # noqa: E402

METER = sts.MeterKeyData(
    vending_key=bytes.fromhex("abababababababab"), key_type=2, sgc="123456", tariff_index="01", krn=1,
    pan="600727000000000009", base_date=sts.BASE_2014,
)


def issue_rate(seconds: float) -> tuple[int, float]:
    """(tokens issued, elapsed seconds) over about ``seconds``."""
    key = sts.decoder_key(METER)
    start_time = datetime(2025, 6, 1, 8, 0)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        # Batches keep the clock reads out of the measured work.
        for i in range(500):
            n = count + i
            sts.credit_token(key, f"{n % 5000}.{n % 10}", start_time + timedelta(minutes=n), base_date=sts.BASE_2014)
        count += 500
        now = time.perf_counter()
        if now >= deadline:
            return count, now - started


def vend_cost(vends: int, redis_url: str | None) -> tuple[float, float]:
    """(vends per second, median ms per vend) through BuiltinVending: meter lookup, lock,
    tariff arithmetic, token, receipt number, and the recording pipeline."""
    import statistics

    import fakeredis
    import redis

    from utility.customers import Account, RedisCustomerBase
    from utility.meters import with_check_digit
    from utility.vending.builtin import BuiltinVending, StsSettings

    client = redis.Redis.from_url(redis_url, decode_responses=True) if redis_url else fakeredis.FakeRedis(decode_responses=True)
    client.flushdb()
    meters = [with_check_digit(f"014{n:07d}") for n in range(100)]
    customers = RedisCustomerBase(client)
    customers.upsert([Account(f"CM-{n}", m, "Jean Mbarga", f"+2376990{n:05d}", "Centre", "prepaid", 0, None)
                      for n, m in enumerate(meters)])
    vending = BuiltinVending(client, customers, StsSettings(vending_key=bytes.fromhex("abababababababab")))
    for meter in meters:  # derive every decoder key first: a vending day reuses them
        vending.quote(meter, 1_000)
        sts.decoder_key(vending.settings.meter(meter))
    timings = []
    started = time.perf_counter()
    for n in range(vends):
        t0 = time.perf_counter()
        vending.vend(meters[n % len(meters)], 2_000 + n % 7, f"BENCH-{n}")
        timings.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    client.flushdb()
    return vends / elapsed, statistics.median(timings) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to measure (default 10)")
    parser.add_argument("--vends", type=int, default=2000, help="vends for the end-to-end figure (0: skip)")
    parser.add_argument("--redis", help="Redis URL for the vend figure (its db is FLUSHED); default fakeredis")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    # DKGA02 (one DES), the EA07 table compilation and the key's schedule happen once.
    sts.credit_token(sts.decoder_key(METER), "1", datetime(2025, 6, 1), base_date=sts.BASE_2014)
    setup_ms = (time.perf_counter() - started) * 1000
    count, elapsed = issue_rate(args.seconds)
    print(f"{count / elapsed:.0f} tokens/s ({count} credit tokens in {elapsed:.1f} s, one core, cached decoder key)")
    print(f"first-use setup: {setup_ms:.0f} ms (DKGA02 + EA07 table compilation)")
    if args.vends:
        rate, median_ms = vend_cost(args.vends, args.redis)
        print(f"vend end to end: {rate:.0f} vends/s, median {median_ms:.2f} ms ({args.redis or 'fakeredis'})")


if __name__ == "__main__":
    main()
