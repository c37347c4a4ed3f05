"""Issue 9: screens a customer can check and trust. Each test is a dialogue:
numbers in full, one rule for holders' names, overdue bills said, no internal words,
resume says what was under way."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.ussd.conftest import OVERDUE, POSTPAID_ONLY, SEVERAL, day, prepaid
from ussd.catalogue import languages, text
from utility.meters import with_check_digit
from utility.services import services

TARIFFS = Path(__file__).parents[2] / "utility" / "vending" / "tariffs.toml"


def test_an_overdue_bill_says_since_when_and_what_it_risks(dial):
    phone = dial(POSTPAID_ONLY).send("2").send("1")
    assert phone.screen.splitlines()[:4] == [
        "Compte C-3000000001", "Ondo Nguema Paul", "Reste à payer: 12 000 FCFA",
        f"Echue le {day(OVERDUE)}: risque de coupure.",
    ], phone.screen


def test_the_holders_name_is_shown_the_same_way_on_every_screen(app, dial):
    """One rule (README): the name as the customer base holds it, on the amount screen,
    the confirmation and under "my account" alike."""
    phone = dial(SEVERAL).send("1").send("1")
    on_amount = phone.screen.splitlines()[1]
    on_confirm = phone.send("5000").send("1").send("1").screen.splitlines()[2]
    under_my_account = dial(SEVERAL).send("2").send("3").send("1").send("1").screen.splitlines()[1]
    assert on_amount == on_confirm == under_my_account == "Fotso Kamga Alain"


def test_a_long_name_is_cut_the_same_way_everywhere(app, dial):
    long_name = "Mbarga Ondoua Ngono Jean-Baptiste Marie"
    phone_number = "+237699000777"
    services(app).customers.upsert([prepaid("7000000001", phone_number, name=long_name)])
    on_amount = dial(phone_number).send("1").screen.splitlines()[1]
    under_my_account = dial(phone_number).send("3").send("1").screen.splitlines()[1]
    assert on_amount == under_my_account == "Mbarga Ondoua Ngono Jean-Ba."


def test_a_tariff_is_named_in_the_customers_words(app, dial):
    phone_number = "+237699000778"
    services(app).customers.upsert([prepaid("7000000002", phone_number, tariff="social")])
    lines = dial(phone_number).send("3").send("1").screen.splitlines()
    assert "Tarif: Tarif social" in lines and not any("social" == line.split(": ")[-1] for line in lines)


def test_a_tariff_the_catalogue_does_not_name_is_left_out_rather_than_shown_as_a_code(app, dial):
    phone_number = "+237699000779"
    services(app).customers.upsert([prepaid("7000000003", phone_number, tariff="dom_pp_2024")])
    screen = dial(phone_number).send("3").send("1").screen
    assert "dom_pp_2024" not in screen and "Tarif" not in screen
    assert "Région: Littoral" in screen


@pytest.mark.parametrize("lang", languages())
def test_every_tariff_code_has_a_customer_name_in_every_language(lang):
    codes = set(tomllib.loads(TARIFFS.read_text())) | {"postpaid"}
    for code in codes:
        assert text(lang, f"tariff.{code}"), (lang, code)


def test_resume_says_which_meter_the_purchase_was_for(dial):
    meter = with_check_digit("2000000002")
    dial(SEVERAL).send("1").send("2")  # dropped on the amount screen
    phone = dial(SEVERAL)
    assert phone.screen.splitlines() == [f"Achat pour le compteur {meter} en cours.", "1. Reprendre",
                                         "2. Menu principal"]
    assert phone.send("1").screen.startswith(f"Compteur {meter}\nFotso Kamga Alain\nMontant")


def test_resume_says_which_account_the_payment_was_for_in_english(dial):
    dial(POSTPAID_ONLY).send("4").send("2").send("2").send("1")  # English, then dropped on the balance
    assert dial(POSTPAID_ONLY).screen.splitlines() == [
        "Paying account C-3000000001, not finished.", "1. Continue", "2. Main menu"]


def test_resume_before_a_number_was_given_says_what_the_customer_was_doing(dial):
    from tests.ussd.conftest import NOBODY

    dial(NOBODY).send("2")  # dropped on the account number prompt
    assert dial(NOBODY).screen.startswith("Paiement de facture en cours.\n1. Reprendre")


def test_the_payers_number_typed_is_shown_in_full_before_confirming(dial):
    phone = dial(SEVERAL).send("1").send("1").send("5000").send("1").send("2").send("670000009")
    assert "Payé par +237670000009" in phone.screen.splitlines(), phone.screen


def test_the_token_is_called_code_on_every_french_screen():
    from ussd.catalogue import catalogue

    assert not [key for key, value in catalogue("fr").items() if "jeton" in value.lower()]


def test_in_english_my_meter_in_full_its_holder_and_tariff_in_words(dial):
    from tests.ussd.conftest import ONE_METER

    phone = dial(ONE_METER).send("4").send("2")
    assert phone.screen.splitlines()[1:] == ["Eneo", "1. Buy prepaid units", "2. Pay a bill", "3. My account",
                                             "4. Language / Langue"]
    assert phone.send("3").send("1").screen.splitlines()[:4] == [
        f"Meter {with_check_digit('1000000001')} (prepaid)", "Mballa Ateba Jeanne", "Tariff: Domestic prepaid",
        "Region: Littoral"]


def test_in_english_paying_more_than_is_due_says_the_rest_is_kept_as_credit(dial):
    phone = dial(POSTPAID_ONLY).send("4").send("2").send("2").send("1").send("2").send("15000").send("1")
    assert phone.screen.splitlines()[:5] == ["Pay 15,000 FCFA on:", "Account C-3000000001", "Ondo Nguema Paul",
                                             "Incl. 3,000 as credit.", f"Paid by {POSTPAID_ONLY}"], phone.screen
