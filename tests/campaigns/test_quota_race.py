"""The quota under a crowd: 150 customers register at the same instant for 100 places. Exactly
100 are accepted, 50 hear "quota", none is lost or counted twice: the check and the count
are one script. Runs on fakeredis and on a real redis-server."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import fakeredis
import pytest
import redis
from flask import Flask

from state import keys
from state.store import get_redis
from tests.campaigns.conftest import OPEN, definition
from utility.campaigns.model import Verdict
from utility.campaigns.service import Campaigns
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit
from utility.services import services

CROWD = 150
QUOTA = 100


@pytest.fixture(params=["fakeredis", pytest.param("redis-server", marks=pytest.mark.real_redis),
                        pytest.param("redis-cluster", marks=[pytest.mark.real_redis, pytest.mark.redis_cluster])])
def redis_client(request: pytest.FixtureRequest) -> redis.Redis:
    """fakeredis (with a pool for the whole crowd: its default holds fewer connections), the
    real redis-server, and a real Redis Cluster."""
    if request.param == "fakeredis":
        return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True, max_connections=4 * CROWD)
    return request.getfixturevalue("real_redis" if request.param == "redis-server" else "redis_cluster")


def crowd() -> list[Account]:
    return [Account(f"CM-2{i:06d}", with_check_digit(f"02{i:08d}"), f"Client {i}", f"+2376990{i:05d}", "Centre",
                    "prepaid", 0, None) for i in range(CROWD)]


def test_150_registrants_for_100_places(app: Flask) -> None:
    accounts = crowd()
    RedisCustomerBase(get_redis(app)).upsert(accounts)
    with app.app_context():
        campaigns: Campaigns = services(app).campaigns
    campaigns.create(definition(quota=QUOTA))
    start = threading.Barrier(CROWD)

    def register(account: Account) -> Verdict:
        start.wait()  # all at once
        return campaigns.register("GRATUIT", account.meter_number, account.phone, "ussd", "fr", now=OPEN)

    with ThreadPoolExecutor(max_workers=CROWD) as pool:
        verdicts = list(pool.map(register, accounts))

    assert Counter(v.reason or "accepted" for v in verdicts) == {"accepted": QUOTA, "quota": CROWD - QUOTA}
    references = [v.reference for v in verdicts if v.accepted]
    assert len(set(references)) == QUOTA
    stats = campaigns.stats("GRATUIT", OPEN)
    assert (stats["registered"], stats["remaining_quota"], stats["refusals"]["quota"]) == (QUOTA, 0, CROWD - QUOTA)
    exported = list(campaigns.registrations("GRATUIT"))
    assert sorted(r.reference for r in exported) == sorted(references)
    assert get_redis(app).hlen(keys.campaign_records("GRATUIT")) == QUOTA  # type: ignore[attr-defined]
