"""A phone for tests: dial(), then .send("3").send("1") and read .screen, as a customer would."""
from __future__ import annotations

import datetime
import itertools
import zoneinfo
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from state.store import get_redis
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit

ONE_METER = "+237699000101"
SEVERAL = "+237699000102"
POSTPAID_ONLY = "+24107000103"
NOBODY = "+237699999999"

# Due dates relative to the utility's today (TIMEZONE's default), so the dialogues read the
# same whatever day the suite runs: SEVERAL's bill is due soon, POSTPAID_ONLY's is late.
TODAY = datetime.datetime.now(zoneinfo.ZoneInfo("Africa/Douala")).date()
DUE_SOON = TODAY + datetime.timedelta(days=13)
OVERDUE = TODAY - datetime.timedelta(days=1)


def day(date: datetime.date) -> str:
    """A date as the screens and SMS write it."""
    return date.strftime("%d/%m/%Y")

_session_ids = itertools.count(1)


class Phone:
    """A handset on the Africa's Talking gateway: accumulates `text` like the real one."""

    def __init__(self, client: FlaskClient, phone: str, code: str = "*384#", session_id: str | None = None):
        self.client = client
        self.phone = phone
        self.code = code
        self.session_id = session_id or f"ATUid_test_{next(_session_ids)}"
        self.inputs: list[str] = []
        self.status = 0
        self.body = ""

    def post(self, text: str) -> Phone:
        response = self.client.post(
            "/ussd/africastalking",
            data={
                "sessionId": self.session_id,
                "serviceCode": self.code,
                "phoneNumber": self.phone,
                "networkCode": "62401",
                "text": text,
            },
        )
        self.status = response.status_code
        self.body = response.get_data(as_text=True)
        assert self.status == 200, self.body
        assert self.body.startswith(("CON ", "END ")), self.body
        return self

    def dial(self) -> Phone:
        return self.post("")

    def send(self, value: str) -> Phone:
        self.inputs.append(value)
        return self.post("*".join(self.inputs))

    @property
    def screen(self) -> str:
        return self.body[4:]

    @property
    def ended(self) -> bool:
        return self.body.startswith("END ")


def prepaid(number: str, phone: str, name: str = "Mballa Ateba Jeanne", **kw: object) -> Account:
    fields = dict(
        account_number=number,
        meter_number=with_check_digit(number.rjust(10, "0")[-10:]),
        name=name,
        phone=phone,
        region="Littoral",
        tariff="prepaid",
        balance_due=0,
        due_date=None,
    )
    fields.update(kw)
    return Account(**fields)  # type: ignore[arg-type]


def postpaid(number: str, phone: str, balance: int, due: datetime.date | None, **kw: object) -> Account:
    fields = dict(
        account_number=number,
        meter_number="",
        name="Ondo Nguema Paul",
        phone=phone,
        region="Estuaire",
        tariff="postpaid",
        balance_due=balance,
        due_date=due,
    )
    fields.update(kw)
    return Account(**fields)  # type: ignore[arg-type]


@pytest.fixture
def customers(app) -> RedisCustomerBase:
    base = RedisCustomerBase(get_redis(app))
    base.upsert(
        [
            prepaid("1000000001", ONE_METER),
            prepaid("2000000001", SEVERAL, name="Fotso Kamga Alain"),
            prepaid("2000000002", SEVERAL, name="Fotso Kamga Alain"),
            postpaid("C-2000000003", SEVERAL, balance=48_350, due=DUE_SOON),
            postpaid("C-3000000001", POSTPAID_ONLY, balance=12_000, due=OVERDUE),
        ]
    )
    return base


@pytest.fixture
def dial(client: FlaskClient, customers: RedisCustomerBase) -> Callable[..., Phone]:
    def dial(phone: str = ONE_METER, **kwargs: object) -> Phone:
        return Phone(client, phone, **kwargs).dial()  # type: ignore[arg-type]

    return dial
