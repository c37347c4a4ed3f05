"""Built-in STS engine (IEC 62055-41): 20-digit credit and key-change tokens, and decoding.

For demos, pilots and tests. Production vending keys live in the utility's HSM and tokens
come from its vending server; this engine produces the same tokens from the same inputs, so
Guichet can run on its own and support staff can decode a token a meter rejects.

A token is 66 bits: class(2) | subclass(4) | RND(4) | TID(24) | amount(16) | CRC(16).
The 64 bits after the class are EA07-encrypted under the meter's decoder key; the class
bits are then inserted in clear (see ``sts_crypto.insert_class``).
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from utility.meters import luhn_check_digit
from utility.vending.sts_crypto import (
    DEFAULT_TABLES,
    StsError,
    crc16,
    decoder_key_from_hex,
    decoder_key_hex,
    dkga02,
    ea07_decrypt,
    ea07_encrypt,
    insert_class,
    remove_class,
    table_names,
    token_crc,
)

__all__ = [
    "BASE_1993", "BASE_2014", "BASE_2035", "BASE_DATES", "DEFAULT_TABLES", "DecodedToken", "MeterKeyData",
    "StsError", "build_credit_token", "crc16", "credit_token", "decode_amount", "decode_token", "decoder_key",
    "decoder_key_from_hex", "decoder_key_hex", "encode_amount", "format_token", "key_change_tokens", "parse_token",
    "meter_key_change_tokens", "needs_key_change", "purchase_tokens", "tid_datetime", "tid_for",
    "units_to_tenths",
]

BASE_1993 = date(1993, 1, 1)
BASE_2014 = date(2014, 1, 1)  # in force since the November 2024 TID rollover
BASE_2035 = date(2035, 1, 1)
BASE_DATES = (BASE_1993, BASE_2014, BASE_2035)

TID_LIMIT = 1 << 24  # minutes: ~31.9 years after the base date
CLASS_CREDIT, CLASS_TEST, CLASS_MANAGEMENT = 0, 1, 2
SET_1ST_SECTION_KEY, SET_2ND_SECTION_KEY = 3, 4
CREDIT_SUBCLASSES = (0, 1, 2, 3)  # electricity, water, gas, time: same amount encoding
DEFAULT_KEN = 255  # key expiry number that never expires

_UNITS = {0: "kWh", 1: "m3", 2: "m3", 3: "min"}
_KINDS = {
    (0, 0): "electricity credit", (0, 1): "water credit", (0, 2): "gas credit", (0, 3): "time credit",
    (0, 4): "electricity currency credit",
    (2, 0): "set maximum power limit", (2, 1): "clear credit", (2, 2): "set tariff rate",
    (2, 3): "set 1st section decoder key", (2, 4): "set 2nd section decoder key",
    (2, 5): "clear tamper condition", (2, 6): "set maximum phase power unbalance limit",
}
# Class-2 subclasses laid out like a credit token: RND | TID | 16-bit register.
_REGISTER_SUBCLASSES = (0, 1, 2, 5, 6)


# --- amounts ------------------------------------------------------------------------------

# Tenths carried by the exponent alone: sum over n=1..e of 2^14 * 10^(n-1).
_EXPONENT_BASE = tuple(sum(2**14 * 10 ** (n - 1) for n in range(1, e + 1)) for e in range(4))
MAX_TENTHS = _EXPONENT_BASE[3] + 1000 * 0x3FFF


def encode_amount(tenths: int) -> int:
    """The 16-bit amount field (2-bit exponent, 14-bit mantissa) for ``tenths``.

    The smallest exponent that carries ``tenths`` exactly; when none does, the next larger
    representable value ("rounded up in favour of the customer", IEC 62055-41 6.3.6.2).
    """
    if not 0 <= tenths <= MAX_TENTHS:
        raise StsError(f"amount must be 0 to {MAX_TENTHS} tenths (got {tenths})")
    for exponent, base in enumerate(_EXPONENT_BASE):
        step = 10**exponent
        if tenths <= base + step * 0x3FFF:
            # Values between two exponents' ranges (ceil < 0) round up to the next base.
            mantissa = max(0, -(-(tenths - base) // step))
            return (exponent << 14) | mantissa
    raise AssertionError("unreachable: MAX_TENTHS is the top of exponent 3")


def decode_amount(field: int) -> int:
    """Tenths of a unit carried by a 16-bit amount field."""
    if not 0 <= field <= 0xFFFF:
        raise StsError("an amount field is 16 bits")
    exponent, mantissa = field >> 14, field & 0x3FFF
    return _EXPONENT_BASE[exponent] + mantissa * 10**exponent


def units_to_tenths(units: Decimal | int | str) -> int:
    """Whole tenths for ``units`` (kWh, m3...), rounding any finer fraction up."""
    try:
        value = Decimal(str(units))
    except InvalidOperation:
        raise StsError(f"units must be a decimal number (got {units!r})") from None
    if not value.is_finite() or value < 0:
        raise StsError(f"units must be zero or more (got {units})")
    return int((value * 10).to_integral_value(rounding=ROUND_CEILING))


# --- TID ----------------------------------------------------------------------------------


def _check_base_date(base_date: date) -> None:
    if base_date not in BASE_DATES:
        known = ", ".join(d.isoformat() for d in BASE_DATES)
        raise StsError(f"base date must be one of {known} (got {base_date})")


def tid_for(issued: datetime, base_date: date) -> int:
    """Minutes from the base date to ``issued`` (aware datetimes are taken in UTC)."""
    _check_base_date(base_date)
    if issued.tzinfo is not None:
        issued = issued.astimezone(UTC).replace(tzinfo=None)
    tid = (issued - datetime.combine(base_date, time())) // timedelta(minutes=1)
    if not 0 <= tid < TID_LIMIT:
        end = tid_datetime(TID_LIMIT - 1, base_date)
        raise StsError(
            f"{issued:%Y-%m-%d %H:%M} is outside the TID range of base date {base_date} "
            f"(up to {end:%Y-%m-%d %H:%M}): the meter needs a key change to a newer base date"
        )
    return tid


def tid_datetime(tid: int, base_date: date) -> datetime:
    return datetime.combine(base_date, time()) + timedelta(minutes=tid)


# --- meters and keys ----------------------------------------------------------------------


def _digits(value: str, count: int) -> bool:
    return len(value) == count and value.isascii() and value.isdigit()


@dataclass(frozen=True)
class MeterKeyData:
    """What DKGA02 needs to derive a meter's decoder key, plus how its tokens are built."""

    vending_key: bytes  # 8 bytes (DES)
    key_type: int  # 0..3
    sgc: str  # supply group code, 6 digits
    tariff_index: str  # 2 digits
    krn: int  # key revision number, 1..9
    pan: str  # 18 digits: IIN + DRN + Luhn check digit (utility.meters.pan_for)
    base_date: date
    tables: str = DEFAULT_TABLES
    ken: int = DEFAULT_KEN  # key expiry number written by key-change tokens to this key

    def __post_init__(self) -> None:
        problem = _meter_problem(self)
        if problem:
            raise StsError(problem)

    @property
    def pan_block(self) -> str:
        # DKGA02 PAN block: the 16 digits before the check digit (IIN tail + DRN).
        return self.pan[1:17]


