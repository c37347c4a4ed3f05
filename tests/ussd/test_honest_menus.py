"""Issue 9, item 3: never offer what will be refused, and navigation keys always get an
answer, never a strike (three strikes end the session)."""
from __future__ import annotations

from tests.ussd.conftest import ONE_METER, POSTPAID_ONLY, SEVERAL
from utility.services import services


def test_a_bill_with_nothing_due_offers_no_pay_all(app, dial):
    services(app).customers.add_to_balance("C-3000000001", -12_000)
    phone = dial(POSTPAID_ONLY).send("2").send("1")
    lines = phone.screen.splitlines()
    assert lines[:3] == ["Compte C-3000000001", "Ondo Nguema Paul", "Rien à payer pour le moment."], phone.screen
    assert "1. Autre montant" in lines and not any("Tout payer" in line for line in lines)
    phone.send("1")  # paying ahead: the utility keeps it as a credit (BILL_OVERPAYMENT=credit, the default)
    assert phone.screen.startswith("Montant en FCFA (100 à 10 000 000):"), phone.screen
    phone.send("2000").send("1")
    assert "Dont 2 000 en crédit." in phone.screen.splitlines(), phone.screen


def test_a_utility_that_refuses_overpayment_offers_nothing_on_a_clear_bill(app, dial):
    app.config["BILL_OVERPAYMENT"] = "refuse"
    services(app).customers.add_to_balance("C-3000000001", -12_000)
    phone = dial(POSTPAID_ONLY).send("2").send("1")
    assert phone.screen.splitlines() == ["Compte C-3000000001", "Ondo Nguema Paul", "Rien à payer pour le moment.",
                                         "0. Retour", "00. Accueil"], phone.screen
    assert phone.send("1").screen.startswith("Choix invalide")


def test_a_utility_that_refuses_overpayment_bounds_the_amount_by_the_balance(app, dial):
    app.config["BILL_OVERPAYMENT"] = "refuse"
    phone = dial(POSTPAID_ONLY).send("2").send("1").send("2")
    assert phone.screen.startswith("Reste à payer: 12 000 FCFA\nMontant en FCFA (100 à 12 000):"), phone.screen
    assert phone.send("12001").screen.startswith("Montant trop élevé: maximum 12 000 FCFA."), phone.screen
    phone.send("12000")
    assert phone.screen.startswith("Payer par Mobile Money avec:")


def test_paying_more_than_is_due_says_the_rest_becomes_a_credit(dial):
    phone = dial(POSTPAID_ONLY).send("2").send("1").send("2").send("15000").send("1")
    assert phone.screen.splitlines()[:5] == ["Payer 15 000 FCFA sur:", "Compte C-3000000001", "Ondo Nguema Paul",
                                             "Dont 3 000 en crédit.", f"Payé par {POSTPAID_ONLY}"], phone.screen


def test_a_bill_with_something_due_still_offers_to_pay_it_all(dial):
    lines = dial(POSTPAID_ONLY).send("2").send("1").screen.splitlines()
    assert "1. Tout payer" in lines and "2. Autre montant" in lines, lines


def test_a_bill_with_nothing_due_in_english(app, dial):
    services(app).customers.add_to_balance("C-3000000001", -12_000)
    phone = dial(POSTPAID_ONLY).send("4").send("2").send("2").send("1")
    assert phone.screen.splitlines() == ["Account C-3000000001", "Ondo Nguema Paul", "Nothing due at the moment.",
                                         "1. Another amount", "0. Back", "00. Home"], phone.screen


def test_back_and_home_on_the_main_menu_say_where_the_customer_is_and_cost_no_strike(dial):
    phone = dial(ONE_METER)
    for key in ("0", "00", "0", "00"):  # four: three strikes would have ended the session
        phone.send(key)
        assert not phone.ended
        assert phone.screen.splitlines()[:2] == ["Déjà au menu principal.", "Eneo"], phone.screen
    assert phone.send("1").screen.startswith("Compteur ")


def test_98_where_there_is_no_next_page_says_so_and_costs_no_strike(dial):
    phone = dial(SEVERAL).send("3")  # my account: a menu of one page
    for _ in range(4):
        phone.send("98")
        assert not phone.ended and phone.screen.startswith("Pas d'autre page.\nMon compte:"), phone.screen
    assert phone.send("0").screen.startswith("Eneo")


def test_navigation_keys_in_english(dial):
    phone = dial(ONE_METER).send("4").send("2")  # English
    assert phone.send("0").screen.startswith("Already on the main menu."), phone.screen
    assert phone.send("98").screen.startswith("No more pages."), phone.screen
    assert not phone.ended


def test_98_typed_as_an_amount_is_an_amount(dial):
    phone = dial(ONE_METER).send("1")
    assert phone.send("98").screen.startswith("Montant trop bas: minimum 1 000 FCFA."), phone.screen


def test_home_on_the_resume_offer_goes_to_the_main_menu(dial):
    dial(SEVERAL).send("3").send("1").send("3")  # dropped mid-flow
    phone = dial(SEVERAL)
    assert phone.screen.startswith("Vous aviez quitté en cours de route.")
    assert phone.send("00").screen.startswith("Eneo\n1."), phone.screen
