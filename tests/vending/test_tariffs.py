"""Tariffs: the shipped file, its validation, and the arithmetic of every quote and receipt."""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utility.vending.tariffs import (
    Band,
    Pricing,
    Tariff,
    TariffError,
    load_tariffs,
    price_purchase,
    price_units,
)

TARIFFS = load_tariffs()
PREPAID = TARIFFS["prepaid"]
ZERO = Decimal(0)
CODES = ("fixed_fee", "debt_recovery", "municipal_tax", "vat", "energy")


def codes(pricing: Pricing) -> list[str]:
    return [c.code for c in pricing.charges]


# -- the shipped file -------------------------------------------------------------------------
def test_the_shipped_file_has_the_vending_tariffs_and_no_postpaid() -> None:
    assert set(TARIFFS) == {"prepaid", "social", "water"}
    assert (TARIFFS["prepaid"].unit, TARIFFS["social"].unit, TARIFFS["water"].unit) == ("kWh", "kWh", "m3")
    assert all(t.code == code for code, t in TARIFFS.items())


def test_the_shipped_prepaid_tariff_is_woyofal_domestic() -> None:
    assert [(b.upto, b.price, b.vat) for b in PREPAID.bands] == [
        (Decimal(150), Decimal("91.17"), False),
        (Decimal(250), Decimal("136.49"), False),
        (None, Decimal("149.06"), True),
    ]
    assert (PREPAID.vat_rate, PREPAID.municipal_tax_rate) == (Decimal("0.18"), Decimal("0.025"))
    assert (PREPAID.fixed_monthly_fee, PREPAID.min_purchase, PREPAID.rounding) == (429, 1000, "nearest")


def test_the_social_tariff_is_a_lifeline() -> None:
    social = TARIFFS["social"]
    assert social.bands[0].price < PREPAID.bands[0].price
    assert social.fixed_monthly_fee < PREPAID.fixed_monthly_fee
    assert social.max_purchase < PREPAID.max_purchase


def test_the_default_tariffs_are_read_once_and_cannot_be_changed_through_the_result() -> None:
    first = load_tariffs()
    first.pop("prepaid")
    assert "prepaid" in load_tariffs()
    assert load_tariffs()["water"] is load_tariffs()["water"]


