"""Meter numbers: Luhn check digits, validation and the STS PAN.

A meter number is an 11-digit DRN (last digit: Luhn check over the first 10) or a
13-digit number (last digit: Luhn check over the first 12). The STS PAN is the IIN
(600727 for 11-digit DRNs) + DRN + a Luhn check digit over the 17 digits.
"""
from __future__ import annotations

IIN_11_DIGIT = "600727"
METER_LENGTHS = (11, 13)


def luhn_check_digit(digits: str) -> int:
    """The Luhn digit that makes ``digits + digit`` valid."""
    total = 0
    # Walk right to left; the digit next to the (future) check digit is doubled.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def meter_problem(number: str) -> str | None:
    """Why ``number`` is not a valid meter number, or None when it is."""
    if not number.isdigit() or not number.isascii():
        return "meter number must contain digits only"
    if len(number) not in METER_LENGTHS:
        return "meter number must have 11 or 13 digits"
    if luhn_check_digit(number[:-1]) != int(number[-1]):
        return "meter number check digit is wrong"
    return None


def is_valid_meter(number: str) -> bool:
    return meter_problem(number) is None


def with_check_digit(body: str) -> str:
    """``body`` followed by its Luhn check digit (10 digits -> a valid 11-digit DRN)."""
    return body + str(luhn_check_digit(body))


def pan_for(meter_number: str, iin: str = IIN_11_DIGIT) -> str:
    """The 18-digit STS PAN of an 11-digit meter: IIN + DRN + check digit.

    13-digit meters carry a different IIN layout that only the utility's vending server
    knows; the built-in engine takes their PAN from configuration instead.
    """
    problem = meter_problem(meter_number)
    if problem:
        raise ValueError(problem)
    if len(meter_number) != 11:
        raise ValueError("the PAN of a 13-digit meter must come from the vending server")
    return with_check_digit(iin + meter_number)
