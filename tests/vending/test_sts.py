"""The built-in STS engine: properties, key changes, decoding, validation."""
from __future__ import annotations

import runpy
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utility.vending import sts
from utility.vending.sts_crypto import (
    ea07_decrypt,
    ea07_encrypt,
    insert_class,
    remove_class,
    round_keys,
    sta_tables,
)

KEYS = st.integers(0, (1 << 64) - 1)
TABLES = st.sampled_from(["test", "sample"])
FAST = settings(deadline=None, max_examples=200)

METER = sts.MeterKeyData(
    vending_key=bytes.fromhex("abababababababab"), key_type=2, sgc="123456", tariff_index="01", krn=1,
    pan="600727000000000009", base_date=sts.BASE_1993,
)


def _reference_ea07(key: int, block: int, tables: str) -> int:
    """EA07 bit by bit, straight from the description in DOMAIN.md (no fused tables)."""
    t = sta_tables(tables)
    for k in round_keys(key):
        substituted = 0
        for i in range(16):
            table = t.sub2 if (k >> (4 * i + 3)) & 1 else t.sub1
            substituted |= table[(block >> (4 * i)) & 0xF] << (4 * i)
        block = 0
        for i in range(64):
            block |= ((substituted >> i) & 1) << t.perm[i]
    return block


def test_round_keys_follow_the_schedule() -> None:
    key = 0x0ABC12DEF3456789
    complement = key ^ ((1 << 64) - 1)
    first = ((complement >> 12) | (complement << 52)) & ((1 << 64) - 1)
    keys = round_keys(key)
    assert keys[0] == first
    assert keys[1] == ((first << 1) | (first >> 63)) & ((1 << 64) - 1)
    assert len(keys) == 16


@FAST
@given(key=KEYS, block=KEYS, tables=TABLES)
def test_ea07_matches_the_bitwise_reference_and_decrypts(key: int, block: int, tables: str) -> None:
    cipher = ea07_encrypt(key, block, tables)
    assert cipher == _reference_ea07(key, block, tables)
    assert ea07_decrypt(key, cipher, tables) == block


@FAST
@given(block=KEYS, token_class=st.integers(0, 3))
def test_class_insertion_round_trips(block: int, token_class: int) -> None:
    token = insert_class(block, token_class)
    assert token >> 66 == 0
    assert remove_class(token) == (token_class, block)


# --- amounts ----------------------------------------------------------------------------------


def test_amount_boundaries() -> None:
    assert sts.encode_amount(0) == 0
    assert sts.encode_amount(16383) == 0x3FFF
    assert sts.encode_amount(16384) == 0x4000
    assert sts.encode_amount(180214) == 0x7FFF  # top of exponent 1
    assert sts.encode_amount(180215) == 0x8000  # between exponents: up to the next one
    assert sts.encode_amount(16385) == 0x4001  # 1638.5 kWh is not representable: 1639.4
    assert sts.decode_amount(0x4001) == 16394
    assert sts.encode_amount(sts.MAX_TENTHS) == 0xFFFF
    with pytest.raises(sts.StsError):
        sts.encode_amount(sts.MAX_TENTHS + 1)
    with pytest.raises(sts.StsError):
        sts.encode_amount(-1)


def test_amount_fields_decode_in_increasing_order() -> None:
    values = [sts.decode_amount(field) for field in range(1 << 16)]
    assert values == sorted(set(values))


@settings(max_examples=500)
@given(tenths=st.integers(0, sts.MAX_TENTHS))
def test_amount_encoding_gives_the_smallest_representable_value_not_below(tenths: int) -> None:
    field = sts.encode_amount(tenths)
    assert sts.decode_amount(field) >= tenths
    if field:
        assert sts.decode_amount(field - 1) < tenths  # fields decode in increasing order (test above)


@given(field=st.integers(0, 0xFFFF))
def test_every_field_is_the_encoding_of_its_value(field: int) -> None:
    assert sts.encode_amount(sts.decode_amount(field)) == field


