"""Buying units and paying a bill, as the customer walks it: dial -> menu -> 1 -> meter
-> amount -> quote -> payer -> confirm -> END (the token comes by SMS)."""
from __future__ import annotations

import datetime
import zoneinfo

from state import switches
from state.store import get_redis
from tests.ussd.conftest import DUE_SOON, NOBODY, ONE_METER, OVERDUE, POSTPAID_ONLY, SEVERAL, day
from utility.meters import with_check_digit
from utility.payments.base import FAILED, SUCCESSFUL, PaymentResult
from utility.services import services

UNKNOWN_METER = with_check_digit("0149999999")
MY_METER = with_check_digit("1000000001")  # ONE_METER's (tests.ussd.conftest.prepaid)


def order_of(app, phone):
    (order,) = services(app).orders.recent(phone, count=1)
    return order


def test_buy_units_for_my_meter_to_the_end(app, dial):
    phone = dial(ONE_METER).send("1")
    # One meter: straight to the amount, the meter in full and its holder above it.
    assert phone.screen.splitlines() == [
        f"Compteur {MY_METER}", "Mballa Ateba Jeanne", "Montant en FCFA (1 000 à 500 000):", "1. Autre compteur",
        "0. Retour", "00. Accueil",
    ]
    phone.send("5000")
    lines = phone.screen.splitlines()
    assert lines[0] == "5 000 FCFA = 48,9 kWh"  # (5000 - 429 fee) / (91.17 x 1.025 tax)
    # What the amount includes, with its currency; the monthly fee named as such.
    assert lines[1] == "Dont Frais fixes du mois 429, Taxe communale 111 FCFA" and "1. Payer" in lines
    phone.send("1")
    assert phone.screen.splitlines()[:3] == ["Payer par Mobile Money avec:", f"1. Ce numéro ({ONE_METER})",
                                             "2. Un autre numéro"]
    phone.send("1")
    assert phone.screen.splitlines() == [
        "Acheter 5 000 FCFA pour:", f"Compteur {MY_METER}", "Mballa Ateba Jeanne", f"Payé par {ONE_METER}",
        "1. Confirmer", "2. Annuler", "0. Retour", "00. Accueil",
    ]
    phone.send("1")
    assert phone.ended
    order = order_of(app, ONE_METER)
    assert phone.screen == (f"Validez le paiement de 5 000 FCFA sur votre téléphone. "
                            f"Le code arrive par SMS. Réf. {order.reference}")
    assert (order.state, order.kind, order.amount, order.payer) == ("payment_pending", "units", 5_000, ONE_METER)


def test_the_confirm_hop_retried_by_the_gateway_places_one_order(app, dial):
    phone = dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")
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


def test_another_meter_from_the_amount_screen_shows_what_was_typed_in_full(dial):
    phone = dial(ONE_METER).send("1").send("1")  # "1. Autre compteur" under the amount prompt
    assert phone.screen.startswith("Numéro du compteur")
    typed = with_check_digit("2000000001")
    phone.send(typed)
    assert phone.screen.splitlines()[:3] == [f"Compteur {typed}", "Fotso Kamga Alain", "Montant en FCFA (1 000 à 500 000):"]
    assert "Autre compteur" not in phone.screen  # typed: "0. Retour" is the way to type it again
    assert phone.send("0").screen.startswith("Numéro du compteur")


def test_several_meters_are_listed_in_full(dial):
    phone = dial(SEVERAL).send("1")
    assert phone.screen.splitlines()[:4] == ["Acheter pour:", f"1. Compteur {with_check_digit('2000000001')}",
                                             f"2. Compteur {with_check_digit('2000000002')}", "3. Autre compteur"]
    phone.send("2")
    assert phone.screen.startswith(f"Compteur {with_check_digit('2000000002')}\nFotso Kamga Alain\nMontant")
    assert phone.send("0").screen.startswith("Acheter pour:")


def test_one_meter_in_english_goes_straight_to_the_amount(dial):
    phone = dial(ONE_METER).send("4").send("2").send("1")
    assert phone.screen.splitlines()[:4] == [
        f"Meter {MY_METER}", "Mballa Ateba Jeanne", "Amount in FCFA (1,000 to 500,000):", "1. Another meter"]


