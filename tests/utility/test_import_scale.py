"""A national customer base: 250,000 lines checked and imported in one go.

The full size runs against a real redis-server (CI always has one); on fakeredis,
whose every command costs ~100 µs of Python, a smaller file exercises the same
chunked path. Throughput is measured by bench/import_customers.py, not here.
"""
from __future__ import annotations

import pytest
import redis

from utility.customer_csv import COLUMNS, parse_customers
from utility.customers import CHUNK_SIZE, RedisCustomerBase
from utility.meters import with_check_digit

NATIONAL = 250_000


def national_file(customers: int) -> str:
    lines = [",".join(COLUMNS)]
    for i in range(customers):
        if i % 3:
            lines.append(f"CM-{i},{with_check_digit(f'014{i:07d}')},Jean Mbarga,+2376{i:08d},Centre,prepaid,0,")
        else:
            lines.append(f"CM-{i},,Marie Fotso,+2376{i:08d},Littoral,postpaid,12500,2025-06-30")
    return "\n".join(lines) + "\n"


def import_and_check(client: redis.Redis, customers: int) -> None:
    base = RedisCustomerBase(client)
    result = base.upsert(parse_customers(national_file(customers)))
    assert (result.imported, result.updated) == (customers, 0)
    last = base.account_for_meter(with_check_digit(f"014{customers - 2:07d}"))
    assert last is not None and last.account_number == f"CM-{customers - 2}"
    assert [a.account_number for a in base.accounts_for_phone(f"+2376{customers - 1:08d}")] == [f"CM-{customers - 1}"]


def test_many_chunks_import_whole_on_fakeredis(fake_redis) -> None:
    import_and_check(fake_redis, 12 * CHUNK_SIZE + 7)


@pytest.mark.real_redis
def test_a_national_customer_base_imports_whole(real_redis) -> None:
    import_and_check(real_redis, NATIONAL)
