import pytest

from utility.phones import mobile_number


@pytest.mark.parametrize(
    "typed, caller, expected",
    [
        ("670000001", "+237699000001", "+237670000001"),
        ("6 70 00 00 01", "+237699000001", "+237670000001"),
        ("237670000001", "+237699000001", "+237670000001"),
        ("+237670000001", "+24107000003", "+237670000001"),
        ("00237670000001", "+24107000003", "+237670000001"),
        ("07123456", "+24107000003", "+24107123456"),
        ("67000000", "+237699000001", None),  # 8 digits is not a Cameroonian number
        ("abc", "+237699000001", None),
        ("+12", "+237699000001", None),
        ("670000001", "+33612345678", None),  # a country we do not know the numbering of
    ],
)
def test_typed_numbers_become_e164(typed, caller, expected):
    assert mobile_number(typed, caller) == expected
