"""Buying units and paying a bill, as the customer walks it: dial -> menu -> 1 -> meter
-> amount -> quote -> payer -> confirm -> END (the token comes by SMS)."""
from __future__ import annotations

from state import switches
from state.store import get_redis
from tests.ussd.conftest import NOBODY, ONE_METER, POSTPAID_ONLY, SEVERAL
from utility.meters import with_check_digit
from utility.services import services

UNKNOWN_METER = with_check_digit("0149999999")


def order_of(app, phone):
    (order,) = services(app).orders.recent(phone, count=1)
    return order


def test_buy_units_for_my_meter_to_the_end(app, dial):
    phone = dial(ONE_METER).send("1")
    assert phone.screen.splitlines()[:3] == ["Acheter pour:", "1. Compteur ****0017", "2. Autre compteur"]
    phone.send("1")
    assert phone.screen.splitlines()[:3] == ["Compteur ****0017", "Mb**** At*** Je****", "1. Continuer"]
    phone.send("1")
    assert phone.screen.startswith("Montant en FCFA (1 000 à 500 000):")
    phone.send("5000")
    lines = phone.screen.splitlines()
    assert lines[0] == "5 000 FCFA = 48,9 kWh"  # (5000 - 429 fee) / (91.17 x 1.025 tax)
    # What the amount includes, with its currency; the monthly fee named as such.
    assert lines[1] == "Dont Frais fixes du mois 429, Taxe communale 111 FCFA" and "1. Payer" in lines
    phone.send("1")
    assert phone.screen.splitlines()[:3] == ["Payer par Mobile Money avec:", "1. Ce numéro (****0101)", "2. Un autre numéro"]
    phone.send("1")
    assert phone.screen.startswith("Acheter 5 000 FCFA pour le compteur ****0017, payé par ****0101?\n1. Confirmer\n2. Annuler")
    phone.send("1")
    assert phone.ended
    order = order_of(app, ONE_METER)
    assert phone.screen == (f"Validez le paiement de 5 000 FCFA sur votre téléphone. "
                            f"Le jeton arrive par SMS. Réf. {order.reference}")
    assert (order.state, order.kind, order.amount, order.payer) == ("payment_pending", "units", 5_000, ONE_METER)


def test_the_confirm_hop_retried_by_the_gateway_places_one_order(app, dial):
    phone = dial(ONE_METER).send("1").send("1").send("1").send("5000").send("1").send("1").send("1")
    first = phone.body
    phone.post("*".join(phone.inputs))
    assert phone.body == first
    assert len(services(app).orders.recent(ONE_METER, count=10)) == 1


def test_typing_a_meter_number_checks_it_before_anything_else(dial):
    phone = dial(NOBODY).send("1")
    assert phone.screen.startswith("Numéro du compteur (11 ou 13 chiffres):")  # no meter known: ask
    assert phone.send("1234").screen.startswith("Un compteur a 11 ou 13 chiffres.")
    bad_check = UNKNOWN_METER[:-1] + str((int(UNKNOWN_METER[-1]) + 1) % 10)
    assert phone.send(bad_check).screen.startswith("Numéro de compteur invalide, vérifiez-le.")
    phone = dial(NOBODY).send("1").send(UNKNOWN_METER)
    assert phone.screen.startswith("Compteur inconnu, vérifiez le numéro.")


def test_another_meter_from_the_list(dial):
    phone = dial(ONE_METER).send("1").send("2")
    assert phone.screen.startswith("Numéro du compteur")
    phone.send(with_check_digit("2000000001"))
    assert phone.screen.startswith("Compteur ****0016\nFo*** Ka*** Al***")


def test_amounts_that_are_not_numbers_or_out_of_limits_get_the_reason(dial):
    phone = dial(ONE_METER).send("1").send("1").send("1")
    assert phone.send("cinq mille").screen.startswith("Tapez un montant en chiffres.")
    assert phone.send("999").screen.startswith("Montant trop bas: minimum 1 000 FCFA.")
    phone = dial(ONE_METER)  # the customer hung up on the amount screen: offered to go on
    assert phone.screen.startswith("Vous aviez quitté en cours de route.")
    phone.send("1").send("600000")
    assert phone.screen.startswith("Montant trop élevé: maximum 500 000 FCFA.")


