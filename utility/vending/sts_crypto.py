"""STS (IEC 62055-41) cryptography: CRC-16, EA07 (STA), class-bit transposition, DKGA02.

Bit numbering throughout: bit 0 is the least significant bit of an int. A 64-bit data block
is ``subclass(63..60) | ... | CRC(15..0)``; its nibble i is bits 4i..4i+3.

EA07 is a 16-round substitution/permutation cipher. Done bit by bit it costs ~1,000 Python
operations per round; here each round is 8 byte-indexed lookups in tables that fuse the
substitution and the permutation, picked once per decoder key (``_schedule``), which is what
lets one core issue tens of thousands of tokens per second.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from utility.vending import des

MASK64 = (1 << 64) - 1
DEFAULT_TABLES = "test"


class StsError(ValueError):
    """An input the STS engine cannot encode: its message is fit to show a user."""


# --- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StaTables:
    name: str
    sub1: tuple[int, ...]
    sub2: tuple[int, ...]
    perm: tuple[int, ...]  # bit i moves to perm[i]

    def __post_init__(self) -> None:
        for label, table, size in (("sub1", self.sub1, 16), ("sub2", self.sub2, 16), ("perm", self.perm, 64)):
            if sorted(table) != list(range(size)):
                raise StsError(f"STA table {self.name}.{label} is not a permutation of 0..{size - 1}")


@lru_cache(maxsize=1)
def _table_file() -> dict[str, dict[str, object]]:
    text = resources.files(__package__).joinpath("sts_tables.json").read_text(encoding="utf-8")
    return {name: value for name, value in json.loads(text).items() if isinstance(value, dict)}


def table_names() -> tuple[str, ...]:
    return tuple(sorted(_table_file()))


@cache
def sta_tables(name: str = DEFAULT_TABLES) -> StaTables:
    raw = _table_file().get(name)
    if raw is None:
        raise StsError(f"unknown STA table set {name!r} (known: {', '.join(table_names())})")
    return StaTables(name, tuple(raw["sub1"]), tuple(raw["sub2"]), tuple(raw["perm"]))  # type: ignore[arg-type]


def _permute(value: int, perm: tuple[int, ...]) -> int:
    out = 0
    for i, target in enumerate(perm):
        if (value >> i) & 1:
            out |= 1 << target
    return out


def _sub_byte(byte: int, variant: int, low: tuple[int, ...], high: tuple[int, ...]) -> int:
    """Substitute both nibbles of ``byte``; variant bit 0/1 picks ``high`` for the low/high nibble."""
    lo = (high if variant & 1 else low)[byte & 0xF]
    hi = (high if variant & 2 else low)[byte >> 4]
    return (hi << 4) | lo


ByteTable = tuple[int, ...]  # 256 entries


@dataclass(frozen=True)
class _Compiled:
    # enc[j][v][b]: byte b at byte position j, substituted with variant v, then permuted.
    enc: tuple[tuple[ByteTable, ...], ...]
    # Decryption is inverse-permute then inverse-substitute per round; regrouped as
    # iperm, then (isub then iperm) 15 times, then a last isub.
    iperm: tuple[ByteTable, ...]
    isub_iperm: tuple[tuple[ByteTable, ...], ...]
    isub: tuple[tuple[ByteTable, ...], ...]


@cache
def _compiled(name: str) -> _Compiled:
    t = sta_tables(name)
    inv_perm = [0] * 64
    for i, target in enumerate(t.perm):
        inv_perm[target] = i
    inv_perm_t = tuple(inv_perm)
    inv1 = tuple(t.sub1.index(v) for v in range(16))
    inv2 = tuple(t.sub2.index(v) for v in range(16))
    enc = []
    iperm = []
    isub_iperm = []
    isub = []
    for j in range(8):
        shift = 8 * j
        enc.append(tuple(
            tuple(_permute(_sub_byte(b, v, t.sub1, t.sub2) << shift, t.perm) for b in range(256))
            for v in range(4)
        ))
        iperm.append(tuple(_permute(b << shift, inv_perm_t) for b in range(256)))
        isub_iperm.append(tuple(
            tuple(_permute(_sub_byte(b, v, inv1, inv2) << shift, inv_perm_t) for b in range(256))
            for v in range(4)
        ))
        isub.append(tuple(tuple(_sub_byte(b, v, inv1, inv2) << shift for b in range(256)) for v in range(4)))
    return _Compiled(tuple(enc), tuple(iperm), tuple(isub_iperm), tuple(isub))


# --- EA07 (STA) -------------------------------------------------------------------------


def _rotl64(x: int, n: int) -> int:
    n %= 64
    return ((x << n) | (x >> (64 - n))) & MASK64


def round_keys(decoder_key: int) -> tuple[int, ...]:
    """The 16 EA07 round keys: ~key rotated right 12, then rotated left 1 per round."""
    k = _rotl64(decoder_key ^ MASK64, 64 - 12)
    return tuple(_rotl64(k, r) for r in range(16))


def _variants(round_key: int) -> tuple[int, ...]:
    # Byte j of the block holds nibbles 2j and 2j+1; their key nibbles' top bits are 8j+3, 8j+7.
    return tuple(((round_key >> (8 * j + 3)) & 1) | (((round_key >> (8 * j + 7)) & 1) << 1) for j in range(8))


Schedule = tuple[tuple[ByteTable, ...], ...]


@lru_cache(maxsize=8192)
def _schedule(decoder_key: int, tables: str) -> tuple[Schedule, Schedule, tuple[ByteTable, ...]]:
    """Per-key lookup tables for encryption and decryption (cached: one meter, many tokens)."""
    c = _compiled(tables)
    variants = [_variants(k) for k in round_keys(decoder_key)]
    enc = tuple(tuple(c.enc[j][v[j]] for j in range(8)) for v in variants)
    # Decryption undoes rounds 15..0; rounds 15..1 fuse with the next inverse permutation.
    dec = tuple(tuple(c.isub_iperm[j][variants[r][j]] for j in range(8)) for r in range(15, 0, -1))
    last = tuple(c.isub[j][variants[0][j]] for j in range(8))
    return enc, dec, last


def ea07_encrypt(decoder_key: int, block: int, tables: str = DEFAULT_TABLES) -> int:
    enc, _, _ = _schedule(decoder_key, tables)
    x = block
    for t0, t1, t2, t3, t4, t5, t6, t7 in enc:
        x = (t0[x & 255] | t1[(x >> 8) & 255] | t2[(x >> 16) & 255] | t3[(x >> 24) & 255]
             | t4[(x >> 32) & 255] | t5[(x >> 40) & 255] | t6[(x >> 48) & 255] | t7[x >> 56])
    return x


def ea07_decrypt(decoder_key: int, block: int, tables: str = DEFAULT_TABLES) -> int:
    _, dec, last = _schedule(decoder_key, tables)
    p = _compiled(tables).iperm
    x = 0
    for j in range(8):
        x |= p[j][(block >> (8 * j)) & 255]
    for t0, t1, t2, t3, t4, t5, t6, t7 in dec:
        x = (t0[x & 255] | t1[(x >> 8) & 255] | t2[(x >> 16) & 255] | t3[(x >> 24) & 255]
             | t4[(x >> 32) & 255] | t5[(x >> 40) & 255] | t6[(x >> 48) & 255] | t7[x >> 56])
    y = 0
    for j in range(8):
        y |= last[j][(x >> (8 * j)) & 255]
    return y


# --- class bits -------------------------------------------------------------------------

_CLASS_BITS = (1 << 27) | (1 << 28)


def insert_class(cipher_block: int, token_class: int) -> int:
    """The 66-bit token: class in bits 28 (high) and 27 (low); the block's bits 28, 27 go to 65, 64.

    Class-bit order confirmed by the class-1 compliance tokens (not encrypted, so their
    class is readable) and the public nxtgrid/nxt-sts ``TokenGenerator.transpose66BitString``.
    """
    moved = (((cipher_block >> 28) & 1) << 65) | (((cipher_block >> 27) & 1) << 64)
    return moved | (cipher_block & ~_CLASS_BITS & MASK64) | ((token_class & 3) << 27)


def remove_class(token: int) -> tuple[int, int]:
    """(class, 64-bit cipher block) of a 66-bit token."""
    token_class = (token >> 27) & 3
    block = (token & MASK64 & ~_CLASS_BITS) | (((token >> 65) & 1) << 28) | (((token >> 64) & 1) << 27)
    return token_class, block


# --- CRC ----------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """STS CRC-16: reflected poly 0xA001, init 0xFFFF, the two result bytes swapped."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return ((crc & 0xFF) << 8) | (crc >> 8)


