"""Tariffs as data (tariffs.toml), and the arithmetic behind every quote and receipt.

A purchase of ``amount`` XAF is split in this order: the fixed monthly fee (first purchase
of the month), debt recovery (a share of the amount while the customer has arrears), then
the rest buys units walking the cumulative monthly bands from the units already bought
this month. Each unit costs price x (1 + municipal tax rate + VAT rate if its band carries
VAT). The receipt's charges are whole XAF and add up exactly to ``amount``; energy comes
last and absorbs the rounding.
"""
from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from utility.vending.base import Charge

DEFAULT_FILE = Path(__file__).with_name("tariffs.toml")
UNITS = ("kWh", "m3")
ROUNDINGS = ("nearest", "down")
STEP = Decimal("0.1")  # the STS credit resolution: 0.1 kWh or 0.1 m3

Rounding = Literal["nearest", "down"]


class TariffError(ValueError):
    """The tariff file is unusable; the message names the tariff and the problem."""


@dataclass(frozen=True)
class Band:
    upto: Decimal | None  # the month's cumulative units where the band ends; None: no end
    price: Decimal  # XAF per unit, before taxes
    vat: bool  # VAT applies to the units in this band


@dataclass(frozen=True)
class Tariff:
    code: str
    name: str
    unit: str  # "kWh" or "m3"
    bands: tuple[Band, ...]
    vat_rate: Decimal
    municipal_tax_rate: Decimal  # on the energy value
    fixed_monthly_fee: int  # XAF
    debt_recovery_rate: Decimal  # share of each purchase taken toward arrears
    min_purchase: int  # XAF
    max_purchase: int  # XAF
    rounding: Rounding

    def unit_cost(self, band: Band) -> Decimal:
        """What one unit in ``band`` costs the customer, taxes included."""
        return band.price * (1 + self.municipal_tax_rate + (self.vat_rate if band.vat else 0))


@dataclass(frozen=True)
class Pricing:
    amount: int  # XAF paid
    units: Decimal  # credited, a multiple of 0.1
    unit: str
    charges: tuple[Charge, ...]  # energy last; they add up to ``amount``

    def charge(self, code: str) -> int:
        return sum(c.amount for c in self.charges if c.code == code)


# -- loading -------------------------------------------------------------------------------
_KEYS = {
    "name", "unit", "bands", "vat_rate", "municipal_tax_rate", "fixed_monthly_fee",
    "debt_recovery_rate", "min_purchase", "max_purchase", "rounding",
}
_BAND_KEYS = {"upto", "price", "vat"}


def load_tariffs(path: Path | str | None = None) -> dict[str, Tariff]:
    """The tariffs in ``path`` by code (default: the shipped file, read once)."""
    if path is None:
        return dict(_default_tariffs())  # a copy: callers may not change the shared one
    return _load(Path(path))


@functools.cache
def _default_tariffs() -> Mapping[str, Tariff]:
    return _load(DEFAULT_FILE)