def _meter_problem(m: MeterKeyData) -> str | None:
    if not isinstance(m.vending_key, bytes) or len(m.vending_key) != 8:
        return "vending key must be 8 bytes (16 hex digits)"
    if not 0 <= m.key_type <= 3:
        return "key type must be 0 to 3"
    if not _digits(m.sgc, 6):
        return "supply group code must be 6 digits"
    if not _digits(m.tariff_index, 2):
        return "tariff index must be 2 digits"
    if not 1 <= m.krn <= 9:
        return "key revision number must be 1 to 9"
    if not _digits(m.pan, 18):
        return "PAN must be 18 digits"
    if luhn_check_digit(m.pan[:17]) != int(m.pan[17]):
        return "PAN check digit is wrong"
    if m.base_date not in BASE_DATES:
        return f"base date must be one of {', '.join(d.isoformat() for d in BASE_DATES)}"
    if m.tables not in table_names():
        return f"tables must be one of {', '.join(table_names())}"
    if not 0 <= m.ken <= 255:
        return "key expiry number must be 0 to 255"
    return None


def decoder_key(meter: MeterKeyData) -> int:
    """The meter's decoder key as the 64-bit STA key (DKGA02; cached per meter)."""
    return dkga02(meter.vending_key, meter.key_type, meter.sgc, meter.tariff_index, meter.krn, meter.pan_block)


# --- building tokens ----------------------------------------------------------------------


def _token(key: int, token_class: int, body: int, tables: str) -> str:
    """Encrypt the 48 bits after the class (subclass..amount) plus their CRC."""
    block = (body << 16) | token_crc(token_class, body)
    return f"{insert_class(ea07_encrypt(key, block, tables), token_class):020d}"


def _rnd(rnd: int | None) -> int:
    if rnd is None:
        # RND only varies otherwise equal tokens; secrecy comes from the key, and the OS
        # generator behind `secrets` would cost a tenth of the token's time.
        return random.getrandbits(4)
    if not 0 <= rnd <= 15:
        raise StsError("RND must be 0 to 15")
    return rnd


