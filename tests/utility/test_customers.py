from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from state import keys
from utility.customers import CHUNK_SIZE, Account, RedisCustomerBase, mask_tail
from utility.meters import with_check_digit

JEAN = Account(
    account_number="CM-1000001",
    meter_number=with_check_digit("0140000001"),
    name="Jean Mbarga",
    phone="+237699000001",
    region="Centre",
    tariff="prepaid",
    balance_due=0,
    due_date=None,
)
JEAN_BILL = Account(
    account_number="CM-0999999",  # sorts before JEAN
    meter_number="",
    name="Jean Mbarga",
    phone="+237699000001",
    region="Centre",
    tariff="postpaid",
    balance_due=18_450,
    due_date=datetime.date(2025, 6, 30),
)
SYLVIE = Account(
    account_number="GA-1000005",
    meter_number="",
    name="Sylvie Nze",
    phone="+24107000003",
    region="Estuaire",
    tariff="postpaid",
    balance_due=27_300,
    due_date=datetime.date(2025, 7, 1),
)


class RoundTrips:
    """How many times the client sent something to Redis (a pipeline is one send)."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def base(any_redis: redis.Redis) -> RedisCustomerBase:
    return RedisCustomerBase(any_redis)


@pytest.fixture
def round_trips(any_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    any_redis.ping()  # connect first: the handshake is not the code under test
    pool = getattr(any_redis, "connection_pool", None)  # none on a cluster: its nodes' are plain Connections
    connection_class = pool.connection_class if pool is not None else redis.connection.Connection
    send = connection_class.send_packed_command
    trips = RoundTrips()

    answered = [True]

    counted_thread = threading.get_ident()  # the test's: not a background thread's writes

    def counting_send(self: redis.Connection, command: object, check_health: bool = True) -> None:
        # A cluster's pipeline writes to each node, then reads them all: one round trip.
        if threading.get_ident() != counted_thread:
            return send(self, command, check_health)
        trips.count += answered[0]
        answered[0] = False
        send(self, command, check_health)

    read = connection_class.read_response

    def noting_read(self: redis.Connection, *args: Any, **kwargs: Any) -> Any:
        answered[0] = True
        return read(self, *args, **kwargs)

    monkeypatch.setattr(connection_class, "send_packed_command", counting_send)
    monkeypatch.setattr(connection_class, "read_response", noting_read)
    yield trips


def test_an_account_with_a_meter_is_prepaid() -> None:
    assert JEAN.prepaid
    assert not JEAN_BILL.prepaid


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("01400000012", "****0012"),
        ("CM-1000001", "****0001"),
        ("12345", "****2345"),
        ("1234", "****"),  # showing the last four would show it all
        ("12", "****"),
        ("", "****"),
    ],
)
def test_mask_tail_shows_only_the_last_four(number: str, masked: str) -> None:
    assert mask_tail(number) == masked


def test_mask_tail_can_keep_fewer_or_none() -> None:
    assert mask_tail("01400000012", keep=2) == "****12"
    assert mask_tail("01400000012", keep=0) == "****"


def test_a_phone_sees_its_accounts_sorted_by_account_number(base: RedisCustomerBase) -> None:
    base.upsert([JEAN, SYLVIE, JEAN_BILL])
    assert base.accounts_for_phone(JEAN.phone) == [JEAN_BILL, JEAN]
    assert base.accounts_for_phone(SYLVIE.phone) == [SYLVIE]
    assert base.accounts_for_phone("+237699999999") == []


def test_accounts_for_phone_takes_two_round_trips(base: RedisCustomerBase, round_trips: RoundTrips) -> None:
    many = [replace(JEAN_BILL, account_number=f"CM-{i}") for i in range(50)]
    base.upsert(many)
    round_trips.count = 0  # count the reading only
    assert len(base.accounts_for_phone(JEAN_BILL.phone)) == 50
    assert round_trips.count == 2


def test_an_account_is_found_by_number_and_by_meter(base: RedisCustomerBase) -> None:
    base.upsert([JEAN, SYLVIE])
    assert base.account("GA-1000005") == SYLVIE
    assert base.account("GA-404") is None
    assert base.account_for_meter(JEAN.meter_number) == JEAN
    assert base.account_for_meter(with_check_digit("0149999999")) is None


def test_upsert_counts_new_and_existing_accounts(base: RedisCustomerBase) -> None:
    assert base.upsert([JEAN, SYLVIE]).imported == 2
    result = base.upsert([replace(JEAN, balance_due=500), JEAN_BILL])
    assert (result.imported, result.updated) == (1, 1)
    assert base.account(JEAN.account_number) == replace(JEAN, balance_due=500)


def test_reimport_moves_an_account_to_its_new_phone(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    base.upsert([JEAN, JEAN_BILL])
    moved = replace(JEAN, phone="+237677000009")
    base.upsert([moved])
    assert base.accounts_for_phone(JEAN.phone) == [JEAN_BILL]
    assert base.accounts_for_phone(moved.phone) == [moved]
    assert any_redis.smembers(keys.phone_accounts(JEAN.phone)) == {JEAN_BILL.account_number}


def test_reimport_with_a_new_meter_releases_the_old_one(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    base.upsert([JEAN])
    new_meter = replace(JEAN, meter_number=with_check_digit("0140000077"))
    base.upsert([new_meter])
    assert base.account_for_meter(JEAN.meter_number) is None
    assert not any_redis.exists(keys.meter_account(JEAN.meter_number))
    assert base.account_for_meter(new_meter.meter_number) == new_meter


def test_reimport_to_postpaid_releases_the_meter(base: RedisCustomerBase) -> None:
    base.upsert([JEAN])
    base.upsert([replace(JEAN, meter_number="", tariff="postpaid")])
    assert base.account_for_meter(JEAN.meter_number) is None


def test_a_meter_handed_to_another_account_in_an_earlier_chunk_stays_with_it(base: RedisCustomerBase) -> None:
    # A new tenant's account takes over the meter; the old account, further down the
    # file (a later chunk), gets a new meter. The old account must not release the
    # meter the new tenant now holds.
    base.upsert([JEAN])
    tenant = replace(JEAN, account_number="CM-0000001", phone="+237655000001", name="Carine Fotso")
    filler = [replace(SYLVIE, account_number=f"GA-{i}") for i in range(CHUNK_SIZE)]
    jean_moved = replace(JEAN, meter_number=with_check_digit("0140000077"))
    base.upsert([tenant, *filler, jean_moved])
    assert base.account_for_meter(JEAN.meter_number) == tenant
    assert base.account_for_meter(jean_moved.meter_number) == jean_moved


def test_a_stale_phone_index_never_shows_another_phones_account(
    base: RedisCustomerBase, any_redis: redis.Redis
) -> None:
    base.upsert([JEAN, SYLVIE])
    any_redis.sadd(keys.phone_accounts(JEAN.phone), SYLVIE.account_number)  # left over by a crash
    assert base.accounts_for_phone(JEAN.phone) == [JEAN]


def test_upsert_refuses_an_account_twice(base: RedisCustomerBase) -> None:
    with pytest.raises(ValueError, match="twice"):
        base.upsert([JEAN, replace(JEAN, name="Jean-Paul Mbarga")])


def test_upsert_takes_two_round_trips_per_chunk(base: RedisCustomerBase, round_trips: RoundTrips) -> None:
    accounts = [replace(SYLVIE, account_number=f"GA-{i}") for i in range(CHUNK_SIZE * 2 + 1)]
    assert base.upsert(accounts).imported == len(accounts)
    assert round_trips.count == 3 * 2
