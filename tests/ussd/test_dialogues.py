"""The customer's dialogues, screen by screen."""
from __future__ import annotations

from state import journal
from state.store import get_redis
from tests.ussd.conftest import DUE_SOON, NOBODY, ONE_METER, OVERDUE, POSTPAID_ONLY, SEVERAL, Phone, day
from utility.meters import with_check_digit

ONE_METERS_METER = with_check_digit("1000000001")  # as tests.ussd.conftest.prepaid numbers it


def test_dial_shows_the_main_menu_in_french(dial):
    phone = dial()
    assert not phone.ended
    assert phone.screen.splitlines() == [
        "Eneo",  # the utility's name (UTILITY_NAME), not the product's
        "1. Acheter des unités",
        "2. Payer une facture",
        "3. Mon compte",
        "4. Langue / Language",
    ]


def test_capabilities_not_built_yet_are_not_offered(dial):
    """No entry ends the call with "coming soon": what is not built is not on the menu."""
    phone = dial()
    assert "Crédits" not in phone.screen and "incidents" not in phone.screen
    phone.send("5")
    assert not phone.ended and phone.screen.startswith("Choix invalide, réessayez.\nEneo\n1.")


def test_my_account_offers_accounts_token_resend_and_payments(dial):
    assert dial().send("3").screen.splitlines()[:4] == [
        "Mon compte:", "1. Mes comptes", "2. Renvoyer mon dernier code", "3. Mes derniers paiements"]


def test_my_account_with_one_meter_goes_straight_to_it(dial):
    phone = dial(ONE_METER).send("3").send("1")
    assert not phone.ended
    assert phone.screen.splitlines() == [
        f"Compteur {ONE_METERS_METER} (prépayé)",  # the customer's own meter, in full
        "Mballa Ateba Jeanne",  # the holder's name as every screen shows it
        "Tarif: Domestique prépayé",  # the tariff's name, not its code ("prepaid")
        "Région: Littoral",
        "0. Retour",
        "00. Accueil",
    ]
    assert phone.send("0").screen.startswith("Mon compte:")


def test_my_account_lists_several_accounts_then_details_one(dial):
    phone = dial(SEVERAL).send("3").send("1")
    lines = phone.screen.splitlines()
    assert lines[0] == "Vos comptes:"
    assert lines[1:4] == [f"1. Compteur {with_check_digit('2000000001')}",
                          f"2. Compteur {with_check_digit('2000000002')}", "3. Compte C-2000000003"]
    phone.send("3")
    assert phone.screen.splitlines()[:4] == [
        "Compte C-2000000003",
        "Ondo Nguema Paul",
        "Reste à payer: 48 350 FCFA",
        f"A payer avant le {day(DUE_SOON)}",
    ]
    assert phone.send("0").screen.startswith("Vos comptes:")  # back to the list, not the menu
    assert phone.send("0").screen.startswith("Mon compte:")


def test_postpaid_detail_in_english_after_choosing_english(dial):
    phone = dial(POSTPAID_ONLY).send("4")
    assert phone.screen.splitlines()[1:3] == ["1. Francais", "2. English"]
    phone.send("2")
    assert phone.screen.startswith("Language saved: English.\nEneo\n1. Buy prepaid units")
    phone.send("3").send("1")
    assert phone.screen.splitlines()[:4] == [
        "Account C-3000000001", "Ondo Nguema Paul", "Balance due: 12,000 FCFA",
        f"Overdue since {day(OVERDUE)}: risk of cut-off.",
    ]


def test_language_is_remembered_for_the_phone_number(dial):
    dial(POSTPAID_ONLY).send("4").send("2")
    assert dial(POSTPAID_ONLY).screen.splitlines()[1] == "1. Buy prepaid units"
    assert dial(ONE_METER).screen.splitlines()[1] == "1. Acheter des unités"  # others unchanged


def test_a_phone_with_no_account_is_told_how_to_link_one(dial):
    phone = dial(NOBODY).send("3").send("1")
    assert phone.ended
    assert "Aucun compte n'est lié au +237699999999" in phone.screen


def test_double_zero_goes_home_from_anywhere(dial):
    phone = dial(SEVERAL).send("3").send("1").send("1")
    assert phone.send("00").screen.startswith("Eneo\n1.")