def build_credit_token(
    decoder_key: int, *, subclass: int, rnd: int, tid: int, amount_field: int, tables: str = DEFAULT_TABLES
) -> str:
    """A class-0 token from raw fields (the TID and the encoded amount)."""
    if subclass not in CREDIT_SUBCLASSES:
        raise StsError("credit subclass must be 0 (electricity), 1 (water), 2 (gas) or 3 (time)")
    if not 0 <= tid < TID_LIMIT:
        raise StsError("TID must fit 24 bits")
    if not 0 <= amount_field <= 0xFFFF:
        raise StsError("amount field must fit 16 bits")
    body = (subclass << 44) | (_rnd(rnd) << 40) | (tid << 16) | amount_field
    return _token(decoder_key, CLASS_CREDIT, body, tables)


def credit_token(
    decoder_key: int,
    units: Decimal | int | str,
    issued: datetime,
    subclass: int = 0,
    rnd: int | None = None,
    *,
    base_date: date,
    tables: str = DEFAULT_TABLES,
) -> str:
    """A 20-digit credit token: ``units`` kWh (subclass 0) or m3 (1; 2 gas, 3 time), in 0.1 steps.

    ``rnd`` None draws one at random; ``base_date`` is the one the meter's key works with.
    """
    return build_credit_token(
        decoder_key,
        subclass=subclass,
        rnd=_rnd(rnd),
        tid=tid_for(issued, base_date),
        amount_field=encode_amount(units_to_tenths(units)),
        tables=tables,
    )


def key_change_tokens(
    current_key: int,
    new_key: int,
    *,
    new_key_type: int,
    new_krn: int,
    new_tariff_index: str,
    ken: int = DEFAULT_KEN,
    rollover: bool = False,
    tables: str = DEFAULT_TABLES,
) -> tuple[str, str]:
    """Set1stSectionDecoderKey and Set2ndSectionDecoderKey tokens, both under ``current_key``.

    Data-block layouts (bit 63 first), as in the public STS implementations nxtgrid/nxt-sts
    and NectarAPI/tokens-service (``Set1st/Set2ndSectionDecoderKeyTokenGenerator
    .generate64BitDataBlock``, citing IEC 62055-41:2018 pp. 35-36) and a public Dart port
    (``Set1stSectionDecoderKeyToken``):
      1st: subclass 3 | KENHO(4) | KRN(4) | RO(1) | reserved 0(1) | KT(2) | NKHO(32) | CRC(16)
      2nd: subclass 4 | KENLO(4) | TI(8)  | NKLO(32) | CRC(16)
    NKHO/NKLO are the high/low 32 bits of the new 64-bit STA key; KENHO/KENLO the high/low
    nibbles of the new key expiry number; RO is set when the key changes for a TID rollover
    (the meter then clears its TID memory). The tokens match the STS 531-1-0-02 CTSA19 and
    CTSA26 tokens those projects test against (tests/vending/test_sts_vectors.py).
    """
    if not 0 <= new_key_type <= 3:
        raise StsError("key type must be 0 to 3")
    if not 1 <= new_krn <= 9:
        raise StsError("key revision number must be 1 to 9")
    if not _digits(new_tariff_index, 2):
        raise StsError("tariff index must be 2 digits")
    if not 0 <= ken <= 255:
        raise StsError("key expiry number must be 0 to 255")
    first = (
        (SET_1ST_SECTION_KEY << 44) | ((ken >> 4) << 40) | (new_krn << 36) | (int(rollover) << 35)
        | (new_key_type << 32) | (new_key >> 32)
    )
    second = (
        (SET_2ND_SECTION_KEY << 44) | ((ken & 0xF) << 40) | (int(new_tariff_index) << 32) | (new_key & 0xFFFFFFFF)
    )
    return (
        _token(current_key, CLASS_MANAGEMENT, first, tables),
        _token(current_key, CLASS_MANAGEMENT, second, tables),
    )


def needs_key_change(installed: MeterKeyData, target: MeterKeyData) -> bool:
    return decoder_key(installed) != decoder_key(target) or installed.base_date != target.base_date


def meter_key_change_tokens(installed: MeterKeyData, target: MeterKeyData) -> tuple[str, str]:
    """The two tokens that move a meter from its ``installed`` key to ``target``'s."""
    if installed.tables != target.tables:
        raise StsError("a key change cannot switch STA tables: they are fixed in the meter")
    return key_change_tokens(
        decoder_key(installed),
        decoder_key(target),
        new_key_type=target.key_type,
        new_krn=target.krn,
        new_tariff_index=target.tariff_index,
        ken=target.ken,
        rollover=installed.base_date != target.base_date,
        tables=installed.tables,
    )


