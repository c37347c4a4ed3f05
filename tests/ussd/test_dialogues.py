"""The customer's dialogues, screen by screen."""
from __future__ import annotations

from state import journal
from state.store import get_redis
from tests.ussd.conftest import NOBODY, ONE_METER, POSTPAID_ONLY, SEVERAL, Phone


def test_dial_shows_the_main_menu_in_french(dial):
    phone = dial()
    assert not phone.ended
    assert phone.screen.splitlines() == [
        "Guichet",
        "1. Acheter des unités",
        "2. Payer une facture",
        "3. Crédits gratuits",
        "4. Coupures et incidents",
        "5. Mon compte",
        "6. Langue / Language",
    ]


def test_capabilities_not_built_yet_say_so_honestly(dial):
    for choice, feature in [("3", "Crédits gratuits"), ("4", "Coupures et incidents")]:
        phone = dial().send(choice)
        assert phone.ended
        assert phone.screen.startswith(f"{feature}: disponible prochainement")


def test_my_account_offers_accounts_token_resend_and_payments(dial):
    assert dial().send("5").screen.splitlines()[:4] == [
        "Mon compte:", "1. Mes comptes", "2. Renvoyer mon dernier jeton", "3. Mes derniers paiements"]


def test_my_account_with_one_meter_goes_straight_to_it(dial):
    phone = dial(ONE_METER).send("5").send("1")
    assert not phone.ended
    lines = phone.screen.splitlines()
    assert lines[0] == "Compteur ****0017 (prépayé)" or lines[0].startswith("Compteur ****")
    assert "1000000001" not in phone.screen  # masked but for the last 4 digits
    assert "Mballa Ateba Jeanne" in phone.screen
    assert lines[-2:] == ["0. Retour", "00. Accueil"]
    assert phone.send("0").screen.startswith("Mon compte:")


def test_my_account_lists_several_accounts_then_details_one(dial):
    phone = dial(SEVERAL).send("5").send("1")
    lines = phone.screen.splitlines()
    assert lines[0] == "Vos comptes:"
    assert lines[1].startswith("1. Compteur ****")
    assert lines[3] == "3. Compte ****0003"
    phone.send("3")
    assert phone.screen.splitlines()[:4] == [
        "Compte ****0003",
        "Ondo Nguema Paul",
        "Reste à payer: 48 350 FCFA",
        "A payer avant le 15/12/2026",
    ]
    assert phone.send("0").screen.startswith("Vos comptes:")  # back to the list, not the menu
    assert phone.send("0").screen.startswith("Mon compte:")


def test_postpaid_detail_in_english_after_choosing_english(dial):
    phone = dial(POSTPAID_ONLY).send("6")
    assert phone.screen.splitlines()[1:3] == ["1. Francais", "2. English"]
    phone.send("2")
    assert phone.screen.startswith("Language saved: English.\nGuichet\n1. Buy prepaid units")
    phone.send("5").send("1")
    assert "Balance due: 12 000 XAF" in phone.screen
    assert "Due by 01/12/2026" in phone.screen


def test_language_is_remembered_for_the_phone_number(dial):
    dial(POSTPAID_ONLY).send("6").send("2")
    assert dial(POSTPAID_ONLY).screen.splitlines()[1] == "1. Buy prepaid units"
    assert dial(ONE_METER).screen.splitlines()[1] == "1. Acheter des unités"  # others unchanged


def test_a_phone_with_no_account_is_told_how_to_link_one(dial):
    phone = dial(NOBODY).send("5").send("1")
    assert phone.ended
    assert "Aucun compte n'est lié au +237699999999" in phone.screen


def test_double_zero_goes_home_from_anywhere(dial):
    phone = dial(SEVERAL).send("5").send("1").send("1")
    assert phone.send("00").screen.startswith("Guichet\n1.")


def test_garbage_gets_a_hint_and_the_same_screen(dial):
    phone = dial().send("banane")
    assert phone.screen.startswith("Choix invalide, réessayez.\nGuichet\n1.")
    assert not phone.ended
    phone.send("9")
    assert phone.screen.startswith("Choix invalide, réessayez.")
    phone.send("5")  # a valid choice clears the hint and the count
    assert phone.screen.startswith("Mon compte:")


