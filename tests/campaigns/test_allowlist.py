"""An allow-list is checked whole, like the customer file: every bad line named by its
number, and nothing changes while one is bad."""
from __future__ import annotations

import pytest

from tests.campaigns.conftest import AMINA, JEAN, JEAN_METER, OPEN, definition
from utility.campaigns.service import AllowlistError, Campaigns, UnknownCampaign


def refusal(campaigns: Campaigns, data: bytes) -> list[str]:
    with pytest.raises(AllowlistError) as refused:
        campaigns.set_allowlist("GRATUIT", data)
    return [str(error) for error in refused.value.errors]


def test_one_bad_line_refuses_the_file_and_the_list_in_place_stays(campaigns: Campaigns) -> None:
    campaigns.create(definition())
    campaigns.set_allowlist("GRATUIT", f"{JEAN.account_number}\n".encode())
    lines = f"numero\n{AMINA.account_number}\n0140 000 0012\nCM-1000001;x\n\n01400000099\n{'9' * 21}\n"
    assert refusal(campaigns, lines.encode()) == [
        "line 3: '0140 000 0012' is not an account number (letters, digits, '-' and '/', 20 at most) nor a meter "
        "number",
        "line 4: 'CM-1000001;x' is not an account number (letters, digits, '-' and '/', 20 at most) nor a meter "
        "number",
        f"line 7: '{'9' * 21}' is not an account number (letters, digits, '-' and '/', 20 at most) nor a meter number",
    ]
    assert campaigns.get("GRATUIT").allowlist == 1  # type: ignore[union-attr]
    assert campaigns.register("GRATUIT", JEAN_METER, JEAN.phone, "ussd", "fr", now=OPEN).accepted  # the old list


def test_numbers_the_customer_base_does_not_know_are_refused(campaigns: Campaigns) -> None:
    campaigns.create(definition())
    assert refusal(campaigns, f"{JEAN_METER},\n01400000099\nCM-9\n".encode()) == [
        "line 2: no account or meter 01400000099 in the customer base",
        "line 3: no account or meter CM-9 in the customer base",
    ]
    assert campaigns.get("GRATUIT").allowlist == 0  # type: ignore[union-attr]


def test_several_values_on_a_line_or_no_number_at_all(campaigns: Campaigns) -> None:
    campaigns.create(definition())
    assert refusal(campaigns, f"{JEAN_METER},{JEAN.account_number}\n".encode()) == [
        "line 1: one number a line, found 2 values"]
    assert refusal(campaigns, b"\n\n") == [
        "line 1: the file holds no number (send a header line alone, such as 'number', to lift the allow-list)"]
    assert refusal(campaigns, b"CM-1000001\n\xff\n") == [
        "line 2: this line is not UTF-8 text: export the file as 'CSV UTF-8'"]


def test_a_list_for_no_campaign(campaigns: Campaigns) -> None:
    with pytest.raises(UnknownCampaign):
        campaigns.set_allowlist("NOPE", f"{JEAN_METER}\n".encode())


def test_a_big_list_is_written_in_chunks(campaigns: Campaigns) -> None:
    campaigns.create(definition())
    numbers = [JEAN_METER, AMINA.account_number] * 1500  # repeats are harmless
    assert campaigns.set_allowlist("GRATUIT", ("\n".join(numbers) + "\n").encode()) == 2