def token_crc(token_class: int, block_without_crc: int) -> int:
    """CRC of the 50 bits class|subclass|...|amount (``block_without_crc`` = block >> 16)."""
    return crc16(((token_class << 48) | block_without_crc).to_bytes(7, "big"))


# --- DKGA02 -------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def dkga02(vending_key: bytes, key_type: int, sgc: str, tariff_index: str, krn: int, pan_block: str) -> int:
    """The decoder key (as the 64-bit STA key) of DKGA02.

    PAN block and control block are 16 hex digits each; DK = DES(vk, X) ^ X ^ vk with
    X = PAN ^ CTL. Vending systems print the result byte-reversed (see ``decoder_key_hex``);
    the STA key is the unreversed DES output read big-endian.
    """
    if len(vending_key) != 8:
        raise StsError("a DKGA02 vending key is 8 bytes (16 hex digits)")
    control = f"{key_type:X}{sgc}{tariff_index}{krn:X}FFFFFF"
    if len(pan_block) != 16 or len(control) != 16:
        raise StsError("DKGA02 PAN and control blocks must be 16 digits each")
    x = int(pan_block, 16) ^ int(control, 16)
    encrypted = int.from_bytes(des.encrypt_block(vending_key, x.to_bytes(8, "big")), "big")
    return encrypted ^ x ^ int.from_bytes(vending_key, "big")


def decoder_key_hex(decoder_key: int) -> str:
    """The decoder key as vending systems print it (the STA key's bytes, least significant first)."""
    return decoder_key.to_bytes(8, "little").hex()


def decoder_key_from_hex(text: str) -> int:
    """Inverse of ``decoder_key_hex``: a printed decoder key to the 64-bit STA key."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise StsError(f"a decoder key is 16 hex digits (got {text!r})") from None
    if len(raw) != 8:
        raise StsError("a decoder key is 16 hex digits")
    return int.from_bytes(raw, "little")
