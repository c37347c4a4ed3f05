"""The vending interface: what every vending backend offers Guichet.

A backend is the built-in engine (utility.vending.builtin: real STS tokens, tariffs,
records in Redis) or an adapter for the utility's vending server
(utility.vending.xmlvend: XMLVend 2.1). The USSD and SMS flows, the order pipeline
and the campaigns only ever see this module.

Money is whole XAF (int); units are Decimal with one decimal place (0.1 kWh or 0.1 m3,
the STS resolution).
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from utility.errors import OutsideError, Unavailable


# -- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeterInfo:
    """What `confirm` says about a meter before any money is asked for."""

    meter: str
    name: str  # the customer's name as the vending system knows it
    can_vend: bool
    min_amount: int  # XAF
    max_amount: int  # XAF
    utility: str = "electricity"  # or "water"
    tariff: str = ""
    reason: str = ""  # why not, when can_vend is False (an error code, see VendingError)


@dataclass(frozen=True)
class Charge:
    """One deduction from the amount paid, in the order it was applied."""

    code: str  # fixed_fee | debt_recovery | municipal_tax | vat | service_charge | energy
    amount: int  # XAF


@dataclass(frozen=True)
class Quote:
    """A trial vend: what ``amount`` buys now, and where the money goes. No token."""

    meter: str
    amount: int  # XAF paid
    units: Decimal  # what the meter will be credited
    unit: str  # "kWh" or "m3"
    charges: tuple[Charge, ...]  # every deduction, energy last; they add up to ``amount``
    tariff: str

    def charge(self, code: str) -> int:
        return sum(c.amount for c in self.charges if c.code == code)


@dataclass(frozen=True)
class Vend:
    """A completed vend: the receipt. Tokens are in the order the customer types them
    (key-change tokens first, the credit token last)."""

    reference: str  # the caller's idempotency key
    receipt_no: str
    meter: str
    name: str
    amount: int
    units: Decimal
    unit: str
    charges: tuple[Charge, ...]
    tokens: tuple[str, ...]
    tariff: str
    issued_at: datetime.datetime
    free: bool = False  # a free issue (campaign), not a purchase
    extra: dict[str, str] = field(default_factory=dict)  # backend-specific receipt lines

    def to_json(self) -> str:
        record = dict(vars(self))
        record.update(
            units=str(self.units),
            charges=[[c.code, c.amount] for c in self.charges],
            tokens=list(self.tokens),
            issued_at=self.issued_at.isoformat(),
        )
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Vend:
        record = json.loads(raw)
        record.update(
            units=Decimal(record["units"]),
            charges=tuple(Charge(code, amount) for code, amount in record["charges"]),
            tokens=tuple(record["tokens"]),
            issued_at=datetime.datetime.fromisoformat(record["issued_at"]),
        )
        return cls(**record)


# -- errors ------------------------------------------------------------------------------
class VendingError(OutsideError):
    """A vend that cannot be made. ``code`` picks the customer's message."""

    system = "vending"
    code = "vending_error"
    retryable = False

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.code)
        self.details = details


class UnknownMeter(VendingError):
    code = "unknown_meter"


class MeterBlocked(VendingError):
    code = "meter_blocked"


class AmountTooLow(VendingError):
    code = "amount_too_low"  # details: minimum


class AmountTooHigh(VendingError):
    code = "amount_too_high"  # details: maximum


class ReferenceConflict(VendingError):
    """The reference was already used for another meter or amount."""

    code = "reference_conflict"


class BackendUnavailable(VendingError, Unavailable):
    """The vending system cannot answer now; the same call may succeed later."""

    code = "backend_unavailable"
    retryable = True


# -- the interface ----------------------------------------------------------------------------
class VendingBackend(Protocol):
    def confirm(self, meter: str) -> MeterInfo:
        """Who the meter belongs to and what may be bought; raises UnknownMeter."""
        ...

    def quote(self, meter: str, amount: int) -> Quote:
        """What ``amount`` would buy now (a trial vend): units and every charge."""
        ...

    def vend(self, meter: str, amount: int, reference: str) -> Vend:
        """Sell ``amount`` of credit. Idempotent by ``reference``: asking again returns
        the same Vend, never a second token. Recorded before it is returned."""
        ...

    def reprint(self, meter: str) -> list[Vend]:
        """The meter's last 3 vends, newest first (lost tokens are reprinted, not resold)."""
        ...

    def free_issue(self, meter: str, units: Decimal, reference: str) -> Vend:
        """Credit ``units`` with no payment (campaigns). Idempotent by ``reference``."""
        ...
