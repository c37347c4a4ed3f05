"""How fast a customer CSV is checked and imported: rows per second, parse and write.

    .venv/bin/python bench/import_customers.py --rows 250000 --redis redis://127.0.0.1:6379/15

It FLUSHES the Redis database it is given (use a spare db number). Without --redis it
runs on fakeredis, which measures our code plus fakeredis's own cost per command.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fakeredis  # noqa: E402
import redis  # noqa: E402

from tests.utility.test_import_scale import national_file  # noqa: E402
from utility.customer_csv import parse_customers  # noqa: E402
from utility.customers import RedisCustomerBase  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--redis", help="Redis URL (its database is flushed); default: fakeredis")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis, decode_responses=True) if args.redis else fakeredis.FakeRedis(decode_responses=True)
    client.flushdb()
    text = national_file(args.rows)
    started = time.perf_counter()
    accounts = parse_customers(text)
    parsed = time.perf_counter()
    RedisCustomerBase(client).upsert(accounts)
    written = time.perf_counter()
    RedisCustomerBase(client).upsert(accounts)  # a re-import: every row an update
    rewritten = time.perf_counter()
    target = args.redis or "fakeredis"
    print(f"rows             {args.rows:>10,}   ({target})")
    print(f"check (parse)    {parsed - started:>9.2f} s   {args.rows / (parsed - started):>10,.0f} rows/s")
    print(f"first import     {written - parsed:>9.2f} s   {args.rows / (written - parsed):>10,.0f} rows/s")
    print(f"re-import        {rewritten - written:>9.2f} s   {args.rows / (rewritten - written):>10,.0f} rows/s")
    client.flushdb()


if __name__ == "__main__":
    main()
