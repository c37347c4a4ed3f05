"""The built-in vending engine, as a customer's meter lives it: buy, buy again, lose the
token, get it reprinted, receive a free issue, hit the limits."""
from __future__ import annotations

import datetime
import threading
from decimal import Decimal

import pytest

from state import journal
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit
from utility.vending import sts
from utility.vending.base import (
    AmountTooHigh,
    AmountTooLow,
    BackendUnavailable,
    MeterBlocked,
    ReferenceConflict,
    UnknownMeter,
    Vend,
)
from utility.vending.builtin import BuiltinVending, StsSettings

METER = with_check_digit("0141234567")
WATER_METER = with_check_digit("0149999999")
IN_DEBT = with_check_digit("0145555555")
SETTINGS = StsSettings(vending_key=bytes.fromhex("abababababababab"))
NOVEMBER = datetime.datetime(2026, 11, 23, 10, 30)


def account(number: str, meter: str, tariff: str = "prepaid", balance: int = 0) -> Account:
    return Account(number, meter, "Jean Mbarga", "+237699000001", "Centre", tariff, balance, None)


@pytest.fixture
def redis_client(any_redis):
    return any_redis


@pytest.fixture
def clock():
    now = [NOVEMBER]

    def tick() -> datetime.datetime:
        return now[0]

    tick.set = lambda value: now.__setitem__(0, value)  # type: ignore[attr-defined]
    return tick


@pytest.fixture
def vending(redis_client, clock) -> BuiltinVending:
    customers = RedisCustomerBase(redis_client)
    customers.upsert([
        account("CM-1", METER),
        account("CM-2", WATER_METER, tariff="water"),
        account("CM-3", IN_DEBT, balance=3_000),
    ])
    return BuiltinVending(redis_client, customers, SETTINGS, clock=clock)


def decode(token: str, base_date: datetime.date = SETTINGS.base_date, **installed) -> sts.DecodedToken:
    key = sts.decoder_key(SETTINGS.meter(METER, **installed))
    return sts.decode_token(token, key, base_date=base_date)


def test_confirm_names_the_customer_and_the_limits(vending):
    info = vending.confirm(METER)
    assert (info.name, info.can_vend, info.utility) == ("Jean Mbarga", True, "electricity")
    assert info.min_amount == 1_000 and info.max_amount > info.min_amount


def test_a_purchase_gives_one_real_token_for_the_quoted_units(vending):
    quote = vending.quote(METER, 14_000)
    vend = vending.vend(METER, 14_000, "ORD-1")
    assert vend.units == quote.units == Decimal("145.2")  # the published Woyofal figure
    assert vend.charges == quote.charges and sum(c.amount for c in vend.charges) == 14_000
    (token,) = vend.tokens
    decoded = decode(token)
    assert decoded.crc_valid and decoded.token_class == 0 and decoded.subclass == 0
    assert decoded.units == Decimal("145.2")
    assert decoded.issued == NOVEMBER


def test_the_same_reference_returns_the_same_vend_and_never_a_second_token(vending, redis_client):
    first = vending.vend(METER, 5_000, "ORD-2")
    again = vending.vend(METER, 5_000, "ORD-2")
    assert again == first
    credits = [e for e in journal.read(redis_client) if e["kind"] == "vend.credit"]
    assert len(credits) == 1


def test_a_reference_reused_for_another_vend_is_refused(vending):
    vending.vend(METER, 5_000, "ORD-3")
    with pytest.raises(ReferenceConflict):
        vending.vend(METER, 6_000, "ORD-3")