@pytest.mark.parametrize("units, tenths", [("0.1", 1), ("1", 10), ("0.15", 2), (Decimal("12.34"), 124), (0, 0)])
def test_units_round_up_to_tenths(units: object, tenths: int) -> None:
    assert sts.units_to_tenths(units) == tenths  # type: ignore[arg-type]


@pytest.mark.parametrize("units", ["-0.1", "abc", "NaN", "Infinity"])
def test_bad_units_are_refused(units: str) -> None:
    with pytest.raises(sts.StsError):
        sts.units_to_tenths(units)


# --- TID ----------------------------------------------------------------------------------------


def test_tid_counts_minutes_from_the_base_date() -> None:
    assert sts.tid_for(datetime(2004, 3, 1, 13, 55), sts.BASE_1993) == 5871715
    assert sts.tid_for(datetime(2014, 1, 1, 0, 1, 59), sts.BASE_2014) == 1
    # An aware time is read in UTC: 10:00 in Douala (UTC+1) is minute 540 of the day.
    wat = timezone(timedelta(hours=1))
    assert sts.tid_for(datetime(2014, 1, 1, 10, 0, tzinfo=wat), sts.BASE_2014) == 540


def test_tids_past_the_rollover_need_a_newer_base_date() -> None:
    last = sts.tid_datetime(sts.TID_LIMIT - 1, sts.BASE_1993)
    assert last.date() == date(2024, 11, 24)  # the November 2024 rollover
    assert sts.tid_for(last, sts.BASE_1993) == sts.TID_LIMIT - 1
    with pytest.raises(sts.StsError, match="key change"):
        sts.tid_for(last + timedelta(minutes=1), sts.BASE_1993)
    with pytest.raises(sts.StsError):
        sts.tid_for(datetime(2013, 12, 31, 23, 59), sts.BASE_2014)
    with pytest.raises(sts.StsError, match="base date"):
        sts.tid_for(datetime(2020, 1, 1), date(2000, 1, 1))


# --- tokens: round trips ----------------------------------------------------------------------


@FAST
@given(
    key=KEYS, tables=TABLES, subclass=st.sampled_from(sts.CREDIT_SUBCLASSES), rnd=st.integers(0, 15),
    tid=st.integers(0, sts.TID_LIMIT - 1), field=st.integers(0, 0xFFFF),
)
def test_credit_tokens_decode_to_what_was_encoded(
    key: int, tables: str, subclass: int, rnd: int, tid: int, field: int
) -> None:
    token = sts.build_credit_token(key, subclass=subclass, rnd=rnd, tid=tid, amount_field=field, tables=tables)
    assert len(token) == 20 and token.isdigit() and int(token) >> 66 == 0
    decoded = sts.decode_token(token, key, tables=tables)
    assert (decoded.crc_valid, decoded.token_class, decoded.subclass, decoded.rnd, decoded.tid) == (
        True, 0, subclass, rnd, tid
    )
    assert decoded.amount_field == field
    assert decoded.units == Decimal(sts.decode_amount(field)) / 10


@FAST
@given(
    key=KEYS, base_date=st.sampled_from(sts.BASE_DATES), minutes=st.integers(0, sts.TID_LIMIT - 1),
    tenths=st.integers(0, sts.MAX_TENTHS), subclass=st.sampled_from((0, 1)),
)
def test_credit_token_dates_and_units_survive_decoding(
    key: int, base_date: date, minutes: int, tenths: int, subclass: int
) -> None:
    issued = sts.tid_datetime(minutes, base_date)
    units = Decimal(tenths) / 10
    token = sts.credit_token(key, units, issued, subclass, base_date=base_date)
    decoded = sts.decode_token(token, key, base_date=base_date)
    assert decoded.issued == issued
    assert decoded.units is not None and decoded.units >= units
    assert decoded.unit == ("kWh" if subclass == 0 else "m3")


