"""Issue 9, item 3: never offer what will be refused, and navigation keys always get an
answer, never a strike (three strikes end the session)."""
from __future__ import annotations

from tests.ussd.conftest import ONE_METER, POSTPAID_ONLY, SEVERAL
from utility.services import services


def test_a_bill_with_nothing_due_offers_no_pay_all(app, dial):
    services(app).customers.add_to_balance("C-3000000001", -12_000)
    phone = dial(POSTPAID_ONLY).send("2").send("1")
    lines = phone.screen.splitlines()
    assert lines[0].startswith("Compte ****0001") and "Rien à payer" in phone.screen, phone.screen
    assert "1. Autre montant" in lines and not any("Tout payer" in line for line in lines)
    phone.send("1")
    assert phone.screen.startswith("Montant en FCFA"), phone.screen


def test_a_bill_with_something_due_still_offers_to_pay_it_all(dial):
    lines = dial(POSTPAID_ONLY).send("2").send("1").screen.splitlines()
    assert "1. Tout payer" in lines and "2. Autre montant" in lines, lines


def test_a_bill_with_nothing_due_in_english(app, dial):
    services(app).customers.add_to_balance("C-3000000001", -12_000)
    phone = dial(POSTPAID_ONLY).send("6").send("2").send("2").send("1")
    assert phone.screen.splitlines() == ["Account ****0001", "Nothing due at the moment.", "1. Another amount",
                                         "0. Back", "00. Home"], phone.screen


def test_back_and_home_on_the_main_menu_say_where_the_customer_is_and_cost_no_strike(dial):
    phone = dial(ONE_METER)
    for key in ("0", "00", "0", "00"):  # four: three strikes would have ended the session
        phone.send(key)
        assert not phone.ended
        assert phone.screen.splitlines()[:2] == ["Déjà au menu principal.", "Guichet"], phone.screen
    assert phone.send("1").screen.startswith("Acheter pour:")


def test_98_where_there_is_no_next_page_says_so_and_costs_no_strike(dial):
    phone = dial(SEVERAL).send("5")  # my account: a menu of one page
    for _ in range(4):
        phone.send("98")
        assert not phone.ended and phone.screen.startswith("Pas d'autre page.\nMon compte:"), phone.screen
    assert phone.send("0").screen.startswith("Guichet")


def test_navigation_keys_in_english(dial):
    phone = dial(ONE_METER).send("6").send("2")  # English
    assert phone.send("0").screen.startswith("Already on the main menu."), phone.screen
    assert phone.send("98").screen.startswith("No more pages."), phone.screen
    assert not phone.ended


def test_98_typed_as_an_amount_is_an_amount(dial):
    phone = dial(ONE_METER).send("1").send("1").send("1")
    assert phone.send("98").screen.startswith("Montant trop bas: minimum 1 000 FCFA."), phone.screen


def test_home_on_the_resume_offer_goes_to_the_main_menu(dial):
    dial(SEVERAL).send("5").send("1").send("3")  # dropped mid-flow
    phone = dial(SEVERAL)
    assert phone.screen.startswith("Vous aviez quitté en cours de route.")
    assert phone.send("00").screen.startswith("Guichet\n1."), phone.screen