def test_ten_concurrent_vends_of_one_reference_make_one_vend(vending, redis_client):
    results: list[Vend] = []

    def buy() -> None:
        results.append(vending.vend(METER, 5_000, "ORD-RACE"))

    threads = [threading.Thread(target=buy) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({v.tokens for v in results}) == 1
    assert len([e for e in journal.read(redis_client) if e["kind"] == "vend.credit"]) == 1


def test_the_second_purchase_of_the_month_crosses_a_band_and_pays_no_fee(vending, clock):
    first = vending.vend(METER, 14_000, "ORD-4")
    second = vending.vend(METER, 14_000, "ORD-5")
    assert (first.units, second.units) == (Decimal("145.2"), Decimal("101.7"))
    assert first.charges[0].code == "fixed_fee" and "fixed_fee" not in [c.code for c in second.charges]
    clock.set(datetime.datetime(2026, 12, 1, 8, 0))  # a new month: band 1 and the fee again
    assert vending.vend(METER, 14_000, "ORD-6").units == Decimal("145.2")


def test_debt_is_recovered_from_purchases_and_the_balance_goes_down(vending):
    vend = vending.vend(IN_DEBT, 10_000, "ORD-7")
    recovered = [c.amount for c in vend.charges if c.code == "debt_recovery"]
    assert recovered and 0 < recovered[0] <= 3_000
    assert vending.customers.account_for_meter(IN_DEBT).balance_due == 3_000 - recovered[0]


def test_water_meters_get_subclass_1_tokens_in_cubic_metres(vending):
    vend = vending.vend(WATER_METER, 5_000, "ORD-8")
    assert vend.unit == "m3"
    key = sts.decoder_key(SETTINGS.meter(WATER_METER))
    assert sts.decode_token(vend.tokens[0], key, base_date=SETTINGS.base_date).subclass == 1


def test_a_meter_on_old_keys_gets_two_key_change_tokens_then_the_credit(vending):
    vending.set_installed_keys(METER, krn=2, base_date=datetime.date(1993, 1, 1))
    vend = vending.vend(METER, 5_000, "ORD-9")
    assert len(vend.tokens) == 3
    old_key = sts.decoder_key(SETTINGS.meter(METER, krn=2, base_date=datetime.date(1993, 1, 1)))
    assert [sts.decode_token(t, old_key).token_class for t in vend.tokens[:2]] == [2, 2]
    assert decode(vend.tokens[2]).crc_valid  # the credit is under the new key
    assert len(vending.vend(METER, 5_000, "ORD-10").tokens) == 1  # the meter has the new keys now


def test_reprint_gives_the_last_three_vends_newest_first(vending):
    for n in range(5):
        vending.vend(METER, 1_000 + n, f"ORD-R{n}")
    assert [v.reference for v in vending.reprint(METER)] == ["ORD-R4", "ORD-R3", "ORD-R2"]
    assert vending.reprint(IN_DEBT) == []


def test_a_free_issue_costs_nothing_and_is_idempotent(vending):
    vend = vending.free_issue(METER, Decimal("50"), "CAMPAIGN-1")
    assert (vend.free, vend.amount, vend.charges) == (True, 0, ())
    assert decode(vend.tokens[0]).units == Decimal("50")
    assert vending.free_issue(METER, Decimal("50"), "CAMPAIGN-1") == vend


def test_limits_unknown_and_blocked_meters_are_typed_errors(vending):
    with pytest.raises(AmountTooLow) as low:
        vending.quote(METER, 999)
    assert low.value.details["minimum"] == 1_000
    with pytest.raises(AmountTooHigh):
        vending.vend(METER, 10**9, "ORD-11")
    with pytest.raises(UnknownMeter):
        vending.confirm(with_check_digit("0140000001"))
    with pytest.raises(UnknownMeter, match="check digit"):
        vending.confirm(METER[:-1] + str((int(METER[-1]) + 1) % 10))
    vending.block(METER, "tamper")
    assert vending.confirm(METER).can_vend is False
    with pytest.raises(MeterBlocked):
        vending.vend(METER, 5_000, "ORD-12")
    vending.unblock(METER)
    assert vending.vend(METER, 5_000, "ORD-12").tokens


def test_redis_down_is_backend_unavailable_for_every_operation(fake_redis, clock):
    customers = RedisCustomerBase(fake_redis)
    customers.upsert([account("CM-1", METER)])
    vending = BuiltinVending(fake_redis, customers, SETTINGS, clock=clock)
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    for call in (lambda: vending.confirm(METER), lambda: vending.quote(METER, 5_000),
                 lambda: vending.vend(METER, 5_000, "ORD-13"), lambda: vending.reprint(METER),
                 lambda: vending.free_issue(METER, Decimal(5), "C-13")):
        with pytest.raises(BackendUnavailable):
            call()


def test_switched_off_vending_is_unavailable_and_keeps_its_records(vending):
    from state import switches
    from tests.seam import BUILTIN_VENDING, seam_on

    # The operator's switch is the seam's (utility.calls), as services() wraps the engine.
    vending = seam_on(vending.redis).guard(vending, BUILTIN_VENDING)
    done = vending.vend(METER, 5_000, "ORD-14")
    switches.set_down(vending.redis, "vending", True)
    with pytest.raises(BackendUnavailable) as down:
        vending.vend(METER, 5_000, "ORD-15")
    assert down.value.retryable
    assert vending.reprint(METER) == [done]  # what it keeps is still read
    switches.set_down(vending.redis, "vending", False)
    assert vending.vend(METER, 5_000, "ORD-14") == done
    assert vending.vend(METER, 5_000, "ORD-15").tokens