def test_pay_a_bill_in_full(app, dial):
    phone = dial(SEVERAL).send("2")
    assert phone.screen.splitlines()[:3] == ["Payer la facture de:", "1. Compte ****0003", "2. Autre compte"]
    phone.send("1")
    assert phone.screen.splitlines()[:5] == ["Compte ****0003", "Reste à payer: 48 350 FCFA", "Avant le 15/12/2026",
                                             "1. Tout payer", "2. Autre montant"]
    phone.send("1").send("1")
    assert phone.screen.startswith("Payer 48 350 FCFA sur le compte ****0003, payé par ****0102?")
    phone.send("1")
    assert phone.ended and "Validez le paiement de 48 350 FCFA" in phone.screen
    order = order_of(app, SEVERAL)
    assert (order.kind, order.target, order.amount) == ("bill", "C-2000000003", 48_350)


def test_pay_part_of_a_bill_from_another_number_in_english(app, dial):
    phone = dial(POSTPAID_ONLY).send("6").send("2").send("2").send("1").send("2")
    assert phone.screen.startswith("Amount in XAF (100 to 10 000 000):")
    phone.send("5000").send("2")
    assert phone.screen.startswith("Mobile Money number paying:")
    assert phone.send("123").screen.startswith("Invalid number, try again.")
    phone.send("07654321")
    assert phone.screen.startswith("Pay 5 000 XAF on account ****0001, paid by ****4321?")
    phone.send("1")
    assert order_of(app, POSTPAID_ONLY).payer == "+24107654321"
    # The approval request rings the other phone, not this one: the screen says which.
    assert phone.ended and phone.screen.startswith(
        "Payment request for 5 000 XAF sent to +24107654321: approve it on that phone. The receipt comes by SMS."
    ), phone.screen


def test_a_bill_paid_by_typing_the_account_number(app, dial):
    phone = dial(NOBODY).send("2")
    assert phone.screen.startswith("Numéro du compte (ex. 1000005, chiffres seuls):")
    assert phone.send("C-404").screen.startswith("Compte inconnu, vérifiez le numéro.")
    phone.send("c-3000000001")
    assert phone.screen.startswith("Compte ****0001\nReste à payer: 12 000 FCFA")


def test_an_account_number_is_found_however_a_keypad_types_it(app, dial):
    """Digits only, with the prefix but no dash, or as written: the same account."""
    for n, typed in enumerate(("3000000001", "C3000000001", "C-3000000001", "c-3000000001", " 3000000001 ")):
        phone = dial(f"+23769998000{n}").send("2").send(typed)  # a phone each: no resume offer in the way
        assert phone.screen.startswith("Compte ****0001\nReste à payer: 12 000 FCFA"), (typed, phone.screen)


def test_digits_shared_by_two_accounts_ask_for_the_whole_number(app, dial):
    from tests.ussd.conftest import postpaid

    services(app).customers.upsert([postpaid("GA-3000000001", POSTPAID_ONLY, balance=5_000, due=None)])
    phone = dial(NOBODY).send("2").send("3000000001")
    assert phone.screen.startswith("Plusieurs comptes ont ces chiffres: tapez le numéro entier."), phone.screen
    assert phone.send("GA3000000001").screen.startswith("Compte ****0001\nReste à payer: 5 000 FCFA"), phone.screen


def test_the_account_prompt_in_english_shows_the_format(dial):
    phone = dial(NOBODY).send("6").send("2").send("2")
    assert phone.screen.startswith("Account number (e.g. 1000005, digits only):"), phone.screen
    assert phone.send("3000000001").screen.startswith("Account ****0001"), phone.screen


def test_vending_down_still_takes_the_payment_and_says_the_token_follows(app, dial):
    switches.set_down(get_redis(app), "vending", True)
    phone = dial(ONE_METER).send("1").send("1")
    assert phone.screen.startswith("Compteur ****0017\nMb**** At*** Je****")  # from our own customer base
    phone.send("1").send("5000")
    assert phone.screen.startswith("5 000 FCFA. Vente momentanément coupée: paiement accepté, jeton envoyé par SMS")
    phone.send("1").send("1").send("1")
    assert phone.ended and order_of(app, ONE_METER).state == "payment_pending"


