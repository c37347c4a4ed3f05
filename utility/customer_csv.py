"""The customer file: the CSV a utility exports from its billing system for Guichet.

The first line is the header, naming exactly these columns (in any order)::

    account_number,meter_number,name,phone,region,tariff,balance_due,due_date

The whole file is checked before anything is imported, and one bad line refuses the
file: every bad line is reported by its line number in the file (the header is line 1)
with the reasons it is wrong. The rules, for each line:

- It has as many fields as the header, and fits on one line (a quoted field running
  onto the next lines is almost always a missing closing quote).
- account_number: 1 to 20 characters, letters, digits, ``-`` and ``/`` only.
- meter_number: empty, or a valid meter number (11 or 13 digits, last one a Luhn
  check digit: utility.meters).
- tariff: 1 to 20 characters among ``a-z 0-9 _ -``. A ``postpaid`` account has no
  meter; a ``prepaid`` account has one. Other tariffs (``social``...) may have either.
- name: 1 to 60 characters. region: 1 to 40 characters.
- phone: international (E.164) form: ``+``, the country code, the number, no spaces.
- balance_due: a whole number of XAF from 0 to 999,999,999; empty means 0.
- due_date: empty, or a date written ``YYYY-MM-DD``.
- An account_number or meter_number may appear only once in the file.

Surrounding spaces are ignored, a UTF-8 byte order mark and Windows line ends are
accepted, and blank lines (or lines of empty fields, which spreadsheets leave at the
end of an export) are skipped. The file must be UTF-8 text.
"""
from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from utility.customers import Account
from utility.meters import meter_problem
from utility.phones import is_e164

COLUMNS = ("account_number", "meter_number", "name", "phone", "region", "tariff", "balance_due", "due_date")
MAX_REPORTED_ERRORS = 100  # an operator fixes the first ones and tries again

_ACCOUNT_NUMBER = re.compile(r"[A-Za-z0-9/-]{1,20}")
_TARIFF = re.compile(r"[a-z0-9_-]{1,20}")
_BALANCE = re.compile(r"[0-9]{1,9}")  # nine digits: at most 999,999,999
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class LineError:
    line: int
    error: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.error}"


class FileRefused(ValueError):
    """A file an operator uploaded, refused whole: ``errors`` (the first MAX_REPORTED_ERRORS,
    each with its line) and ``more`` beyond them. The CLI (utility.cli.echo_refused) and the
    admin API (utility.admin.refused_file) report every such file the same way."""

    what = "the file"

    def __init__(self, errors: list[LineError], more: int = 0) -> None:
        self.errors = errors
        self.more = more
        super().__init__(f"{len(errors) + more} bad line(s) in {self.what}; first: {errors[0]}")


class CustomerFileError(FileRefused):
    """The customer file was refused."""

    what = "the customer file"


def decode(data: bytes) -> str:
    """The text of an uploaded customer file, refused with its line number if not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CustomerFileError(
            [LineError(line, "this line is not UTF-8 text: export the file as 'CSV UTF-8'")]
        ) from exc


def parse_customers(text: str) -> list[Account]:
    """The accounts in a customer file, or CustomerFileError naming every bad line."""
    report = _Report()
    records = _records(text, report)
    first = next(records, None)
    if first is None or report.errors:  # nothing, or a header the CSV reader choked on
        empty = f"the file is empty: line 1 must be the header {','.join(COLUMNS)}"
        raise CustomerFileError(report.errors or [LineError(1, empty)])
    header_line, header = first
    header = [name.strip() for name in header]
    problem = _header_problem(header)
    if problem:
        raise CustomerFileError([LineError(header_line, problem)])
    # Where each of COLUMNS is in this file's lines; None when in the usual order.
    order = None if header == list(COLUMNS) else [header.index(column) for column in COLUMNS]

    accounts: list[Account] = []
    accounts_seen: dict[str, int] = {}
    meters_seen: dict[str, int] = {}
    for line, fields in records:
        if len(fields) != len(COLUMNS):
            found = f"expected {len(COLUMNS)} fields, found {len(fields)}"
            report.add(line, f"{found} (is a name with a comma not in quotes?)")
            continue
        values = [field.strip() for field in fields] if order is None else [fields[i].strip() for i in order]
        account, problems = _account(values)
        number, meter = values[0], values[1]
        if number in accounts_seen:
            problems.append(f"account_number {_shown(number)} is also on line {accounts_seen[number]}")
        elif number:
            accounts_seen[number] = line
        if meter in meters_seen:
            problems.append(f"meter_number {_shown(meter)} is also on line {meters_seen[meter]}")
        elif meter:
            meters_seen[meter] = line
        if problems:
            report.add(line, "; ".join(problems))
        elif account is not None:
            accounts.append(account)
    report.raise_if_any()
    return accounts


def to_csv(accounts: Iterable[Account]) -> str:
    """A customer file of ``accounts``, as parse_customers reads it (for exports and tests)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for a in accounts:
        due_date = a.due_date.isoformat() if a.due_date else ""
        writer.writerow(
            (a.account_number, a.meter_number, a.name, a.phone, a.region, a.tariff, a.balance_due, due_date)
        )
    return out.getvalue()