def test_a_path_may_be_given_as_a_string(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(VALID)
    assert list(load_tariffs(str(path))) == ["demo"]


# -- the Senelec Woyofal example ---------------------------------------------------------------
def test_two_purchases_of_14000_give_145_2_then_101_7_kwh() -> None:
    first = price_purchase(PREPAID, 14000, ZERO, first_of_month=True)
    assert first.units == Decimal("145.2")
    assert first.unit == "kWh"
    # (14000 - 429) / (91.17 x 1.025) = 145.22; tax 2.5 % of 145.2 x 91.17 = 330.95.
    assert [(c.code, c.amount) for c in first.charges] == [
        ("fixed_fee", 429), ("municipal_tax", 331), ("energy", 13240)
    ]
    second = price_purchase(PREPAID, 14000, first.units, first_of_month=False)
    # 4.8 kWh left in band 1, then (14000 - 448.56) / (136.49 x 1.025) = 96.86 in band 2.
    assert second.units == Decimal("101.7")
    assert [(c.code, c.amount) for c in second.charges] == [("municipal_tax", 342), ("energy", 13658)]


def test_the_same_amount_buys_the_same_within_a_band_and_fewer_units_past_it() -> None:
    early = price_purchase(PREPAID, 5000, Decimal(10), first_of_month=False)
    later = price_purchase(PREPAID, 5000, Decimal(50), first_of_month=False)
    assert early.units == later.units == Decimal("53.5")  # 5000 / 93.45
    crossing = price_purchase(PREPAID, 5000, Decimal(130), first_of_month=False)
    beyond = price_purchase(PREPAID, 5000, Decimal(150), first_of_month=False)
    assert beyond.units == Decimal("35.7")  # 5000 / 139.90
    assert early.units > crossing.units > beyond.units


def test_a_third_purchase_reaches_the_vat_band_and_only_its_units_carry_vat() -> None:
    third = price_purchase(PREPAID, 14000, Decimal("246.9"), first_of_month=False)
    # 3.1 kWh left in band 2 (433.70), then 13566.30 / (149.06 x 1.205) = 75.53 in band 3.
    assert third.units == Decimal("78.6")
    vat_units = third.units - Decimal("3.1")
    assert third.charge("vat") == round(Decimal("0.18") * vat_units * Decimal("149.06")) == 2026
    assert third.charge("municipal_tax") == 292
    assert codes(third) == ["municipal_tax", "vat", "energy"]


def test_a_purchase_below_the_vat_band_has_no_vat_line() -> None:
    # 150 kWh cost 14017 and the next 100 kWh 13990: 28436 with the fee reaches band 3.
    pricing = price_purchase(PREPAID, 28000, ZERO, first_of_month=True)
    assert Decimal(150) < pricing.units < Decimal(250)
    assert "vat" not in codes(pricing)


# -- fixed fee and debt recovery -----------------------------------------------------------------
def test_the_monthly_fee_is_charged_on_the_first_purchase_of_the_month_only() -> None:
    first = price_purchase(PREPAID, 5000, ZERO, first_of_month=True)
    again = price_purchase(PREPAID, 5000, ZERO, first_of_month=False)
    assert first.charge("fixed_fee") == 429
    assert "fixed_fee" not in codes(again)
    assert again.units > first.units


def test_a_purchase_that_only_covers_the_fee_buys_nothing() -> None:
    for amount in (429, 300):
        pricing = price_purchase(PREPAID, amount, ZERO, first_of_month=True, arrears=5000)
        assert pricing.units == 0
        assert [(c.code, c.amount) for c in pricing.charges] == [("fixed_fee", amount), ("energy", 0)]


def test_debt_recovery_takes_the_rate_of_the_amount_while_there_are_arrears() -> None:
    pricing = price_purchase(PREPAID, 14000, ZERO, first_of_month=True, arrears=100_000)
    assert pricing.charge("debt_recovery") == 2800  # 20 % of 14000
    assert codes(pricing) == ["fixed_fee", "debt_recovery", "municipal_tax", "energy"]
    assert pricing.units == Decimal("115.3")  # (14000 - 429 - 2800) / 93.45
    # Rounded down: 20 % of 14999 is 2999.8.
    assert price_purchase(PREPAID, 14999, ZERO, False, arrears=100_000).charge("debt_recovery") == 2999


def test_debt_recovery_never_takes_more_than_the_arrears() -> None:
    pricing = price_purchase(PREPAID, 14000, ZERO, first_of_month=False, arrears=1000)
    assert pricing.charge("debt_recovery") == 1000


@pytest.mark.parametrize("arrears", [0, -5000])
def test_no_debt_recovery_without_arrears(arrears: int) -> None:
    pricing = price_purchase(PREPAID, 14000, ZERO, first_of_month=False, arrears=arrears)
    assert "debt_recovery" not in codes(pricing)
    assert pricing.units == price_purchase(PREPAID, 14000, ZERO, first_of_month=False).units


def test_negative_amounts_and_month_units_are_refused() -> None:
    with pytest.raises(ValueError):
        price_purchase(PREPAID, -1, ZERO, first_of_month=False)
    with pytest.raises(ValueError):
        price_purchase(PREPAID, 1000, Decimal(-1), first_of_month=False)


# -- rounding -------------------------------------------------------------------------------------
def test_units_round_to_the_nearest_tenth_or_down_as_the_tariff_says() -> None:
    down = dataclasses.replace(PREPAID, rounding="down")
    # The second Woyofal purchase buys 101.66 kWh.
    assert price_purchase(PREPAID, 14000, Decimal("145.2"), False).units == Decimal("101.7")
    assert price_purchase(down, 14000, Decimal("145.2"), False).units == Decimal("101.6")
    # 145.22 kWh is 145.2 either way.
    assert price_purchase(down, 14000, ZERO, True).units == Decimal("145.2")


def test_the_shipped_water_tariff_rounds_down() -> None:
    water = TARIFFS["water"]
    # (5000 - 300) / 202.37 = 23.2 m3 > 10: 10 m3 social (2023.70), then 2676.30 / (697.97 x 1.18) = 3.25.
    pricing = price_purchase(water, 5000, ZERO, first_of_month=True)
    assert pricing.units == Decimal("13.2")
    assert pricing.unit == "m3"
    assert pricing.charge("vat") == round(Decimal("0.18") * Decimal("3.2") * Decimal("697.97"))
    assert "municipal_tax" not in codes(pricing)


# -- price_units ---------------------------------------------------------------------------------
def test_price_units_walks_the_bands_and_rounds_up() -> None:
    assert price_units(PREPAID, Decimal("145.2"), ZERO) == 13569  # 13568.83
    # 4.8 kWh at 93.45 + 5.2 kWh at 139.90 = 1176.05
    assert price_units(PREPAID, Decimal(10), Decimal("145.2")) == 1177
    assert price_units(PREPAID, Decimal(1), Decimal(300)) == 180  # 149.06 x 1.205 = 179.62
    assert price_units(PREPAID, ZERO, ZERO) == 0


# -- properties over every shipped tariff ---------------------------------------------------------
@st.composite
def purchases(draw: st.DrawFn) -> tuple[Tariff, int, Decimal, bool, int]:
    tariff = TARIFFS[draw(st.sampled_from(sorted(TARIFFS)))]
    amount = draw(st.integers(tariff.min_purchase, tariff.max_purchase))
    month_units = Decimal(draw(st.integers(0, 10_000))) / 10
    arrears = draw(st.one_of(st.just(0), st.integers(1, 1_000_000)))
    return tariff, amount, month_units, draw(st.booleans()), arrears


@settings(max_examples=500, deadline=None)
@given(purchases())
def test_charges_add_up_exactly_to_the_amount(purchase: tuple[Tariff, int, Decimal, bool, int]) -> None:
    tariff, amount, month_units, first, arrears = purchase
    pricing = price_purchase(tariff, amount, month_units, first, arrears)
    assert sum(c.amount for c in pricing.charges) == amount == pricing.amount
    assert pricing.charges[-1].code == "energy"
    assert all(c.amount > 0 for c in pricing.charges[:-1]) and pricing.charges[-1].amount >= 0
    order = codes(pricing)
    assert order == [code for code in CODES if code in order]  # the deduction order, each once
    assert pricing.units >= 0 and pricing.units == pricing.units.quantize(Decimal("0.1"))
    assert pricing.unit == tariff.unit
    assert pricing.charge("debt_recovery") <= arrears
    # What the energy, tax and VAT lines add up to is what the issued units cost, give or
    # take the 0.1-unit rounding (nearest: half a step; down: a step) and a franc.
    paid_for_units = amount - pricing.charge("fixed_fee") - pricing.charge("debt_recovery")
    step = Decimal("0.05") if tariff.rounding == "nearest" else Decimal("0.1")
    slack = max(tariff.unit_cost(b) for b in tariff.bands) * step + 2
    assert abs(price_units(tariff, pricing.units, month_units) - paid_for_units) <= slack


@settings(max_examples=300, deadline=None)
@given(purchases(), st.integers(0, 100_000))
def test_more_money_never_buys_fewer_units(purchase: tuple[Tariff, int, Decimal, bool, int], more: int) -> None:
    tariff, amount, month_units, first, arrears = purchase
    bigger = min(amount + more, tariff.max_purchase)
    assert (
        price_purchase(tariff, bigger, month_units, first, arrears).units
        >= price_purchase(tariff, amount, month_units, first, arrears).units
    )


@st.composite
def any_tariffs(draw: st.DrawFn) -> Tariff:
    """Any tariff the loader accepts, extreme rates included."""
    rates = st.one_of(st.integers(0, 999), st.integers(900, 999)).map(lambda n: Decimal(n) / 1000)
    bounds = sorted(set(draw(st.lists(st.integers(1, 5000), max_size=4))))
    prices = st.integers(1, 200_000).map(lambda n: Decimal(n) / 100)
    bands = tuple(
        Band(Decimal(upto) / 10 if upto else None, draw(prices), draw(st.booleans())) for upto in [*bounds, 0]
    )
    return Tariff(
        code="any", name="Any", unit="kWh", bands=bands, vat_rate=draw(rates), municipal_tax_rate=draw(rates),
        fixed_monthly_fee=draw(st.one_of(st.just(0), st.integers(0, 2000))), debt_recovery_rate=draw(rates),
        min_purchase=1, max_purchase=1_000_000, rounding=draw(st.sampled_from(["nearest", "down"])),
    )


@settings(max_examples=500, deadline=None)
@given(
    any_tariffs(), st.one_of(st.integers(0, 100), st.integers(0, 1_000_000)), st.integers(0, 5000), st.booleans(),
    st.integers(0, 100_000),
)
def test_any_valid_tariff_prices_any_amount_into_charges_that_add_up(
    tariff: Tariff, amount: int, tenths: int, first: bool, arrears: int
) -> None:
    pricing = price_purchase(tariff, amount, Decimal(tenths) / 10, first, arrears)
    assert sum(c.amount for c in pricing.charges) == amount
    assert all(c.amount >= 0 for c in pricing.charges)
    assert pricing.units >= 0


def test_units_are_cut_rather_than_showing_a_negative_energy_line() -> None:
    # At 280 XAF a unit all taxes included, 14 XAF rounds to 0.1 unit whose taxes (9 + 9)
    # would exceed the 14 XAF: no units then, and the 14 XAF stay on the energy line.
    steep = dataclasses.replace(
        PREPAID, bands=(Band(None, Decimal(100), True),), vat_rate=Decimal("0.9"),
        municipal_tax_rate=Decimal("0.9"), fixed_monthly_fee=0,
    )
    pricing = price_purchase(steep, 14, ZERO, first_of_month=True)
    assert (pricing.units, [(c.code, c.amount) for c in pricing.charges]) == (ZERO, [("energy", 14)])
    assert price_purchase(steep, 30, ZERO, first_of_month=True).units == Decimal("0.1")


# -- loading errors ------------------------------------------------------------------------------
VALID = """
[demo]
name = "Demo"
unit = "kWh"
vat_rate = 0.18
municipal_tax_rate = 0.025
fixed_monthly_fee = 429
debt_recovery_rate = 0.2
min_purchase = 1000
max_purchase = 500000
rounding = "nearest"
bands = [
    { upto = 150, price = 91.17, vat = false },
    { upto = 250, price = 136.49, vat = false },
    { price = 149.06, vat = true },
]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tariffs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_with_exact_decimals(tmp_path: Path) -> None:
    demo = load_tariffs(write(tmp_path, VALID))["demo"]
    assert demo.bands[0].price == Decimal("91.17")  # not the float 91.1700000000000017...
    assert demo.debt_recovery_rate == Decimal("0.2")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("upto = 250", "upto = 100", r"band 2: upto 100 must be above 150"),
        ("upto = 250", "upto = 150", r"band 2: upto 150 must be above 150"),
        ("{ price = 149.06", "{ upto = 400, price = 149.06", r"band 3: the last band must be open"),
        ("{ upto = 250, ", "{ ", r"band 2: only the last band may be open"),
        ("price = 91.17", "price = 0", r"band 1: price must be above 0"),
        ("price = 91.17", 'price = "91.17"', r"band 1 price must be a number"),
        ("vat = false }", "vat = 0 }", r"band 1: vat must be true or false"),
        ("{ upto = 150, price = 91.17, vat = false }", "{ upto = 150, price = 91.17 }", r"band 1: missing vat"),
        ("vat = true }", "vat = true, tax = 1 }", r"band 3: unknown setting tax"),
        ("bands = [", "bands = [] \nold = [", r"unknown setting old"),
        ("vat_rate = 0.18", "vat_rate = 18", r"vat_rate 18 must be a fraction in \[0, 1\)"),
        ("vat_rate = 0.18", "vat_rate = 1.0", r"vat_rate 1.0 must be a fraction"),
        ("municipal_tax_rate = 0.025", "municipal_tax_rate = -0.025", r"municipal_tax_rate -0.025 must be"),
        ("debt_recovery_rate = 0.2", "debt_recovery_rate = true", r"debt_recovery_rate must be a number"),
        ("min_purchase = 1000", "min_purchase = 600000", r"min_purchase 600000 is above max_purchase 500000"),
        ("min_purchase = 1000", "min_purchase = 0", r"min_purchase must be at least 1"),
        ("fixed_monthly_fee = 429", "fixed_monthly_fee = 429.5", r"fixed_monthly_fee 429.5 must be a whole"),
        ('unit = "kWh"', 'unit = "litre"', r"unit 'litre' is not one of kWh, m3"),
        ('rounding = "nearest"', 'rounding = "up"', r"rounding 'up' is not one of nearest, down"),
        ('name = "Demo"\n', "", r"missing name"),
        ("vat_rate = 0.18", "vat_rte = 0.18", r"missing vat_rate"),
        ('name = "Demo"', 'name = "Demo"\nvat_rte = 0.1', r"unknown setting vat_rte"),
    ],
)
def test_a_bad_tariff_is_refused_naming_the_tariff_and_the_problem(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(TariffError, match=rf"tariffs\.toml: tariff 'demo': {problem}"):
        load_tariffs(path)


def test_an_empty_band_list_is_refused(tmp_path: Path) -> None:
    text = VALID.split("bands = [")[0] + "bands = []\n"
    with pytest.raises(TariffError, match=r"tariff 'demo': bands must be a non-empty list"):
        load_tariffs(write(tmp_path, text))


def test_a_broken_or_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TariffError, match=r"tariffs\.toml: not valid TOML"):
        load_tariffs(write(tmp_path, VALID.replace("[demo]", "[demo")))
    with pytest.raises(TariffError, match=r"tariffs\.toml: no tariffs"):
        load_tariffs(write(tmp_path, "# nothing yet\n"))
    with pytest.raises(TariffError, match=r"tariff 'demo': must be a table"):
        load_tariffs(write(tmp_path, 'demo = "prepaid"\n'))


def test_a_second_bad_tariff_is_named(tmp_path: Path) -> None:
    text = VALID + VALID.replace("[demo]", "[water]").replace('unit = "kWh"', 'unit = "l"')
    with pytest.raises(TariffError, match=r"tariff 'water': unit 'l'"):
        load_tariffs(write(tmp_path, text))