def test_amounts_that_are_not_numbers_or_out_of_limits_get_the_reason(dial):
    phone = dial(ONE_METER).send("1")
    assert phone.send("cinq mille").screen.startswith("Tapez un montant en chiffres.")
    assert phone.send("999").screen.startswith("Montant trop bas: minimum 1 000 FCFA.")
    phone = dial(ONE_METER)  # the customer hung up on the amount screen: offered to go on
    assert phone.screen.startswith(f"Achat pour le compteur {MY_METER} en cours.\n1. Reprendre")
    phone.send("1").send("600000")
    assert phone.screen.startswith("Montant trop élevé: maximum 500 000 FCFA.")


def test_pay_a_bill_in_full(app, dial):
    phone = dial(SEVERAL).send("2")
    assert phone.screen.splitlines()[:3] == ["Payer la facture de:", "1. Compte C-2000000003", "2. Autre compte"]
    phone.send("1")
    assert phone.screen.splitlines()[:6] == ["Compte C-2000000003", "Ondo Nguema Paul", "Reste à payer: 48 350 FCFA",
                                             f"A payer avant le {day(DUE_SOON)}", "1. Tout payer", "2. Autre montant"]
    phone.send("1").send("1")
    assert phone.screen.splitlines()[:4] == ["Payer 48 350 FCFA sur:", "Compte C-2000000003", "Ondo Nguema Paul",
                                             f"Payé par {SEVERAL}"]
    phone.send("1")
    assert phone.ended and "Validez le paiement de 48 350 FCFA" in phone.screen
    order = order_of(app, SEVERAL)
    assert (order.kind, order.target, order.amount) == ("bill", "C-2000000003", 48_350)


def test_pay_part_of_a_bill_from_another_number_in_english(app, dial):
    phone = dial(POSTPAID_ONLY).send("4").send("2").send("2").send("1")
    assert phone.screen.splitlines()[:4] == ["Account C-3000000001", "Ondo Nguema Paul", "Balance due: 12,000 FCFA",
                                             f"Overdue since {day(OVERDUE)}: risk of cut-off."]
    phone.send("2")
    assert phone.screen.startswith("Balance due: 12,000 FCFA\nAmount in FCFA (100 to 10,000,000):")
    phone.send("5000").send("2")
    assert phone.screen.startswith("Mobile Money number paying:")
    assert phone.send("123").screen.startswith("Invalid number, try again.")
    phone.send("07654321")
    assert phone.screen.splitlines()[:4] == ["Pay 5,000 FCFA on:", "Account C-3000000001", "Ondo Nguema Paul",
                                             "Paid by +24107654321"]
    phone.send("1")
    assert order_of(app, POSTPAID_ONLY).payer == "+24107654321"
    # The approval request rings the other phone, not this one: the screen says which.
    assert phone.ended and phone.screen.startswith(
        "Payment request for 5,000 FCFA sent to +24107654321: approve it on that phone. The receipt comes by SMS."
    ), phone.screen


def test_a_bill_paid_by_typing_the_account_number(app, dial):
    phone = dial(NOBODY).send("2")
    assert phone.screen.startswith("Numéro du compte (ex. 1000005, chiffres seuls):")
    assert phone.send("C-404").screen.startswith("Compte inconnu, vérifiez le numéro.")
    phone.send("c-3000000001")
    assert phone.screen.startswith("Compte C-3000000001\nOndo Nguema Paul\nReste à payer: 12 000 FCFA")


def test_an_account_number_is_found_however_a_keypad_types_it(app, dial):
    """Digits only, with the prefix but no dash, or as written: the same account."""
    for n, typed in enumerate(("3000000001", "C3000000001", "C-3000000001", "c-3000000001", " 3000000001 ")):
        phone = dial(f"+23769998000{n}").send("2").send(typed)  # a phone each: no resume offer in the way
        assert phone.screen.startswith("Compte C-3000000001\nOndo Nguema Paul\nReste à payer: 12 000 FCFA"), (typed, phone.screen)


def test_digits_shared_by_two_accounts_ask_for_the_whole_number(app, dial):
    from tests.ussd.conftest import postpaid

    services(app).customers.upsert([postpaid("GA-3000000001", POSTPAID_ONLY, balance=5_000, due=None)])
    phone = dial(NOBODY).send("2").send("3000000001")
    assert phone.screen.startswith("Plusieurs comptes ont ces chiffres: tapez le numéro entier."), phone.screen
    assert phone.send("GA3000000001").screen.startswith("Compte GA-3000000001\nOndo Nguema Paul\nReste à payer: 5 000 FCFA"), phone.screen


