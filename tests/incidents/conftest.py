"""A small customer base in two regions, an incident definition to vary, an app whose SMS go
to the Africa's Talking stand-in, and what the background does for a broadcast."""
from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
import redis
from flask import Flask

from sms import optout
from state import keys, worker
from state.store import get_redis
from tests.conftest import ADMIN_KEY
from tests.sms.fixtures import africastalking_config, africastalking_standin, sms_app_for  # noqa: F401
from tests.sms.standin_africastalking import AfricasTalkingStandin
from utility.customers import Account, RedisCustomerBase
from utility.incidents import jobs
from utility.incidents.service import Incidents
from utility.services import services

TODAY = datetime.date.today()
JEAN = Account("CM-2000001", "", "Jean Mbarga", "+237699100001", "Littoral", "postpaid", 18_450,
               TODAY - datetime.timedelta(days=5))
GRACE = Account("CM-2000002", "", "Grace Ayuk", "+237699100002", "Littoral", "postpaid", 9_000,
                TODAY + datetime.timedelta(days=5))  # her phone reads English
ODILE = Account("CM-2000003", "", "Odile Ekane", "+237699100003", "Littoral", "postpaid", 0, None)  # texted STOP
PAUL_SHOP = Account("CM-2000004", "", "Paul Fotso", "+237699100004", "Littoral", "postpaid", 0, None)
PAUL_HOME = Account("CM-2000005", "", "Paul Fotso", "+237699100004", "Centre", "postpaid", 4_000,
                    TODAY - datetime.timedelta(days=3))
AMINA = Account("CM-2000006", "", "Aminatou Bello", "+237699100006", "Centre", "postpaid", 12_000,
                TODAY - datetime.timedelta(days=2))
CUSTOMERS = (JEAN, GRACE, ODILE, PAUL_SHOP, PAUL_HOME, AMINA)
COUSIN = "+237699100009"  # no account: subscribed to the Littoral's notices
TOLD = (JEAN.phone, GRACE.phone, PAUL_SHOP.phone, COUSIN)  # whom a Littoral incident texts


def definition(**changes: Any) -> dict[str, Any]:
    """An outage in the Littoral, broadcast; ``...`` leaves a field out."""
    data: dict[str, Any] = {
        "title": {"fr": "Coupure Douala Nord", "en": "Outage Douala North"},
        "message": {"fr": "Travaux sur la ligne de Bonaberi.", "en": "Works on the Bonaberi line."},
        "regions": ["Littoral"],
        "services": ["supply", "vending"],
        "expected_end": "2099-05-12T18:00",
        "waive_penalties": True,
        "broadcast": True,
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not ...}


@pytest.fixture
def app(redis_client: redis.Redis, africastalking_standin: AfricasTalkingStandin) -> Flask:  # noqa: F811
    """The app, its SMS sent to the Africa's Talking stand-in with no rate limit."""
    return sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0,
                       ADMIN_KEY=ADMIN_KEY, UTILITY_NAME="Eneo")


@pytest.fixture
def base(app: Flask) -> RedisCustomerBase:
    client = get_redis(app)
    customers = RedisCustomerBase(client)
    customers.upsert(CUSTOMERS)
    client.hset(keys.profile(GRACE.phone), "lang", "en")  # as the USSD language screen leaves it
    optout.set_notices(client, ODILE.phone, False, "sms")
    return customers


@pytest.fixture
def incidents(app: Flask, base: RedisCustomerBase) -> Incidents:
    with app.app_context():
        found = services(app).incidents
    found.subscribe(COUSIN, "littoral")
    return found


def background(app: Flask, now: float | None = None, rounds: int = 5) -> int:
    """What the background does for the broadcasts, ``rounds`` times: a round of the pump, then
    the bulk worker runs what it queued (the chunks, then their SMS deliveries). How many
    phones the pump handed out in all."""
    handed = 0
    for round_ in range(rounds):
        handed += jobs.pump(app, now=None if now is None else now + round_)
        worker.make_worker(app, queue_name=worker.BULK_QUEUE_NAME).work(burst=True)
    return handed


def inbox(standin: AfricasTalkingStandin, phone: str) -> list[str]:
    """The SMS ``phone`` received, in order."""
    return [message.message for message in standin.messages_to(phone)]


def later(seconds: float) -> float:
    return time.time() + seconds
