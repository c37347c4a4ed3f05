from __future__ import annotations

import datetime

import pytest

from utility.customer_csv import (
    COLUMNS,
    MAX_REPORTED_ERRORS,
    CustomerFileError,
    LineError,
    decode,
    parse_customers,
    to_csv,
)
from utility.customers import Account
from utility.meters import with_check_digit

HEADER = ",".join(COLUMNS)
METER = with_check_digit("0140000001")  # 01400000012
OTHER_METER = with_check_digit("0140000002")


def line(
    account_number: str = "CM-1000001",
    meter_number: str = METER,
    name: str = "Jean Mbarga",
    phone: str = "+237699000001",
    region: str = "Centre",
    tariff: str = "prepaid",
    balance_due: str = "0",
    due_date: str = "",
) -> str:
    return ",".join([account_number, meter_number, name, phone, region, tariff, balance_due, due_date])


BILL = line("CM-1000004", "", tariff="postpaid", balance_due="18450", due_date="2025-06-30")


def file_of(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def refusal(text: str) -> list[LineError]:
    with pytest.raises(CustomerFileError) as refused:
        parse_customers(text)
    return refused.value.errors


def test_a_good_file_gives_its_accounts() -> None:
    assert parse_customers(file_of(line(), BILL)) == [
        Account("CM-1000001", METER, "Jean Mbarga", "+237699000001", "Centre", "prepaid", 0, None),
        Account(
            "CM-1000004", "", "Jean Mbarga", "+237699000001", "Centre", "postpaid", 18_450, datetime.date(2025, 6, 30)
        ),
    ]


def test_a_header_only_file_has_no_customers() -> None:
    assert parse_customers(HEADER + "\n") == []


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (line(account_number=""), "account_number is empty"),
        (line(account_number="CM-" + "1" * 18), "account_number is longer than 20 characters"),
        (line(account_number="CM 1000001"), "account_number 'CM 1000001' may hold only letters, digits, '-' and '/'"),
        (line(account_number="CM_1000001"), "may hold only letters, digits"),
        (line(meter_number="01400000013"), "meter number check digit is wrong ('01400000013')"),
        (line(meter_number="0140000001"), "meter number must have 11 or 13 digits"),
        (line(meter_number="0140-000001"), "meter number must contain digits only"),
        (line(meter_number=METER, tariff="postpaid"), "a postpaid account has no meter: leave meter_number empty"),
        (line(meter_number="", tariff="prepaid"), "a prepaid account needs its meter_number"),
        (line(tariff="Prepaid"), "tariff 'Prepaid' must be 1 to 20 characters among a-z, 0-9, '_' and '-'"),
        (line(tariff=""), "tariff '' must be 1 to 20 characters"),
        (line(tariff="social-" + "x" * 14), "tariff 'social-xxxxxxxxxxxxxx' must be 1 to 20"),
        (line(name=""), "name is empty"),
        (line(name="N" * 61), "name is longer than 60 characters"),
        (line(phone="699000001"), "phone '699000001' must be in international form, like +237699000001"),
        (line(phone="+237 699 000 001"), "phone '+237 699 000 001' must be in international form"),
        (line(phone="+0237699000001"), "must be in international form"),
        (line(phone="+2376990000012345"), "must be in international form"),
        (line(region=""), "region is empty"),
        (line(region="R" * 41), "region is longer than 40 characters"),
        (line(balance_due="15000.50"), "balance_due '15000.50' must be a whole number of XAF, like 15000"),
        (line(balance_due="-500"), "balance_due '-500' must be a whole number"),
        (line(balance_due="1000000000"), "balance_due is over 999,999,999"),
        (line(due_date="30/06/2025"), "due_date '30/06/2025' must be a date written YYYY-MM-DD, like 2025-06-30"),
        (line(due_date="20250630"), "must be a date written YYYY-MM-DD"),
        (line(due_date="2025-02-30"), "due_date 2025-02-30 is not a date in the calendar"),
        (line() + ",", "expected 8 fields, found 9"),
        ('CM-1000009,,"Mbarga, Jean",+237699000001,Centre,postpaid,0', "expected 8 fields, found 7"),
    ],
)
def test_a_bad_line_refuses_the_file_naming_its_line(bad_line: str, reason: str) -> None:
    [error] = refusal(file_of(BILL, bad_line))
    assert error.line == 3
    assert reason in error.error


def test_every_problem_of_a_line_is_on_its_one_line() -> None:
    [error] = refusal(file_of(line(phone="0699", due_date="tomorrow")))
    assert error.line == 2
    assert "phone '0699'" in error.error and "due_date 'tomorrow'" in error.error
    assert "\n" not in error.error


def test_every_bad_line_is_reported_not_just_the_first() -> None:
    errors = refusal(file_of(line(phone="0699"), BILL, line("CM-7", name="")))
    assert [error.line for error in errors] == [2, 4]


