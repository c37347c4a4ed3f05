"""Phone numbers as customers type them, made E.164.

Customers type their mobile-money number the way they say it: 9 digits in Cameroon
(6XXXXXXXX), 8 in Gabon (0XXXXXXX), sometimes with the country code or a +. The
caller's own number tells us which country they mean.
"""
from __future__ import annotations

import re

# [0-9], not \d: \d also matches Arabic-Indic, fullwidth and other digits, which pass a
# check and then break every system downstream (a payment request, an SMS provider).
E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def is_e164(number: str) -> bool:
    """The one E.164 check: ``+``, a country code, 8 to 15 ASCII digits in all."""
    return E164.fullmatch(number) is not None

# Country calling codes of the countries Guichet serves first, and their national lengths.
NATIONAL_DIGITS = {"237": 9, "241": 8, "225": 10, "221": 9, "229": 10, "235": 8, "242": 9, "243": 9}


def country_code(number: str) -> str | None:
    for code in NATIONAL_DIGITS:
        if number.startswith("+" + code):
            return code
    return None


def mobile_number(typed: str, caller: str) -> str | None:
    """``typed`` as E.164, reading a national number in the caller's country; None if it
    cannot be a phone number."""
    digits = re.sub(r"[\s.-]", "", typed)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+"):
        return digits if is_e164(digits) else None
    if not digits.isdigit() or not digits.isascii():
        return None
    code = country_code(caller)
    if code and len(digits) == NATIONAL_DIGITS[code]:
        return f"+{code}{digits}"
    if code and digits.startswith(code) and len(digits) == len(code) + NATIONAL_DIGITS[code]:
        return "+" + digits
    return None
