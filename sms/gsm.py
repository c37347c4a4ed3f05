"""GSM 03.38 text metrics: what fits on a USSD screen and in an SMS segment.

One character outside GSM-7 switches a whole message to UCS-2, halving what fits,
so every length check goes through here. Encoding uses the `gsm0338` codec's
one-shot encode, which counts the escape characters (^ { } [ ] ~ | \\ €) as two septets.
"""
from __future__ import annotations

import unicodedata

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

USSD_GSM7_LIMIT = 182  # 160 octets of 7-bit characters
USSD_UCS2_LIMIT = 80  # 160 octets of UTF-16 code units


def _alphabet() -> tuple[frozenset[str], frozenset[str]]:
    """The codec's own tables: the characters of one septet, and those of two (escaped)."""
    # The escape character decodes as a space (it prefixes the escaped ones) but the codec
    # writes a lone ESC as one septet.
    single = frozenset(bytes([code]).decode("gsm03.38") for code in range(128)) | {"\x1b"}
    double: set[str] = set()
    for code in range(128):
        try:
            char = (b"\x1b" + bytes([code])).decode("gsm03.38")
        except UnicodeDecodeError:
            continue
        if len(char) == 1 and char not in single:
            double.add(char)
    return single, frozenset(double)


_SINGLE, _DOUBLE = _alphabet()


def gsm7_septets(text: str) -> int | None:
    """Septets ``text`` takes in GSM-7, or None when it cannot be written in GSM-7.

    Counted from the codec's tables rather than by encoding: every screen is measured on
    every hop, and a set test runs in C (tests/sms/test_gsm.py checks it against the codec
    for every character)."""
    if _SINGLE.issuperset(text):
        return len(text)
    septets = 0
    for char in text:
        if char in _SINGLE:
            septets += 1
        elif char in _DOUBLE:
            septets += 2
        else:
            return None
    return septets


def is_gsm7(text: str) -> bool:
    return gsm7_septets(text) is not None


def ucs2_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def screen_size(text: str) -> tuple[int, int]:
    """(length, limit) of a USSD screen in the units its encoding is counted in."""
    septets = gsm7_septets(text)
    if septets is None:
        return ucs2_units(text), USSD_UCS2_LIMIT
    return septets, USSD_GSM7_LIMIT


def fits_screen(text: str) -> bool:
    length, limit = screen_size(text)
    return length <= limit


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` is sent as (what the customer's operator bills)."""
    septets = gsm7_septets(text)
    if septets is None:
        length, single, multi = ucs2_units(text), 70, 67
    else:
        length, single, multi = septets, 160, 153
    if length <= single:
        return 1
    return -(-length // multi)


# Typography that has a plain GSM-7 twin.
_LOOKALIKES = str.maketrans(
    {"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"', "–": "-", "—": "-", "\u00a0": " ", "Œ": "OE", "œ": "oe", "…": "..."}
)


def to_gsm7(text: str) -> str:
    """``text`` with every non-GSM-7 character replaced by its closest GSM-7 spelling.

    For customer data shown on screens (a name like "Noël Ngô"): one such character
    would otherwise cut the whole screen to 80 characters.
    """
    if is_gsm7(text):
        return text
    text = text.translate(_LOOKALIKES)
    out = []
    for char in text:
        if is_gsm7(char):
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(base if base and is_gsm7(base) else "?")
    return "".join(out)


def clip(text: str, limit: int, ellipsis: str = ".") -> str:
    """``text`` cut to at most ``limit`` GSM-7 septets, marked with ``ellipsis`` when cut."""
    if (gsm7_septets(text) or 0) <= limit:
        return text
    while text and (gsm7_septets(text + ellipsis) or 0) > limit:
        text = text[:-1]
    return text.rstrip() + ellipsis