def _load(path: Path) -> dict[str, Tariff]:
    with path.open("rb") as f:
        try:
            # Decimal, not float: 91.17 must stay 91.17 or the receipts drift by a franc.
            data = tomllib.load(f, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise TariffError(f"{path}: not valid TOML: {exc}") from exc
    if not data:
        raise TariffError(f"{path}: no tariffs")
    tariffs = {}
    for code, entry in data.items():
        try:
            tariffs[code] = _tariff(code, entry)
        except TariffError as exc:
            raise TariffError(f"{path}: tariff {code!r}: {exc}") from None
    return tariffs


def _tariff(code: str, entry: Any) -> Tariff:
    if not isinstance(entry, dict):
        raise TariffError("must be a table of settings")
    if missing := _KEYS - entry.keys():
        raise TariffError(f"missing {', '.join(sorted(missing))}")
    if unknown := entry.keys() - _KEYS:
        raise TariffError(f"unknown setting {', '.join(sorted(unknown))}")
    if entry["unit"] not in UNITS:
        raise TariffError(f"unit {entry['unit']!r} is not one of {', '.join(UNITS)}")
    if entry["rounding"] not in ROUNDINGS:
        raise TariffError(f"rounding {entry['rounding']!r} is not one of {', '.join(ROUNDINGS)}")
    if not isinstance(entry["name"], str) or not entry["name"].strip():
        raise TariffError("name must be a non-empty string")
    tariff = Tariff(
        code=code,
        name=entry["name"],
        unit=entry["unit"],
        bands=_bands(entry["bands"]),
        vat_rate=_rate("vat_rate", entry["vat_rate"]),
        municipal_tax_rate=_rate("municipal_tax_rate", entry["municipal_tax_rate"]),
        fixed_monthly_fee=_xaf("fixed_monthly_fee", entry["fixed_monthly_fee"]),
        debt_recovery_rate=_rate("debt_recovery_rate", entry["debt_recovery_rate"]),
        min_purchase=_xaf("min_purchase", entry["min_purchase"]),
        max_purchase=_xaf("max_purchase", entry["max_purchase"]),
        rounding=entry["rounding"],
    )
    if tariff.min_purchase < 1:
        raise TariffError("min_purchase must be at least 1 XAF")
    if tariff.min_purchase > tariff.max_purchase:
        raise TariffError(f"min_purchase {tariff.min_purchase} is above max_purchase {tariff.max_purchase}")
    return tariff


def _bands(raw: Any) -> tuple[Band, ...]:
    if not isinstance(raw, list) or not raw:
        raise TariffError("bands must be a non-empty list")
    bands = []
    previous = Decimal(0)
    for n, item in enumerate(raw, start=1):
        last = n == len(raw)
        if not isinstance(item, dict):
            raise TariffError(f"band {n} must be a table")
        if missing := {"price", "vat"} - item.keys():
            raise TariffError(f"band {n}: missing {', '.join(sorted(missing))}")
        if unknown := item.keys() - _BAND_KEYS:
            raise TariffError(f"band {n}: unknown setting {', '.join(sorted(unknown))}")
        if not isinstance(item["vat"], bool):
            raise TariffError(f"band {n}: vat must be true or false")
        price = _number(f"band {n} price", item["price"])
        if price <= 0:
            raise TariffError(f"band {n}: price must be above 0")
        upto = None
        if "upto" in item:
            if last:
                raise TariffError(f"band {n}: the last band must be open (no upto)")
            upto = _number(f"band {n} upto", item["upto"])
            if upto <= previous:
                raise TariffError(f"band {n}: upto {upto} must be above {previous} (bands ascend)")
            previous = upto
        elif not last:
            raise TariffError(f"band {n}: only the last band may be open; give it an upto")
        bands.append(Band(upto=upto, price=price, vat=item["vat"]))
    return tuple(bands)


def _number(what: str, value: Any) -> Decimal:
    # bool is an int in Python; `vat_rate = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise TariffError(f"{what} must be a number, not {value!r}")
    return Decimal(value)


def _rate(what: str, value: Any) -> Decimal:
    rate = _number(what, value)
    if not 0 <= rate < 1:
        raise TariffError(f"{what} {rate} must be a fraction in [0, 1) (0.18 for 18 %)")
    return rate


def _xaf(what: str, value: Any) -> int:
    amount = _number(what, value)
    if amount != amount.to_integral_value() or amount < 0:
        raise TariffError(f"{what} {amount} must be a whole, non-negative number of XAF")
    return int(amount)


# -- pricing -------------------------------------------------------------------------------
def price_purchase(
    tariff: Tariff, amount: int, month_units: Decimal, first_of_month: bool, arrears: int = 0
) -> Pricing:
    """What ``amount`` XAF buys after ``month_units`` already bought this calendar month.

    Checking ``amount`` against the tariff's min and max is the caller's job; any amount
    from 0 is priced (the fee and debt recovery never take more than the amount).
    """
    if amount < 0 or month_units < 0:
        raise ValueError(f"amount {amount} and month_units {month_units} must not be negative")
    fee = min(tariff.fixed_monthly_fee, amount) if first_of_month else 0
    debt = 0
    if arrears > 0:
        # Rounded down: recovery never takes a franc more than the rate says.
        share = int((tariff.debt_recovery_rate * amount).to_integral_value(ROUND_DOWN))
        debt = min(share, arrears, amount - fee)
    rest = amount - fee - debt
    units = _round(tariff, _units_for(tariff, Decimal(rest), month_units))
    while True:
        tax, vat = _taxes(tariff, units, month_units)
        energy = rest - tax - vat
        # Rounding to the nearest 0.1 may credit slightly more than `rest` buys; with
        # extreme rates the taxes on it could exceed `rest`. Never show a negative energy:
        # give one step less instead. Unreachable with the shipped tariffs.
        if energy >= 0 or units <= 0:
            break
        units -= STEP
    charges = [
        Charge(code, value)
        for code, value in (("fixed_fee", fee), ("debt_recovery", debt), ("municipal_tax", tax), ("vat", vat))
        if value
    ]
    charges.append(Charge("energy", energy))
    return Pricing(amount=amount, units=units, unit=tariff.unit, charges=tuple(charges))


def price_units(tariff: Tariff, units: Decimal, month_units: Decimal) -> int:
    """What ``units`` cost, taxes included, after ``month_units`` this month; whole XAF
    rounded up (free issues' receipts, a price per unit on screen). No fee, no debt."""
    if units < 0 or month_units < 0:
        raise ValueError(f"units {units} and month_units {month_units} must not be negative")
    cost = sum((taken * tariff.unit_cost(band) for band, taken in _split(tariff, units, month_units)), Decimal(0))
    return int(cost.to_integral_value(ROUND_CEILING))


def _open_bands(tariff: Tariff, month_units: Decimal) -> Iterator[tuple[Band, Decimal | None]]:
    """The bands still reachable this month, each with the units left in it (None: no end)."""
    lower = Decimal(0)
    for band in tariff.bands:
        if band.upto is None:
            yield band, None
            return
        if band.upto > month_units:
            yield band, band.upto - max(lower, month_units)
        lower = band.upto


def _units_for(tariff: Tariff, money: Decimal, month_units: Decimal) -> Decimal:
    """The exact (unrounded) units ``money`` buys, taxes included."""
    units = Decimal(0)
    for band, room in _open_bands(tariff, month_units):
        cost = tariff.unit_cost(band)
        if room is None or money < room * cost:
            return units + money / cost
        units += room
        money -= room * cost
    raise AssertionError("the last band is open")  # _load guarantees it


def _split(tariff: Tariff, units: Decimal, month_units: Decimal) -> list[tuple[Band, Decimal]]:
    """``units`` bought after ``month_units``, split by the band each falls in."""
    parts = []
    for band, room in _open_bands(tariff, month_units):
        if units <= 0:
            break
        taken = units if room is None else min(room, units)
        parts.append((band, taken))
        units -= taken
    return parts


def _taxes(tariff: Tariff, units: Decimal, month_units: Decimal) -> tuple[int, int]:
    """Municipal tax on the energy value of ``units``, and VAT on its VAT-liable part."""
    value = liable = Decimal(0)
    for band, taken in _split(tariff, units, month_units):
        value += taken * band.price
        if band.vat:
            liable += taken * band.price
    return _whole(tariff.municipal_tax_rate * value), _whole(tariff.vat_rate * liable)


def _whole(xaf: Decimal) -> int:
    return int(xaf.to_integral_value(ROUND_HALF_UP))


def _round(tariff: Tariff, units: Decimal) -> Decimal:
    return units.quantize(STEP, ROUND_HALF_UP if tariff.rounding == "nearest" else ROUND_DOWN)