def test_the_account_prompt_in_english_shows_the_format(dial):
    phone = dial(NOBODY).send("4").send("2").send("2")
    assert phone.screen.startswith("Account number (e.g. 1000005, digits only):"), phone.screen
    assert phone.send("3000000001").screen.startswith("Account C-3000000001"), phone.screen


def test_vending_down_still_takes_the_payment_and_says_the_token_follows(app, dial):
    switches.set_down(get_redis(app), "vending", True)
    phone = dial(ONE_METER).send("1")
    assert phone.screen.startswith(f"Compteur {MY_METER}\nMballa Ateba Jeanne\nMontant")  # from our own customer base
    phone.send("5000")
    assert phone.screen.startswith("5 000 FCFA. Vente momentanément coupée: paiement accepté, code envoyé par SMS")
    phone.send("1").send("1").send("1")
    assert phone.ended and order_of(app, ONE_METER).state == "payment_pending"


def test_payment_provider_down_hides_the_payment_with_a_note_and_nothing_is_ordered(app, dial):
    services(app).payments.set_available(False)
    switches.forget_services(app)  # this process sees the switch at once (others within a second)
    phone = dial(ONE_METER).send("1").send("5000").send("1")
    assert phone.screen.splitlines() == [
        "Le paiement Mobile Money ne répond pas en ce moment: aucun paiement possible. Merci de réessayer plus tard.",
        "0. Retour", "00. Accueil"]
    assert phone.send("1").screen.startswith("Choix invalide")  # nothing to choose
    assert services(app).orders.recent(ONE_METER) == []
    services(app).payments.set_available(True)
    switches.forget_services(app)
    assert phone.send("0").send("1").screen.startswith("Payer par Mobile Money avec:\n1. Ce numéro")


def test_payment_provider_going_down_at_the_confirm_is_an_honest_end_and_no_pending_order(app, dial):
    phone = dial(ONE_METER).send("1").send("5000").send("1").send("1")  # the confirm screen
    services(app).payments.set_available(False)
    phone.send("1")
    assert phone.ended and phone.screen.startswith("Le paiement mobile ne répond pas.")
    assert order_of(app, ONE_METER).state == "failed"


def test_cancel_at_the_confirmation(app, dial):
    phone = dial(ONE_METER).send("1").send("5000").send("1").send("1").send("2")
    assert phone.ended and phone.screen == "Opération annulée. Rien n'a été débité."
    assert services(app).orders.recent(ONE_METER) == []


def settle(app, phone, state, reason=""):
    """The payer answered (a provider callback); a paid purchase is then vended."""
    order = order_of(app, phone)
    orders = services(app).orders
    orders.on_payment_result(PaymentResult(order.provider, order.provider_ref, order.reference, state, reason))
    if state == SUCCESSFUL:
        orders.fulfil(order.reference)
    return order.reference


def test_my_payments_say_when_what_how_much_and_how_it_went(app, dial):
    app.config.update(ORDER_LIMITS="20/60", PAYER_PROMPT_LIMITS="20/60")
    dial(ONE_METER).send("1").send("1000").send("1").send("1").send("1")
    delivered = settle(app, ONE_METER, SUCCESSFUL)
    dial(ONE_METER).send("1").send("2000").send("1").send("1").send("1")
    failed = settle(app, ONE_METER, FAILED, "insufficient_funds")
    for amount in ("3000", "4000"):
        dial(ONE_METER).send("1").send(amount).send("1").send("1").send("1")
    phone = dial(ONE_METER).send("3").send("3")
    today = datetime.datetime.now(zoneinfo.ZoneInfo("Africa/Douala")).strftime("%d/%m")
    lines = phone.screen.splitlines()
    assert lines == ["Paiements:", f"1. {today} Achat 4 000 FCFA en cours", f"2. {today} Achat 3 000 FCFA en cours",
                     f"3. {today} Achat 2 000 FCFA échoué", "98. Suite", "0. Retour", "00. Accueil"], phone.screen
    phone.send("98")  # the older ones, a page at a time
    assert phone.screen.splitlines()[:2] == ["Paiements:", f"4. {today} Achat 1 000 FCFA livré"]
    phone.send("4")  # the oldest: its own screen, with the meter in full
    lines = phone.screen.splitlines()
    assert lines[0].startswith(f"Réf. {delivered}, {datetime.datetime.now(zoneinfo.ZoneInfo('Africa/Douala')):%d/%m/%Y} ")
    assert lines[1:3] == [f"Achat pour le compteur {MY_METER}", "1 000 FCFA: livré"]
    assert phone.send("0").screen.startswith("Paiements:\n4. ")
    assert phone.send("0").send("3").screen.startswith(f"Réf. {failed}, ")


