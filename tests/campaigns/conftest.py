"""A small customer base, a campaign definition to vary, and the app's Campaigns."""
from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

import pytest
from flask import Flask

from state.store import get_redis
from utility.campaigns.service import Campaigns
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit
from utility.services import services

DOUALA = zoneinfo.ZoneInfo("Africa/Douala")
BEFORE = datetime.datetime(2026, 4, 14, 7, 0, tzinfo=DOUALA)
OPEN = datetime.datetime(2026, 4, 20, 12, 0, tzinfo=DOUALA)  # the campaigns below take registrations
AFTER = datetime.datetime(2026, 5, 2, 9, 0, tzinfo=DOUALA)

JEAN_METER = with_check_digit("0140000001")  # 01400000012
AMINA_METER = with_check_digit("0140000002")
ODILE_METER = with_check_digit("0150000006")

JEAN = Account("CM-1000001", JEAN_METER, "Jean Mbarga", "+237699000001", "Centre", "prepaid", 0, None)
AMINA = Account("CM-1000002", AMINA_METER, "Aminatou Bello", "+237699000002", "Estuaire", "social", 0, None)
SYLVIE = Account("GA-1000005", "", "Sylvie Nze", "+24107000003", "Estuaire", "postpaid", 27_300, None)
PAUL = Account("CM-1000005", "", "Paul Fotso", "+237677000007", "Littoral", "postpaid", 0, None)  # GA-1000005's digits
ODILE = Account("CM-1000006", ODILE_METER, "Odile Ekane", "+237699000006", "Centre", "water", 0, None)
CUSTOMERS = (JEAN, AMINA, SYLVIE, PAUL, ODILE)


def definition(**changes: Any) -> dict[str, Any]:
    """GRATUIT: 50 kWh to every prepaid meter, 14-30 April 2026; ``...`` leaves a field out."""
    data: dict[str, Any] = {
        "code": "GRATUIT",
        "name": {"fr": "Electricite offerte", "en": "Free electricity"},
        "starts_at": "2026-04-14T08:00",
        "ends_at": "2026-04-30T20:00",
        "benefit": {"kind": "kwh", "amount": 50},
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not ...}


@pytest.fixture
def base(app: Flask) -> RedisCustomerBase:
    customers = RedisCustomerBase(get_redis(app))
    customers.upsert(CUSTOMERS)
    return customers


@pytest.fixture
def campaigns(app: Flask, base: RedisCustomerBase) -> Campaigns:
    with app.app_context():
        return services(app).campaigns