def purchase_tokens(
    meter: MeterKeyData,
    units: Decimal | int | str,
    issued: datetime,
    *,
    installed: MeterKeyData | None = None,
    subclass: int = 0,
    rnd: int | None = None,
) -> tuple[str, ...]:
    """The tokens of one purchase, in the order the customer keys them in.

    ``meter`` is the key data the meter should have; ``installed`` what it has now, when
    they differ (new KRN, tariff index, SGC or base date): then two key-change tokens come
    first and the credit token is built under the new key and base date.
    """
    credit = credit_token(
        decoder_key(meter), units, issued, subclass, rnd, base_date=meter.base_date, tables=meter.tables
    )
    if installed is None or not needs_key_change(installed, meter):
        return (credit,)
    return (*meter_key_change_tokens(installed, meter), credit)


def format_token(token: str) -> str:
    """``token`` in groups of four digits, as printed on receipts and read to customers."""
    return " ".join(token[i : i + 4] for i in range(0, 20, 4))


# --- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedToken:
    """A token taken apart with one decoder key. ``crc_valid`` False: wrong key, or a typo."""

    token: str
    token_class: int
    subclass: int
    kind: str
    crc_valid: bool
    data_block: int  # the decrypted 64 bits (for class 1: as carried, not encrypted)
    rnd: int | None = None
    tid: int | None = None
    issued: datetime | None = None
    amount_field: int | None = None
    units: Decimal | None = None
    unit: str | None = None
    register: int | None = None
    key_expiry_high: int | None = None  # KENHO
    key_expiry_low: int | None = None  # KENLO
    krn: int | None = None
    rollover: bool | None = None
    key_type: int | None = None
    new_key_high: int | None = None  # NKHO
    new_key_low: int | None = None  # NKLO
    tariff_index: str | None = None

    def fields(self) -> Iterator[tuple[str, object]]:
        """(name, value) of every field that this kind of token carries."""
        for f in dataclass_fields(self):
            value = getattr(self, f.name)
            if value is not None:
                yield f.name, value


def parse_token(token: str) -> int:
    digits = "".join(ch for ch in token if ch not in " -")
    if not _digits(digits, 20):
        raise StsError("a token is 20 digits")
    value = int(digits)
    if value >> 66:
        raise StsError("not an STS token: more than 66 bits")
    return value


def decode_token(
    token: str, decoder_key: int, *, base_date: date | None = None, tables: str = DEFAULT_TABLES
) -> DecodedToken:
    """Decrypt ``token`` with ``decoder_key`` and read its fields; never raises for a wrong key.

    With ``base_date`` the TID is also given as the date and time it stands for.
    """
    if base_date is not None:
        _check_base_date(base_date)
    value = parse_token(token)
    token_class, cipher = remove_class(value)
    # Class 1 (test/display) tokens are the same for every meter, hence not encrypted.
    block = cipher if token_class == CLASS_TEST else ea07_decrypt(decoder_key, cipher, tables)
    subclass = block >> 60
    crc_valid = token_crc(token_class, block >> 16) == block & 0xFFFF
    kind = _KINDS.get((token_class, subclass), f"class {token_class} subclass {subclass}")
    base = DecodedToken(f"{value:020d}", token_class, subclass, kind, crc_valid, block)
    rnd, tid, field16 = (block >> 56) & 0xF, (block >> 32) & 0xFFFFFF, (block >> 16) & 0xFFFF
    issued = tid_datetime(tid, base_date) if base_date is not None else None
    if token_class == CLASS_CREDIT:
        base = replace(base, rnd=rnd, tid=tid, issued=issued, amount_field=field16)
        if subclass in CREDIT_SUBCLASSES:
            return replace(base, units=Decimal(decode_amount(field16)) / 10, unit=_UNITS[subclass])
        return base  # currency credit: its amount field has its own encoding
    if token_class != CLASS_MANAGEMENT:
        return base
    if subclass in _REGISTER_SUBCLASSES:
        return replace(base, rnd=rnd, tid=tid, issued=issued, register=field16)
    if subclass == SET_1ST_SECTION_KEY:
        return replace(
            base, key_expiry_high=(block >> 56) & 0xF, krn=(block >> 52) & 0xF, rollover=bool((block >> 51) & 1),
            key_type=(block >> 48) & 3, new_key_high=(block >> 16) & 0xFFFFFFFF,
        )
    if subclass == SET_2ND_SECTION_KEY:
        return replace(
            base, key_expiry_low=(block >> 56) & 0xF, tariff_index=f"{(block >> 48) & 0xFF:02d}",
            new_key_low=(block >> 16) & 0xFFFFFFFF,
        )
    return base
