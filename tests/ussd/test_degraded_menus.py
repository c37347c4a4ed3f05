"""What the menus offer while an outside system is down, as the customer reads it: billing
down, a bill payment is still taken and the screens say it is posted when billing returns;
Mobile Money down (its breaker open, or the built-in one switched off), the payment method
is not offered and a note says why; and while an incident waives late-payment penalties in
the caller's region, a late bill says no penalty applies."""
from __future__ import annotations

from typing import Any

from state import keys, switches
from tests.ussd.conftest import OVERDUE, POSTPAID_ONLY, day
from utility import calls
from utility.services import services


def down(app, redis_client, backend: str) -> None:
    switches.set_down(redis_client, backend, True)
    switches.forget_services(app)  # this process sees it at once (the others within a second)


def incident(app, **changes: Any) -> str:
    definition: dict[str, Any] = {
        "title": {"fr": "Cyberattaque", "en": "Cyberattack"},
        "message": {"fr": "Paiements et ventes perturbés.", "en": "Payments and sales disrupted."},
        "regions": ["Estuaire"], "services": ["billing", "payments"], "waive_penalties": True, "broadcast": False,
    }
    definition.update(changes)
    return services(app).incidents.create(definition).id


def test_billing_down_the_bill_is_taken_and_said_to_be_posted_when_it_returns(app, dial, redis_client):
    down(app, redis_client, "billing")
    phone = dial(POSTPAID_ONLY).send("2").send("1")  # its one account: what is due
    phone.send("1")  # pay all
    assert phone.screen.splitlines()[0] == (
        "Facturation en panne: paiement porté au compte à son retour. Payer avec:")
    phone.send("1").send("1")  # this number, confirm
    assert phone.ended and phone.screen.startswith(
        "Validez le paiement de 12 000 FCFA sur votre téléphone. Il sera porté au compte au retour de la "
        "facturation, recu par SMS. Réf. "), phone.screen
    (order,) = services(app).orders.recent(POSTPAID_ONLY, count=1)
    assert order.state == "payment_pending"  # taken, as ever


def test_billing_up_the_screens_are_as_ever(app, dial):
    phone = dial(POSTPAID_ONLY).send("2").send("1").send("1")
    assert phone.screen.splitlines()[0] == "Payer par Mobile Money avec:"


def test_mobile_money_breaker_open_hides_the_payment_with_a_note(app, dial, customers):
    built = services(app)
    seam = calls.seam(app)
    seam.breaker(f"payments:{built.payments.name}").open()  # repeated failures opened it
    seam._copied_at = -float("inf")  # this process reads the breakers again now (others within a second)
    phone = dial(POSTPAID_ONLY).send("2").send("1").send("1")
    assert phone.screen.splitlines() == [
        "Le paiement Mobile Money ne répond pas en ce moment: aucun paiement possible. Merci de réessayer plus tard.",
        "0. Retour", "00. Accueil"]
    seam.reset(f"payments:{built.payments.name}")  # back (an operator's word, or a probe that succeeded)
    assert phone.send("0").send("1").screen.startswith("Payer par Mobile Money avec:\n1. Ce numéro")


def test_in_english_too(app, dial, redis_client):
    redis_client.hset(keys.profile(POSTPAID_ONLY), "lang", "en")
    down(app, redis_client, "billing")
    phone = dial(POSTPAID_ONLY).send("2").send("1").send("1")
    assert phone.screen.splitlines()[0] == "Billing is down: the payment is posted when it is back. Pay with:"
    down(app, redis_client, "payments")
    assert phone.send("0").send("1").screen.splitlines()[0] == (
        "Mobile Money payments are not answering right now: no payment can be made. Please try again later.")


def test_an_incident_that_waives_penalties_says_so_on_a_late_bill(app, dial):
    phone = dial(POSTPAID_ONLY).send("2").send("1")
    assert f"Echue le {day(OVERDUE)}: risque de coupure." in phone.screen.splitlines()
    incident(app)
    phone.send("00").send("2").send("1")
    assert f"Echue le {day(OVERDUE)}: sans pénalité de retard." in phone.screen.splitlines()
    assert "sans pénalité de retard" in phone.send("00").send("3").send("1").screen  # my account, too


def test_penalties_are_waived_only_where_and_while_the_incident_says(app, dial):
    incident(app, regions=["Littoral"])  # not POSTPAID_ONLY's region
    phone = dial(POSTPAID_ONLY).send("2").send("1")
    assert "risque de coupure" in phone.screen
    services(app).incidents.resolve(incident(app, waive_penalties=True))
    assert "risque de coupure" in phone.send("00").send("2").send("1").screen  # resolved: penalties apply again
    incident(app, waive_penalties=False)
    assert "risque de coupure" in phone.send("00").send("2").send("1").screen