class _Report:
    def __init__(self) -> None:
        self.errors: list[LineError] = []
        self.more = 0

    def add(self, line: int, error: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, error))
        else:
            self.more += 1

    def raise_if_any(self) -> None:
        if self.errors:
            raise CustomerFileError(self.errors, self.more)


def _records(text: str, report: _Report) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each record, skipping blank ones and reporting broken ones."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    end = 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not "".join(fields).strip():
                continue
            if end != start:
                report.add(start, f"a quoted field runs on to line {end}: is a closing quote missing?")
                continue
            yield start, fields
    except csv.Error as exc:
        report.add(end + 1, f"the CSV cannot be read from this line on ({exc})")


def _header_problem(header: list[str]) -> str | None:
    missing = [column for column in COLUMNS if column not in header]
    unexpected = [name for name in header if name not in COLUMNS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected column(s) {', '.join(repr(name) for name in unexpected)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if not problems:
        return None
    return f"bad header: {'; '.join(problems)} (expected {','.join(COLUMNS)})"


def _account(values: list[str]) -> tuple[Account | None, list[str]]:
    number, meter, name, phone, region, tariff, balance, due = values
    problems = []
    if not _ACCOUNT_NUMBER.fullmatch(number):
        if not number:
            problems.append("account_number is empty")
        elif len(number) > 20:
            problems.append("account_number is longer than 20 characters")
        else:
            problems.append(f"account_number {_shown(number)} may hold only letters, digits, '-' and '/'")
    if meter:
        meter_error = meter_problem(meter)
        if meter_error:
            problems.append(f"{meter_error} ({_shown(meter)})")
    if not _TARIFF.fullmatch(tariff):
        problems.append(
            f"tariff {_shown(tariff)} must be 1 to 20 characters among a-z, 0-9, '_' and '-' (like prepaid or postpaid)"
        )
    elif tariff == "postpaid" and meter:
        problems.append("a postpaid account has no meter: leave meter_number empty")
    elif tariff == "prepaid" and not meter:
        problems.append("a prepaid account needs its meter_number")
    if not name:
        problems.append("name is empty")
    elif len(name) > 60:
        problems.append("name is longer than 60 characters")
    if not is_e164(phone):
        problems.append(f"phone {_shown(phone)} must be in international form, like +237699000001")
    if not region:
        problems.append("region is empty")
    elif len(region) > 40:
        problems.append("region is longer than 40 characters")
    if not balance:
        balance_due = 0
    elif _BALANCE.fullmatch(balance):
        balance_due = int(balance)
    else:
        balance_due = 0
        if balance.isascii() and balance.isdigit():
            problems.append("balance_due is over 999,999,999")
        else:
            problems.append(f"balance_due {_shown(balance)} must be a whole number of XAF, like 15000")
    due_date = None
    if due:
        if not _DATE.fullmatch(due):
            problems.append(f"due_date {_shown(due)} must be a date written YYYY-MM-DD, like 2025-06-30")
        else:
            try:
                due_date = datetime.date.fromisoformat(due)
            except ValueError:
                problems.append(f"due_date {due} is not a date in the calendar")
    if problems:
        return None, problems
    return Account(number, meter, name, phone, region, tariff, balance_due, due_date), problems


def _shown(value: str) -> str:
    """A field's value quoted for an error line, cut short so the line stays one line."""
    return repr(value if len(value) <= 30 else value[:27] + "...")