@FAST
@given(
    current=KEYS, new=KEYS, key_type=st.integers(0, 3), krn=st.integers(1, 9), ti=st.integers(0, 99),
    ken=st.integers(0, 255), rollover=st.booleans(), tables=TABLES,
)
def test_key_change_tokens_carry_the_new_key(
    current: int, new: int, key_type: int, krn: int, ti: int, ken: int, rollover: bool, tables: str
) -> None:
    first, second = sts.key_change_tokens(
        current, new, new_key_type=key_type, new_krn=krn, new_tariff_index=f"{ti:02d}", ken=ken,
        rollover=rollover, tables=tables,
    )
    one, two = sts.decode_token(first, current, tables=tables), sts.decode_token(second, current, tables=tables)
    assert (one.crc_valid, one.token_class, one.subclass, two.crc_valid, two.token_class, two.subclass) == (
        True, 2, 3, True, 2, 4
    )
    assert (one.key_expiry_high << 4) | two.key_expiry_low == ken
    assert (one.krn, one.rollover, one.key_type, two.tariff_index) == (krn, rollover, key_type, f"{ti:02d}")
    assert (one.new_key_high << 32) | two.new_key_low == new


def test_random_rnd_varies() -> None:
    key = sts.decoder_key(METER)
    issued = datetime(2004, 3, 1, 13, 55)
    rnds = {sts.decode_token(sts.credit_token(key, 1, issued, base_date=sts.BASE_1993), key).rnd for _ in range(200)}
    assert len(rnds) > 8


# --- purchases with key changes -------------------------------------------------------------


def test_purchase_for_a_meter_whose_key_changes_gives_three_tokens() -> None:
    installed = METER
    target = sts.MeterKeyData(
        vending_key=installed.vending_key, key_type=2, sgc="123456", tariff_index="02", krn=2,
        pan=installed.pan, base_date=sts.BASE_2014,
    )
    issued = datetime(2025, 2, 3, 9, 30)
    first, second, credit = sts.purchase_tokens(target, "12.5", issued, installed=installed, rnd=7)
    old_key, new_key = sts.decoder_key(installed), sts.decoder_key(target)
    assert old_key != new_key

    one, two = sts.decode_token(first, old_key), sts.decode_token(second, old_key)
    assert (one.crc_valid, two.crc_valid) == (True, True)
    assert (one.new_key_high << 32) | two.new_key_low == new_key
    assert (one.krn, one.rollover, two.tariff_index, (one.key_expiry_high << 4) | two.key_expiry_low) == (
        2, True, "02", 255
    )
    # The credit token is for the new key and base date: the old key cannot read it.
    decoded = sts.decode_token(credit, new_key, base_date=sts.BASE_2014)
    assert (decoded.crc_valid, decoded.issued, decoded.units, decoded.rnd) == (True, issued, Decimal("12.5"), 7)
    assert not sts.decode_token(credit, old_key).crc_valid


def test_key_change_without_rollover_keeps_the_tid_memory() -> None:
    target = sts.MeterKeyData(METER.vending_key, 2, "123456", "01", 2, METER.pan, sts.BASE_1993)
    first, _, _ = sts.purchase_tokens(target, 1, datetime(2010, 1, 1), installed=METER)
    assert sts.decode_token(first, sts.decoder_key(METER)).rollover is False


def test_purchase_without_key_change_gives_one_token() -> None:
    assert len(sts.purchase_tokens(METER, 1, datetime(2010, 1, 1), installed=METER)) == 1
    assert len(sts.purchase_tokens(METER, 1, datetime(2010, 1, 1))) == 1


def test_a_key_change_cannot_switch_tables() -> None:
    other = sts.MeterKeyData(METER.vending_key, 2, "123456", "01", 2, METER.pan, sts.BASE_1993, tables="sample")
    with pytest.raises(sts.StsError, match="tables"):
        sts.meter_key_change_tokens(METER, other)


