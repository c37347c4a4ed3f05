"""The GSM-7 counts every screen and SMS is measured with agree with the codec itself."""
from __future__ import annotations

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

from sms.gsm import gsm7_septets, sms_segments


def by_codec(text: str) -> int | None:
    try:
        return len(text.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


def test_every_character_counts_as_the_codec_encodes_it():
    every = [chr(code) for code in range(0x10000) if not 0xD800 <= code < 0xE000] + ["😀", "𝄞"]
    assert [gsm7_septets(char) for char in every] == [by_codec(char) for char in every]


def test_a_screen_counts_escaped_characters_twice_and_any_foreign_one_ends_gsm7():
    assert gsm7_septets("Réf. 5 000 FCFA") == 15
    assert gsm7_septets("Total: 5 000 € [TVA]") == 20 + 3
    assert gsm7_septets("Noël Ngô") is None  # ô is not in GSM-7
    assert gsm7_septets("") == 0


def test_segments_follow_the_encoding():
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # two septets each
    assert sms_segments("ô" * 70) == 1 and sms_segments("ô" * 71) == 2  # UCS-2
