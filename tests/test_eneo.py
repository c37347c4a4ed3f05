"""The Eneo story (Cameroon, January 2024) as one run of the whole service: the app served on
a local port with its background worker, the demo payment provider approving over HTTP, and
every SMS going through the real Africa's Talking SDK to a stand-in that records it.

A cyberattack takes vending, billing and Mobile Money down. The operator posts an incident
with a broadcast: every customer of the region hears it once, nobody elsewhere does. While
the systems are down the menus tell the truth and follow the operator's choice; when Mobile
Money is back first, payments are taken and kept; when vending and billing return, every paid
order is fulfilled, once. The incident is resolved with its broadcast.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import pytest

from state import journal
from state.store import get_redis
from tests.conftest import ADMIN_KEY
from tests.sms.fixtures import africastalking_config, africastalking_standin  # noqa: F401 (fixture)
from tests.test_end_to_end import serving, sms_to, wait_for
from tests.ussd.conftest import OVERDUE, Phone, day, postpaid, prepaid
from utility.services import services

HOME = "+237699000101"  # a prepaid meter in the Littoral
NEIGHBOUR = "+237699000111"  # another one
LATE_PAYER = "+237699000121"  # a postpaid account in the Littoral, its bill overdue
ELSEWHERE = "+237699000131"  # a prepaid meter in the Centre
LITTORAL = (HOME, NEIGHBOUR, LATE_PAYER)
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TITLE = "Cyberattaque: ventes et paiements"
INCIDENT = {
    "title": {"fr": TITLE, "en": "Cyberattack: sales and payments"},
    "message": {"fr": "Achats d'unités et paiements perturbés. Pas de pénalité de retard jusqu'au retour du service.",
                "en": "Unit purchases and payments disrupted. No late-payment penalty until service is restored."},
    "regions": ["Littoral"], "services": ["vending", "payments", "billing"], "waive_penalties": True,
    "broadcast": True,
}


@pytest.fixture
def live(fake_redis, africastalking_standin) -> Iterator[tuple]:  # noqa: F811
    customers = [
        prepaid("1000000001", HOME),
        prepaid("1000000002", NEIGHBOUR, name="Ekwalla Din Marie"),
        postpaid("C-5000000001", LATE_PAYER, balance=12_000, due=OVERDUE, region="Littoral"),
        prepaid("3000000001", ELSEWHERE, region="Centre"),
    ]
    with serving(fake_redis, africastalking_standin, customers, SMS_SHORT_CODE="20880") as app:
        yield app, africastalking_standin


def switch(client, backend: str, state: str) -> dict:
    answer = client.post(f"/admin/backends/{backend}", json={"state": state}, headers=AUTH)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def reference_on(phone: Phone) -> str:
    assert phone.ended and "Réf. " in phone.screen, phone.screen
    return phone.screen.rsplit(" ", 1)[1]


def test_eneo_a_cyberattack_from_the_notice_to_every_paid_order_fulfilled_once(live):
    app, standin = live
    admin = app.test_client()

    # 1. The operator posts the incident, with its broadcast: the region hears it, once each.
    expected_end = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)).isoformat(timespec="minutes")
    created = admin.post("/admin/incidents", json={**INCIDENT, "expected_end": expected_end}, headers=AUTH)
    assert created.status_code == 201, created.get_data(as_text=True)
    incident_id = created.get_json()["id"]
    for phone in LITTORAL:
        (notice,) = wait_for(lambda phone=phone: sms_to(standin, phone, TITLE))
        assert "Pas de pénalité de retard" in notice.message and "Fin prévue le" in notice.message
    assert standin.messages_to(ELSEWHERE) == []

    # 2. Vending, billing and Mobile Money go down.
    for backend in ("vending", "billing", "payments"):
        switch(admin, backend, "down")

    # 3. The menus tell the truth. The main menu starts with the notice...
    home = Phone(app.test_client(), HOME).dial()
    assert home.screen.splitlines()[0] == f"Info: {TITLE}"
    assert not Phone(app.test_client(), ELSEWHERE).dial().screen.startswith("Info:")
    # ...a purchase is quoted as "token by SMS when vending returns", but no payment method is
    # offered while Mobile Money is down: nothing is ordered.
    home.send("1").send("5000")
    assert home.screen.startswith("5 000 FCFA. Vente momentanément coupée: paiement accepté")
    home.send("1")
    assert home.screen.startswith("Le paiement Mobile Money ne répond pas en ce moment")
    assert services(app).orders.recent(HOME) == []
    # An operator who takes no money it cannot vend at once ends the call on why, and where the news is.
    app.config["VENDING_DOWN"] = "refuse"
    refused = Phone(app.test_client(), NEIGHBOUR).dial().send("1")
    assert refused.ended and refused.screen.splitlines() == [
        "Achat d'unités impossible pour le moment: le système de vente est en panne. Réessayez plus tard.",
        "Nouvelles: envoyez INFO au 20880."]
    app.config["VENDING_DOWN"] = "store"

    # 4. Mobile Money returns first: payments are taken and kept, the customers told so.
    switch(admin, "payments", "up")
    bought = Phone(app.test_client(), HOME).dial().send("1").send("5000").send("1").send("1").send("1")
    units_ref = reference_on(bought)
    bill = Phone(app.test_client(), LATE_PAYER).dial().send("2").send("1")
    assert f"Echue le {day(OVERDUE)}: sans pénalité de retard." in bill.screen.splitlines()
    bill.send("1")  # pay all
    assert bill.screen.startswith("Facturation en panne: paiement porté au compte à son retour. Payer avec:")
    bill_ref = reference_on(bill.send("1").send("1"))
    (waiting,) = wait_for(lambda: sms_to(standin, HOME, units_ref))
    assert "Votre code suit par SMS" in waiting.message
    (received,) = wait_for(lambda: sms_to(standin, LATE_PAYER, bill_ref))
    assert "dès le retour de la facturation" in received.message
    orders = services(app).orders
    wait_for(lambda: orders.get(units_ref).state == orders.get(bill_ref).state == "paid_awaiting_fulfilment")
    # The provider says it again while the order waits: nothing changes, nothing is doubled.
    order = orders.get(units_ref)
    body = json.dumps({"provider_ref": order.provider_ref, "order_ref": units_ref, "status": "SUCCESSFUL",
                       "reason": ""}).encode()
    for _ in range(3):
        answer = admin.post("/payments/demo/callback", data=body, content_type="application/json",
                            headers={"X-Guichet-Signature": services(app).payments.sign(body)})
        assert answer.status_code == 200

    # 5. Vending and billing return: every paid order is fulfilled now, once.
    assert switch(admin, "vending", "up")["retried"] == 2  # both wait (a retry finds billing still down)
    assert switch(admin, "billing", "up")["retried"] >= 1
    wait_for(lambda: orders.get(units_ref).state == orders.get(bill_ref).state == "receipt_sent", seconds=30)
    token = orders.get(units_ref).receipt["tokens"][0]
    token_sms = wait_for(lambda: len(found := sms_to(standin, HOME, units_ref)) == 2 and found)
    assert token[:4] in token_sms[1].message  # "payment received", then the token
    bill_sms = wait_for(lambda: len(found := sms_to(standin, LATE_PAYER, bill_ref)) == 2 and found)
    assert bill_sms[1].message.endswith(
        "Aucune pénalité de retard: incident en cours dans votre région.")
    events = journal.read(get_redis(app), 10_000)
    assert [e["reference"] for e in events if e["kind"] == "vend.credit"] == [units_ref]  # one vend
    assert services(app).customers.account("C-5000000001").balance_due == 0  # posted once
    assert {o.reference: o.state for o in orders.recent(HOME) + orders.recent(LATE_PAYER)} == {
        units_ref: "receipt_sent", bill_ref: "receipt_sent"}

    # 6. The incident is resolved, with its broadcast; the menu is as it was.
    resolved = admin.post(f"/admin/incidents/{incident_id}/resolve", headers=AUTH)
    assert resolved.status_code == 200, resolved.get_data(as_text=True)
    for phone in LITTORAL:
        wait_for(lambda phone=phone: sms_to(standin, phone, "Incident terminé"))
        assert len(sms_to(standin, phone, TITLE)) == 2  # the notice and its end, once each
    assert standin.messages_to(ELSEWHERE) == []
    assert not Phone(app.test_client(), HOME).dial().screen.startswith("Info:")