def test_my_payments_in_english_and_with_none_yet(app, dial):
    assert dial(SEVERAL).send("3").send("3").screen == "Aucun paiement pour ce numéro."
    dial(SEVERAL).send("2").send("1").send("1").send("1").send("1")  # the whole bill
    phone = dial(SEVERAL).send("4").send("2").send("3").send("3")
    assert phone.screen.splitlines()[1].endswith(" Bill 48,350 FCFA in progress")
    assert phone.send("1").screen.splitlines()[1:3] == ["Bill of account C-2000000003", "48,350 FCFA: in progress"]


def test_resend_my_last_token(app, dial):
    assert dial(ONE_METER).send("3").send("2").screen == "Aucun code de recharge acheté depuis ce numéro."
    meter = services(app).customers.accounts_for_phone(ONE_METER)[0].meter_number
    services(app).vending.vend(meter, 2_000, "EARLIER-1")
    phone = dial(ONE_METER).send("3").send("2")
    assert phone.ended and phone.screen == "Votre dernier code de recharge vous est renvoyé par SMS."


def test_a_session_id_reused_by_another_phone_never_shows_the_first_callers_order(app, client, customers):
    """The probe: phone A bought in session X; phone B walked another purchase in session X
    and was shown A's reference, and no order was created for B."""
    from tests.ussd.conftest import Phone

    first = Phone(client, ONE_METER, session_id="ATUid_reused").dial()
    first.send("1").send("5000").send("1").send("1").send("1")
    second = Phone(client, SEVERAL, session_id="ATUid_reused").dial()
    second.send("1").send("1").send("2000").send("1").send("1").send("1")
    mine, theirs = order_of(app, ONE_METER), order_of(app, SEVERAL)
    assert mine.reference != theirs.reference
    assert (theirs.phone, theirs.amount) == (SEVERAL, 2_000)
    assert theirs.reference in second.screen and mine.reference not in second.screen


def test_asking_for_a_resend_again_within_a_minute_is_told_when_to_come_back(app, dial):
    meter = services(app).customers.accounts_for_phone(ONE_METER)[0].meter_number
    services(app).vending.vend(meter, 2_000, "EARLIER-1")
    assert dial(ONE_METER).send("3").send("2").screen == "Votre dernier code de recharge vous est renvoyé par SMS."
    phone = dial(ONE_METER).send("3").send("2")
    assert phone.ended and phone.screen == "Vous avez déjà demandé un renvoi. Réessayez dans 1 min."


def test_too_many_orders_from_one_phone_get_a_polite_end_and_no_prompt(app, dial):
    for _ in range(3):
        dial(ONE_METER).send("1").send("1000").send("1").send("1").send("1")
    phone = dial(ONE_METER).send("1").send("1000").send("1").send("1").send("1")
    assert phone.ended and phone.screen.startswith("Trop de demandes de paiement")
    assert "Rien n'a été débité." in phone.screen
    assert len(services(app).orders.recent(ONE_METER, count=10)) == 3


def test_the_quote_says_what_the_amount_includes_in_english(dial):
    phone = dial(ONE_METER).send("4").send("2").send("1").send("5000")
    lines = phone.screen.splitlines()
    assert lines[:2] == ["5,000 FCFA = 48.9 kWh", "Including Monthly fixed fee 429, Municipal tax 111 FCFA"], lines


def test_each_charge_has_one_label_on_screens_and_in_sms():
    from sms import receipts
    from ussd.catalogue import languages, text

    for lang in languages():
        for code in receipts.CHARGE_CODES:
            assert text(lang, f"charge.{code}") == receipts.text(lang, f"charge.{code}"), (lang, code)
