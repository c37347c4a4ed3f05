"""Postpaid billing: paying an account's balance.

`BillingBackend` is what the order pipeline calls once a bill payment is collected;
`BuiltinBilling` posts the payment against the account's balance due in the customer
base. A utility's billing system gets an adapter with the same method.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

import redis

from state import journal, keys
from utility.calls import CallPolicy
from utility.customers import RedisCustomerBase
from utility.errors import OutsideError, Unavailable

if TYPE_CHECKING:
    from state.store import TextRedis


@dataclass(frozen=True)
class BillPayment:
    reference: str
    receipt_no: str
    account_number: str
    amount: int
    balance_after: int
    posted_at: str  # ISO


@dataclass(frozen=True)
class BillRules:
    """What a bill payment may be, by the utility's rule (GUICHET_BILL_OVERPAYMENT).

    "credit": paying more than is due is taken, the rest stays on the account as a credit
    (the balance goes below zero); "refuse": at most what is due, and nothing when nothing is."""

    minimum: int = 100  # XAF; less when less is due (a small balance can be cleared)
    maximum: int = 10_000_000  # XAF: what one Mobile Money payment may carry
    overpayment: str = "credit"

    def __post_init__(self) -> None:
        if self.overpayment not in ("credit", "refuse"):
            raise ValueError(f"BILL_OVERPAYMENT must be 'credit' or 'refuse', not {self.overpayment!r}")

    def bounds(self, balance: int) -> tuple[int, int] | None:
        """The (minimum, maximum) payment on an account with ``balance`` due, or None when
        no payment is taken at all."""
        if balance <= 0:
            return None if self.overpayment == "refuse" else (self.minimum, self.maximum)
        top = balance if self.overpayment == "refuse" else self.maximum
        return min(self.minimum, balance), min(top, self.maximum)


class BillingError(OutsideError):
    system = "billing"
    code = "billing_error"
    retryable = False


class UnknownAccount(BillingError):
    code = "unknown_account"


class BillingUnavailable(BillingError, Unavailable):
    code = "backend_unavailable"
    retryable = True


class BillingBackend(Protocol):
    def pay(self, account_number: str, amount: int, reference: str) -> BillPayment:
        """Post ``amount`` XAF against the account. Idempotent by ``reference``."""
        ...


def call_policy() -> CallPolicy:
    """How the seam (utility.calls) calls billing: the built-in billing is the one there is,
    so an operator's switch (POST /admin/backends/billing) plays its outage."""
    return CallPolicy("billing", ("pay",), BillingUnavailable, switch="billing", switched=frozenset({"pay"}))


# Post once per reference, atomically: a duplicate (or a retry after a crash) finds the
# record and changes nothing; the balance and the record never disagree.
_POST = """
local done = redis.call('get', KEYS[1])
if done then return {0, done} end
if redis.call('exists', KEYS[2]) == 0 then return {-1, ''} end
local balance = redis.call('hincrby', KEYS[2], 'balance_due', -tonumber(ARGV[1]))
local record = string.gsub(ARGV[2], '"balance_after": 0', '"balance_after": ' .. balance)
redis.call('set', KEYS[1], record)
return {1, record}
"""


class BuiltinBilling:
    def __init__(self, client: TextRedis, customers: RedisCustomerBase) -> None:
        self.redis = client
        self.customers = customers
        self._post = client.register_script(_POST)

    def pay(self, account_number: str, amount: int, reference: str) -> BillPayment:
        try:
            return self._pay(account_number, amount, reference)
        except redis.RedisError as exc:
            raise BillingUnavailable(f"billing storage unavailable: {exc}") from exc

    def _pay(self, account_number: str, amount: int, reference: str) -> BillPayment:
        record_key = keys.bill_payment(account_number, reference)
        done = self.redis.get(record_key)
        if done:
            return BillPayment(**json.loads(done))
        now = datetime.datetime.now(datetime.UTC)
        draft = BillPayment(
            reference=reference,
            receipt_no=f"B{now:%y%m%d}{self.redis.incr(keys.receipt_sequence()):07d}",
            account_number=account_number,
            amount=amount,
            balance_after=0,  # filled in by the script with the balance it leaves
            posted_at=now.isoformat(timespec="seconds"),
        )
        posted, raw = self._post(keys=[record_key, keys.account(account_number)], args=[amount, json.dumps(asdict(draft))])
        if posted == -1:
            raise UnknownAccount(account_number)
        payment = BillPayment(**json.loads(raw))
        if posted == 1:
            journal.append(self.redis, "bill.paid", reference=reference, account=account_number, amount=amount,
                           balance_after=payment.balance_after)
        return payment
