from __future__ import annotations

import datetime
import re

import fakeredis
import gsm0338  # noqa: F401  (registers the gsm03.38 codec)
import pytest

from utility.customer_csv import parse_customers, to_csv
from utility.customers import Account, RedisCustomerBase
from utility.demo import (
    DEMO_PHONES,
    MIN_CUSTOMERS,
    PHONE_GABON_POSTPAID,
    PHONE_ONE_METER,
    PHONE_SEVERAL_ACCOUNTS,
    REGIONS,
    demo_accounts,
    seed_demo,
)
from utility.meters import meter_problem

TODAY = datetime.date(2025, 3, 14)


@pytest.fixture(scope="module")
def accounts() -> list[Account]:
    return demo_accounts(2_000, today=TODAY)


def test_the_same_seed_gives_the_same_customers(accounts: list[Account]) -> None:
    assert demo_accounts(2_000, today=TODAY) == accounts
    assert demo_accounts(2_000, seed=7, today=TODAY) != accounts
    assert demo_accounts(2_000, seed=7, today=TODAY) == demo_accounts(2_000, seed=7, today=TODAY)


def test_a_smaller_base_is_the_start_of_a_larger_one(accounts: list[Account]) -> None:
    assert demo_accounts(100, today=TODAY) == accounts[:100]


def test_the_demo_base_passes_the_import_rules(accounts: list[Account]) -> None:
    assert parse_customers(to_csv(accounts)) == accounts


def test_every_demo_meter_is_a_valid_11_digit_drn(accounts: list[Account]) -> None:
    meters = [account.meter_number for account in accounts if account.prepaid]
    assert meters and all(len(meter) == 11 and meter_problem(meter) is None for meter in meters)


def test_phones_and_regions_match_the_country(accounts: list[Account]) -> None:
    for account in accounts:
        if account.account_number.startswith("CM-"):
            assert re.fullmatch(r"\+2376[0-9]{8}", account.phone), account
            assert account.region in REGIONS["CM"], account
        else:
            assert re.fullmatch(r"\+2410[67][0-9]{6}", account.phone), account
            assert account.region in REGIONS["GA"], account


def test_the_base_mixes_tariffs_bills_and_shared_phones(accounts: list[Account]) -> None:
    assert {account.tariff for account in accounts} == {"prepaid", "social", "postpaid"}
    bills = [account for account in accounts if account.balance_due]
    assert bills and all(not account.prepaid and account.due_date for account in bills)
    assert {account.account_number[:2] for account in accounts} == {"CM", "GA"}
    assert len({account.phone for account in accounts}) < len(accounts)


def test_every_text_fits_a_gsm7_screen(accounts: list[Account]) -> None:
    for account in accounts:
        for text in (account.name, account.region):
            text.encode("gsm03.38")  # raises on a character outside GSM-7


def test_no_random_customer_uses_a_demo_phone(accounts: list[Account]) -> None:
    assert all(account.phone not in DEMO_PHONES for account in accounts[MIN_CUSTOMERS:])


def test_bills_fall_due_around_today(accounts: list[Account]) -> None:
    due_dates = [account.due_date for account in accounts if account.due_date]
    assert min(due_dates) >= TODAY - datetime.timedelta(days=20)
    assert max(due_dates) <= TODAY + datetime.timedelta(days=30)


def test_the_demo_needs_the_fixed_customers() -> None:
    assert len(demo_accounts(MIN_CUSTOMERS, today=TODAY)) == MIN_CUSTOMERS
    with pytest.raises(ValueError):
        demo_accounts(MIN_CUSTOMERS - 1)


def test_the_demo_phones_show_what_the_readme_says() -> None:
    base = RedisCustomerBase(fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True))
    assert seed_demo(base, 50).imported == 50
    assert set(DEMO_PHONES) == {PHONE_ONE_METER, PHONE_SEVERAL_ACCOUNTS, PHONE_GABON_POSTPAID}

    [one] = base.accounts_for_phone(PHONE_ONE_METER)
    assert one.prepaid

    several = base.accounts_for_phone(PHONE_SEVERAL_ACCOUNTS)
    assert sum(account.prepaid for account in several) >= 2
    assert any(not account.prepaid and account.balance_due > 0 and account.due_date for account in several)

    [gabon] = base.accounts_for_phone(PHONE_GABON_POSTPAID)
    assert (gabon.prepaid, gabon.balance_due > 0, gabon.region in REGIONS["GA"]) == (False, True, True)

    assert seed_demo(base, 50).updated == 50  # seeding again rewrites the same customers
