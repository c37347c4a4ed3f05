"""Tokens per second of the built-in STS engine on one core: `python bench/sts.py [--seconds N]`.

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to measure (default 10)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    # DKGA02 (one DES), the EA07 table compilation and the key's schedule happen once.
    sts.credit_token(sts.decoder_key(METER), "1", datetime(2025, 6, 1), base_date=sts.BASE_2014)
    setup_ms = (time.perf_counter() - started) * 1000
    count, elapsed = issue_rate(args.seconds)
    print(f"{count / elapsed:.0f} tokens/s ({count} credit tokens in {elapsed:.1f} s, one core, cached decoder key)")
    print(f"first-use setup: {setup_ms:.0f} ms (DKGA02 + EA07 table compilation)")


if __name__ == "__main__":
    main()