# --- decoding what a meter rejects ------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong_key",
    [
        sts.decoder_key(METER) ^ 1,
        sts.decoder_key(METER) ^ (1 << 63),
        sts.decoder_key(sts.MeterKeyData(METER.vending_key, 2, "123456", "01", 2, METER.pan, sts.BASE_1993)),
        0,
    ],
)
def test_a_wrong_key_gives_an_invalid_crc_not_an_exception(wrong_key: int) -> None:
    decoded = sts.decode_token("23716100501183194197", wrong_key, base_date=sts.BASE_1993)
    assert decoded.crc_valid is False
    assert decoded.token == "23716100501183194197"


def test_a_mistyped_digit_gives_an_invalid_crc() -> None:
    assert not sts.decode_token("23716100501183194198", sts.decoder_key(METER)).crc_valid


def test_decoding_accepts_grouped_digits_and_refuses_non_tokens() -> None:
    key = sts.decoder_key(METER)
    assert sts.decode_token(sts.format_token("23716100501183194197"), key).crc_valid
    assert sts.format_token("23716100501183194197") == "2371 6100 5011 8319 4197"
    for bad in ("1234", "2371610050118319419x", "99999999999999999999"):  # the last is above 2^66
        with pytest.raises(sts.StsError):
            sts.decode_token(bad, key)


def test_decoded_fields_list_only_what_the_token_carries() -> None:
    decoded = sts.decode_token("23716100501183194197", sts.decoder_key(METER), base_date=sts.BASE_1993)
    names = [name for name, _ in decoded.fields()]
    assert names == ["token", "token_class", "subclass", "kind", "crc_valid", "data_block", "rnd", "tid", "issued",
                     "amount_field", "units", "unit"]


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"vending_key": b"short"}, "vending key"),
        ({"key_type": 4}, "key type"),
        ({"sgc": "12345"}, "supply group code"),
        ({"tariff_index": "1"}, "tariff index"),
        ({"krn": 0}, "key revision number"),
        ({"pan": "600727000000000008"}, "check digit"),
        ({"pan": "60072700000000000"}, "18 digits"),
        ({"base_date": date(2000, 1, 1)}, "base date"),
        ({"tables": "nope"}, "tables"),
        ({"ken": 256}, "key expiry"),
    ],
)
def test_meter_key_data_is_validated(change: dict, message: str) -> None:
    fields = {**METER.__dict__, **change}
    with pytest.raises(sts.StsError, match=message):
        sts.MeterKeyData(**fields)


def test_credit_token_inputs_are_validated() -> None:
    key = sts.decoder_key(METER)
    issued = datetime(2004, 3, 1)
    with pytest.raises(sts.StsError, match="RND"):
        sts.credit_token(key, 1, issued, rnd=16, base_date=sts.BASE_1993)
    with pytest.raises(sts.StsError, match="subclass"):
        sts.credit_token(key, 1, issued, subclass=4, base_date=sts.BASE_1993)
    with pytest.raises(sts.StsError, match="table"):
        sts.credit_token(key, 1, issued, base_date=sts.BASE_1993, tables="nope")


def test_decoder_keys_are_cached_per_meter() -> None:
    from utility.vending.sts_crypto import dkga02

    dkga02.cache_clear()
    sts.decoder_key(METER)
    sts.decoder_key(sts.MeterKeyData(**{**METER.__dict__, "base_date": sts.BASE_2014}))
    info = dkga02.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_bench_runs_and_reports_tokens_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "bench" / "sts.py"), run_name="bench")
    bench["main"](["--seconds", "0.2", "--vends", "20"])
    lines = capsys.readouterr().out.splitlines()
    # It runs and reports; how fast is for the benchmark to say, never for a test to time.
    assert lines[0].endswith("cached decoder key)") and int(lines[0].split()[0]) > 0
    assert lines[2].startswith("vend end to end: ") and "vends/s" in lines[2]