@pytest.mark.parametrize(
    "good_line",
    [
        line(balance_due=""),  # empty means nothing due
        line(balance_due="999999999"),
        line(meter_number=with_check_digit("014000000001")),  # a 13-digit meter
        line(tariff="social"),  # other tariffs may have a meter...
        line(tariff="social", meter_number=""),  # ...or not
        line(account_number="A/2024-17"),
        line(phone="+24107000003"),
    ],
)
def test_what_the_rules_accept(good_line: str) -> None:
    assert len(parse_customers(file_of(good_line))) == 1


def test_surrounding_spaces_are_ignored() -> None:
    [account] = parse_customers(file_of(line(" CM-1 ", f" {METER}", "  Jean Mbarga ", " +237699000001", "Centre ")))
    assert (account.account_number, account.meter_number, account.name, account.phone, account.region) == (
        "CM-1",
        METER,
        "Jean Mbarga",
        "+237699000001",
        "Centre",
    )


def test_an_account_number_twice_is_refused_on_the_later_line() -> None:
    errors = refusal(file_of(line(), BILL, line("CM-1000001", OTHER_METER)))
    assert errors == [LineError(4, "account_number 'CM-1000001' is also on line 2")]


def test_a_meter_twice_is_refused_on_the_later_line() -> None:
    errors = refusal(file_of(line(), BILL, line("CM-1000002", METER)))
    assert errors == [LineError(4, f"meter_number '{METER}' is also on line 2")]


def test_the_header_must_name_the_columns() -> None:
    header = "account_number,meter,name,phone,region,tariff,balance_due,due_date,email"
    [error] = refusal(header + "\n" + line() + "\n")
    assert error.line == 1
    assert "missing column(s) meter_number" in error.error
    assert "unexpected column(s) 'meter', 'email'" in error.error


def test_a_header_in_another_order_is_read_by_name() -> None:
    header = "name,phone,account_number,meter_number,region,tariff,due_date,balance_due"
    [account] = parse_customers(f"{header}\nJean Mbarga,+237699000001,CM-1,,Centre,postpaid,2025-06-30,500\n")
    assert (account.account_number, account.name, account.balance_due) == ("CM-1", "Jean Mbarga", 500)
    assert account.due_date == datetime.date(2025, 6, 30)


def test_a_header_with_a_column_twice_is_refused() -> None:
    [error] = refusal(HEADER + ",name\n")
    assert (error.line, "repeated column(s) name" in error.error) == (1, True)


@pytest.mark.parametrize("text", ["", "\ufeff", "\n\n  \n"])
def test_an_empty_file_is_refused(text: str) -> None:
    [error] = refusal(text)
    assert error.line == 1
    assert "the file is empty" in error.error


def test_a_spreadsheet_export_with_bom_and_windows_line_ends_is_read() -> None:
    text = "\ufeff" + "\r\n".join([HEADER, line(), BILL]) + "\r\n"
    assert [account.account_number for account in parse_customers(text)] == ["CM-1000001", "CM-1000004"]


def test_blank_lines_are_skipped_and_do_not_shift_line_numbers() -> None:
    text = "\n".join([HEADER, line(), "", ",,,,,,,", line("CM-2", OTHER_METER, phone="bad")]) + "\n\n"
    [error] = refusal(text)
    assert error.line == 5


def test_a_missing_closing_quote_is_reported_where_it_starts() -> None:
    text = file_of(line(), 'CM-2,,"Mbarga, Jean,+237699000001,Centre,postpaid,0,', BILL, line("CM-3", OTHER_METER))
    [error] = refusal(text)
    assert error == LineError(3, "a quoted field runs on to line 5: is a closing quote missing?")


def test_a_long_list_of_errors_is_cut_and_counted() -> None:
    bad_lines = [line(f"CM-{i}", "", phone="0699") for i in range(MAX_REPORTED_ERRORS + 30)]
    with pytest.raises(CustomerFileError) as refused:
        parse_customers(file_of(*bad_lines))
    assert len(refused.value.errors) == MAX_REPORTED_ERRORS
    assert refused.value.errors[-1].line == MAX_REPORTED_ERRORS + 1
    assert refused.value.more == 30


def test_a_file_not_in_utf8_is_refused_on_the_line_where_it_stops_being_utf8() -> None:
    data = file_of(line(), line("CM-2", OTHER_METER, name="Hélène Fotso")).encode("latin-1")
    with pytest.raises(CustomerFileError) as refused:
        decode(data)
    assert refused.value.errors == [LineError(3, "this line is not UTF-8 text: export the file as 'CSV UTF-8'")]
    assert decode("Hélène".encode()) == "Hélène"


def test_an_export_reads_back_the_same() -> None:
    accounts = [
        Account("CM-1", METER, "Mbarga, Jean", "+237699000001", "Centre", "prepaid", 0, None),
        Account(
            "GA-5", "", 'Sylvie "Maman" Nze', "+24107000003", "Estuaire", "postpaid", 27_300, datetime.date(2025, 7, 1)
        ),
    ]
    assert parse_customers(to_csv(accounts)) == accounts