def test_garbage_gets_a_hint_and_the_same_screen(dial):
    phone = dial().send("banane")
    assert phone.screen.startswith("Choix invalide, réessayez.\nEneo\n1.")
    assert not phone.ended
    phone.send("9")
    assert phone.screen.startswith("Choix invalide, réessayez.")
    phone.send("3")  # a valid choice clears the hint and the count
    assert phone.screen.startswith("Mon compte:")


def test_three_invalid_tries_end_the_session_politely(dial):
    phone = dial().send("x").send("").send("77")
    assert phone.ended
    assert phone.screen == "Trop d'essais invalides. Composez *384# pour recommencer. Au revoir!"


def test_invalid_count_resets_after_a_valid_input(dial):
    phone = dial(SEVERAL).send("x").send("x").send("3").send("x").send("x")
    assert not phone.ended and phone.screen.startswith("Choix invalide")


def test_shortcut_dial_string_jumps_to_the_screen(app, client, customers):
    app.config["SERVICE_CODES"] = ["*384#"]  # shortcuts only after a configured code (issue 8)
    phone = Phone(client, SEVERAL, code="*384*3*1*3#").dial()
    assert phone.screen.startswith("Compte C-2000000003")
    assert phone.send("0").screen.startswith("Vos comptes:")


def test_shortcut_inputs_in_the_first_text_are_applied(client, customers):
    phone = Phone(client, SEVERAL).post("3*1*3")
    assert phone.screen.startswith("Compte C-2000000003")
    phone.inputs = ["3", "1", "3"]
    assert phone.send("00").screen.startswith("Eneo")


def test_configured_shared_code_is_not_taken_for_a_shortcut(app, client, customers):
    app.config["SERVICE_CODES"] = ["*384*1234#"]
    assert Phone(client, ONE_METER, code="*384*1234#").dial().screen.startswith("Eneo\n1.")
    assert Phone(client, ONE_METER, code="*384*1234*3#").dial().screen.startswith("Mon compte:")


def test_a_dropped_session_is_offered_back_on_the_next_dial(dial):
    dial(SEVERAL).send("3").send("1").send("3")  # the customer drops on the account screen
    phone = dial(SEVERAL)
    assert phone.screen.splitlines() == ["Vous aviez quitté en cours de route.", "1. Reprendre", "2. Menu principal"]
    phone.send("1")
    assert phone.screen.startswith("Compte C-2000000003")
    assert phone.send("0").screen.startswith("Vos comptes:")  # its history came back too


def test_declining_to_resume_goes_to_the_main_menu_and_forgets(dial):
    dial(SEVERAL).send("3").send("1").send("3")
    assert dial(SEVERAL).send("2").screen.startswith("Eneo\n1.")
    assert dial(SEVERAL).screen.startswith("Eneo\n1.")


def test_no_resume_offer_after_a_session_that_ended(dial):
    assert dial(NOBODY).send("3").send("1").ended  # "no account linked": an END screen
    assert dial(NOBODY).screen.startswith("Eneo")


def test_no_resume_offer_after_the_resume_window(app, dial):
    dial(SEVERAL).send("3").send("1").send("3")
    get_redis(app).delete(*get_redis(app).keys("guichet:{+237699000102}:resume"))
    assert dial(SEVERAL).screen.startswith("Eneo")


def test_every_move_is_journaled(app, dial):
    dial(SEVERAL).send("3").send("1").send("3").send("0")
    moves = [(e["trigger"], e["source"], e["dest"]) for e in journal.read(get_redis(app)) if e["kind"] == "ussd.transition"]
    assert moves == [("account_menu", "main", "account_menu"), ("my_accounts", "account_menu", "accounts"),
                     ("pick_account", "accounts", "account"), ("back", "account", "accounts")]


def test_a_retried_hop_gets_the_same_screen_and_acts_once(app, dial):
    phone = dial(SEVERAL).send("3").send("1").send("3")
    first = phone.body
    phone.post("3*1*3")  # the gateway re-sends the same hop
    assert phone.body == first
    moves = [e for e in journal.read(get_redis(app)) if e["kind"] == "ussd.transition"]
    assert len(moves) == 3


def test_an_old_hop_arriving_late_gets_its_original_answer(dial):
    phone = dial(SEVERAL)
    menu = phone.body
    phone.send("3")
    assert phone.post("").body == menu