def test_payment_provider_down_is_an_honest_end_and_no_pending_order(app, dial):
    services(app).payments.set_available(False)
    phone = dial(ONE_METER).send("1").send("1").send("1").send("5000").send("1").send("1").send("1")
    assert phone.ended and phone.screen.startswith("Le paiement mobile ne répond pas.")
    assert order_of(app, ONE_METER).state == "failed"


def test_cancel_at_the_confirmation(app, dial):
    phone = dial(ONE_METER).send("1").send("1").send("1").send("5000").send("1").send("1").send("2")
    assert phone.ended and phone.screen == "Opération annulée. Rien n'a été débité."
    assert services(app).orders.recent(ONE_METER) == []


def test_my_last_payments_show_their_state(app, dial):
    dial(ONE_METER).send("1").send("1").send("1").send("5000").send("1").send("1").send("1")
    reference = order_of(app, ONE_METER).reference
    phone = dial(ONE_METER).send("5").send("3")
    assert phone.screen.splitlines()[:2] == ["Paiements:", f"{reference} 5 000 en attente"]


def test_resend_my_last_token(app, dial):
    assert dial(ONE_METER).send("5").send("2").screen == "Aucun achat de jeton trouvé pour ce numéro."
    meter = services(app).customers.accounts_for_phone(ONE_METER)[0].meter_number
    services(app).vending.vend(meter, 2_000, "EARLIER-1")
    phone = dial(ONE_METER).send("5").send("2")
    assert phone.ended and phone.screen == "Votre dernier jeton vous est renvoyé par SMS."


def test_a_session_id_reused_by_another_phone_never_shows_the_first_callers_order(app, client, customers):
    """The probe: phone A bought in session X; phone B walked another purchase in session X
    and was shown A's reference, and no order was created for B."""
    from tests.ussd.conftest import Phone

    first = Phone(client, ONE_METER, session_id="ATUid_reused").dial()
    first.send("1").send("1").send("1").send("5000").send("1").send("1").send("1")
    second = Phone(client, SEVERAL, session_id="ATUid_reused").dial()
    second.send("1").send("1").send("1").send("2000").send("1").send("1").send("1")
    mine, theirs = order_of(app, ONE_METER), order_of(app, SEVERAL)
    assert mine.reference != theirs.reference
    assert (theirs.phone, theirs.amount) == (SEVERAL, 2_000)
    assert theirs.reference in second.screen and mine.reference not in second.screen


def test_asking_for_a_resend_again_within_a_minute_is_told_when_to_come_back(app, dial):
    meter = services(app).customers.accounts_for_phone(ONE_METER)[0].meter_number
    services(app).vending.vend(meter, 2_000, "EARLIER-1")
    assert dial(ONE_METER).send("5").send("2").screen == "Votre dernier jeton vous est renvoyé par SMS."
    phone = dial(ONE_METER).send("5").send("2")
    assert phone.ended and phone.screen == "Vous avez déjà demandé un renvoi. Réessayez dans 1 min."


def test_too_many_orders_from_one_phone_get_a_polite_end_and_no_prompt(app, dial):
    for _ in range(3):
        dial(ONE_METER).send("1").send("1").send("1").send("1000").send("1").send("1").send("1")
    phone = dial(ONE_METER).send("1").send("1").send("1").send("1000").send("1").send("1").send("1")
    assert phone.ended and phone.screen.startswith("Trop de demandes de paiement")
    assert "Rien n'a été débité." in phone.screen
    assert len(services(app).orders.recent(ONE_METER, count=10)) == 3


def test_the_quote_says_what_the_amount_includes_in_english(dial):
    phone = dial(ONE_METER).send("6").send("2").send("1").send("1").send("1").send("5000")
    lines = phone.screen.splitlines()
    assert lines[:2] == ["5 000 XAF = 48.9 kWh", "Including Monthly fixed fee 429, Municipal tax 111 XAF"], lines


def test_each_charge_has_one_label_on_screens_and_in_sms():
    from sms import receipts
    from ussd.catalogue import languages, text

    for lang in languages():
        for code in receipts.CHARGE_CODES:
            assert text(lang, f"charge.{code}") == receipts.text(lang, f"charge.{code}"), (lang, code)