def test_three_invalid_tries_end_the_session_politely(dial):
    phone = dial().send("x").send("").send("77")
    assert phone.ended
    assert phone.screen == "Trop d'essais invalides. Composez *384# pour recommencer. Au revoir!"


def test_invalid_count_resets_after_a_valid_input(dial):
    phone = dial(SEVERAL).send("x").send("x").send("5").send("x").send("x")
    assert not phone.ended and phone.screen.startswith("Choix invalide")


def test_shortcut_dial_string_jumps_to_the_screen(app, client, customers):
    app.config["SERVICE_CODES"] = ["*384#"]  # shortcuts only after a configured code (issue 8)
    phone = Phone(client, SEVERAL, code="*384*5*1*3#").dial()
    assert phone.screen.startswith("Compte ****0003")
    assert phone.send("0").screen.startswith("Vos comptes:")


def test_shortcut_inputs_in_the_first_text_are_applied(client, customers):
    phone = Phone(client, SEVERAL).post("5*1*3")
    assert phone.screen.startswith("Compte ****0003")
    phone.inputs = ["5", "1", "3"]
    assert phone.send("00").screen.startswith("Guichet")


def test_configured_shared_code_is_not_taken_for_a_shortcut(app, client, customers):
    app.config["SERVICE_CODES"] = ["*384*1234#"]
    assert Phone(client, ONE_METER, code="*384*1234#").dial().screen.startswith("Guichet\n1.")
    assert Phone(client, ONE_METER, code="*384*1234*5#").dial().screen.startswith("Mon compte:")


def test_a_dropped_session_is_offered_back_on_the_next_dial(dial):
    dial(SEVERAL).send("5").send("1").send("3")  # the customer drops on the account screen
    phone = dial(SEVERAL)
    assert phone.screen.splitlines() == ["Vous aviez quitté en cours de route.", "1. Reprendre", "2. Menu principal"]
    phone.send("1")
    assert phone.screen.startswith("Compte ****0003")
    assert phone.send("0").screen.startswith("Vos comptes:")  # its history came back too


def test_declining_to_resume_goes_to_the_main_menu_and_forgets(dial):
    dial(SEVERAL).send("5").send("1").send("3")
    assert dial(SEVERAL).send("2").screen.startswith("Guichet\n1.")
    assert dial(SEVERAL).screen.startswith("Guichet\n1.")


def test_no_resume_offer_after_a_session_that_ended(dial):
    dial(ONE_METER).send("3")  # END screen
    assert dial(ONE_METER).screen.startswith("Guichet")


def test_no_resume_offer_after_the_resume_window(app, dial):
    dial(SEVERAL).send("5").send("1").send("3")
    get_redis(app).delete(*get_redis(app).keys("guichet:{+237699000102}:resume"))
    assert dial(SEVERAL).screen.startswith("Guichet")


def test_every_move_is_journaled(app, dial):
    dial(SEVERAL).send("5").send("1").send("3").send("0")
    moves = [(e["trigger"], e["source"], e["dest"]) for e in journal.read(get_redis(app)) if e["kind"] == "ussd.transition"]
    assert moves == [("account_menu", "main", "account_menu"), ("my_accounts", "account_menu", "accounts"),
                     ("pick_account", "accounts", "account"), ("back", "account", "accounts")]


def test_a_retried_hop_gets_the_same_screen_and_acts_once(app, dial):
    phone = dial(SEVERAL).send("5").send("1").send("3")
    first = phone.body
    phone.post("5*1*3")  # the gateway re-sends the same hop
    assert phone.body == first
    moves = [e for e in journal.read(get_redis(app)) if e["kind"] == "ussd.transition"]
    assert len(moves) == 3


def test_an_old_hop_arriving_late_gets_its_original_answer(dial):
    phone = dial(SEVERAL)
    menu = phone.body
    phone.send("5")
    assert phone.post("").body == menu
