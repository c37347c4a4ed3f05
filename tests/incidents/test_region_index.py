"""The region index the customer import keeps: the phones of each region, and each phone's
regions in its profile (what a new USSD session reads with the language). Right when an
account moves region or phone, and whatever the spelling of a region."""
from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from state import keys
from utility.customers import CHUNK_SIZE, Account, RedisCustomerBase, region_key

JEAN = Account("CM-1", "", "Jean Mbarga", "+237699000001", "Littoral", "postpaid", 0, None)
JEAN_SHOP = Account("CM-2", "", "Jean Mbarga", "+237699000001", "Centre", "postpaid", 0, None)
AMINA = Account("CM-3", "", "Aminatou Bello", "+237699000003", "Extrême-Nord", "postpaid", 0, None)


@pytest.fixture
def base(any_redis: redis.Redis) -> RedisCustomerBase:
    return RedisCustomerBase(any_redis)


def regions_of(client: redis.Redis, phone: str) -> str | None:
    return client.hget(keys.profile(phone), "regions")  # type: ignore[return-value]


def phones_in(client: redis.Redis, region: str) -> set[str]:
    return client.smembers(keys.region_phones(region_key(region)))  # type: ignore[return-value]


def test_each_phone_knows_its_regions_and_each_region_its_phones(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    any_redis.hset(keys.profile(JEAN.phone), "lang", "en")
    base.upsert([JEAN, JEAN_SHOP, AMINA])
    assert any_redis.hgetall(keys.profile(JEAN.phone)) == {"lang": "en", "regions": "Centre,Littoral"}
    assert regions_of(any_redis, AMINA.phone) == "Extrême-Nord"
    assert phones_in(any_redis, "Littoral") == phones_in(any_redis, "Centre") == {JEAN.phone}
    assert phones_in(any_redis, "extreme-nord") == phones_in(any_redis, "EXTREME-NORD ") == {AMINA.phone}
    assert any_redis.hgetall(keys.regions()) == {"littoral": "Littoral", "centre": "Centre",
                                                 "extreme-nord": "Extrême-Nord"}
    assert {key.split("{")[1].split("}")[0] for key in (keys.region_phones("littoral"),
                                                        keys.region_subscribers("littoral"))} == {"region:littoral"}
    assert keys.phone_regions(JEAN.phone).split("{")[1].split("}")[0] == JEAN.phone  # the phone's own slot


def test_an_account_that_moves_region_takes_its_phone_along_only_when_no_other_keeps_it(
    base: RedisCustomerBase, any_redis: redis.Redis
) -> None:
    base.upsert([JEAN, JEAN_SHOP])
    base.upsert([replace(JEAN_SHOP, region="Littoral")])  # the shop moves to the Littoral too
    assert regions_of(any_redis, JEAN.phone) == "Littoral"
    assert phones_in(any_redis, "Centre") == set() and phones_in(any_redis, "Littoral") == {JEAN.phone}
    base.upsert([replace(JEAN, region="Ouest")])  # the shop still keeps the phone in the Littoral
    assert regions_of(any_redis, JEAN.phone) == "Littoral,Ouest"
    assert phones_in(any_redis, "Littoral") == phones_in(any_redis, "Ouest") == {JEAN.phone}


def test_an_account_that_moves_phone_leaves_the_old_phone_out(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    base.upsert([JEAN, JEAN_SHOP, AMINA])
    base.upsert([replace(JEAN, phone=AMINA.phone)])  # Jean's house is sold to Aminatou
    assert regions_of(any_redis, JEAN.phone) == "Centre"
    assert regions_of(any_redis, AMINA.phone) == "Extrême-Nord,Littoral"
    assert phones_in(any_redis, "Littoral") == {AMINA.phone}
    base.upsert([replace(JEAN_SHOP, phone="+237699000007")])  # and his shop: his phone has no account left
    assert regions_of(any_redis, JEAN.phone) is None
    assert any_redis.hgetall(keys.phone_regions(JEAN.phone)) == {}
    assert phones_in(any_redis, "Centre") == {"+237699000007"}


def test_a_region_written_with_a_comma_does_not_break_the_list(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    base.upsert([replace(JEAN, region="Douala, Bonaberi"), JEAN_SHOP])
    assert regions_of(any_redis, JEAN.phone) == "Centre,Douala Bonaberi"
    assert phones_in(any_redis, "Douala, Bonaberi") == {JEAN.phone}


def test_a_reimport_mends_an_index_a_crash_left_half_written(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    base.upsert([JEAN, AMINA])
    any_redis.delete(keys.profile(JEAN.phone), keys.region_phones("littoral"))  # a crash before these were written
    result = base.upsert([JEAN, AMINA])
    assert (result.imported, result.updated) == (0, 2)
    assert regions_of(any_redis, JEAN.phone) == "Littoral" and phones_in(any_redis, "Littoral") == {JEAN.phone}


def test_many_chunks_with_moves_across_them(base: RedisCustomerBase, any_redis: redis.Redis) -> None:
    crowd = [Account(f"CM-9{i:05d}", "", f"Client {i}", f"+2376995{i % 701:05d}", "Centre" if i % 2 else "Littoral",
                     "postpaid", 0, None) for i in range(2 * CHUNK_SIZE + 50)]
    base.upsert(crowd)
    assert len(phones_in(any_redis, "Centre")) == len(phones_in(any_redis, "Littoral")) == 701  # each phone: both
    assert regions_of(any_redis, "+237699500001") == "Centre,Littoral"
    moved = [replace(account, region="Ouest") for account in crowd if account.phone == "+237699500001"]
    base.upsert(moved)
    assert regions_of(any_redis, "+237699500001") == "Ouest"
    assert "+237699500001" not in phones_in(any_redis, "Centre") | phones_in(any_redis, "Littoral")
    assert len(phones_in(any_redis, "Littoral")) == len(phones_in(any_redis, "Centre")) == 700
