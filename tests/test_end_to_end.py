"""The whole pipeline as it runs in production, on one machine: the app served on a
local port, the background worker beside it, the demo provider approving by calling
our callback over HTTP, and every SMS going through the real Africa's Talking SDK to a
stand-in server that records it.

dial -> 1 -> meter -> amount -> pay -> confirm -> (approve) -> SMS with the token.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from state import journal
from state.store import get_redis
from tests.conftest import ADMIN_KEY
from tests.live import serving, wait_for
from tests.redis_server import free_port  # noqa: F401 (tests/test_worker.py imports it from here)
from tests.sms.fixtures import africastalking_standin  # noqa: F401 (fixture)
from tests.ussd.conftest import ONE_METER, Phone, postpaid, prepaid
from utility.services import services

PAYER_DECLINED = "+237699000109"  # the demo provider declines payers ending in 9


@pytest.fixture
def live(fake_redis, africastalking_standin) -> Iterator[tuple]:  # noqa: F811
    customers = [prepaid("1000000001", ONE_METER), postpaid("C-3000000001", PAYER_DECLINED, balance=12_000, due=None)]
    with serving(fake_redis, africastalking_standin, customers) as app:
        yield app, africastalking_standin


def buy(app, phone_number: str = ONE_METER, amount: str = "5000") -> str:
    phone = Phone(app.test_client(), phone_number).dial()
    phone.send("1").send(amount).send("1").send("1").send("1")  # buy, (my one meter) amount, pay, this number, confirm
    assert phone.ended and "Réf." in phone.screen, phone.screen
    return phone.screen.rsplit(" ", 1)[1]


def sms_to(standin, number: str, containing: str) -> list:
    return [m for m in standin.messages_to(number) if containing in m.message]


def test_dial_buy_approve_and_the_token_arrives_by_sms(live):
    app, standin = live
    reference = buy(app)
    (receipt,) = wait_for(lambda: sms_to(standin, ONE_METER, reference))
    order = services(app).orders.get(reference)
    token = order.receipt["tokens"][0]
    assert " ".join(token[i:i + 4] for i in range(0, 20, 4)) in receipt.message  # in groups of 4
    assert receipt.sender == "GUICHET"
    wait_for(lambda: services(app).orders.get(reference).state == "receipt_sent")


def test_ten_duplicate_callbacks_give_one_token_and_one_sms(live):
    app, standin = live
    reference = buy(app)
    wait_for(lambda: sms_to(standin, ONE_METER, reference))
    order = services(app).orders.get(reference)
    provider = services(app).payments
    body = json.dumps({"provider_ref": order.provider_ref, "order_ref": reference, "status": "SUCCESSFUL",
                       "reason": ""}).encode()
    client = app.test_client()
    for _ in range(10):
        answer = client.post("/payments/demo/callback", data=body, content_type="application/json",
                             headers={"X-Guichet-Signature": provider.sign(body)})
        assert answer.status_code == 200
    time.sleep(0.5)  # give a wrongly queued second fulfilment the time to show itself
    vends = [e for e in journal.read(get_redis(app), 5000) if e["kind"] == "vend.credit"]
    assert len(vends) == 1
    assert len(sms_to(standin, ONE_METER, reference)) == 1


def test_vending_down_payment_received_then_the_token_when_it_returns(live):
    app, standin = live
    client, auth = app.test_client(), {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert client.post("/admin/backends/vending", json={"state": "down"}, headers=auth).status_code == 200
    reference = buy(app)
    (waiting,) = wait_for(lambda: sms_to(standin, ONE_METER, reference))
    assert "Votre code suit par SMS" in waiting.message
    assert services(app).orders.get(reference).state == "paid_awaiting_fulfilment"
    answer = client.post("/admin/backends/vending", json={"state": "up"}, headers=auth)
    assert answer.get_json()["retried"] == 1
    wait_for(lambda: len(sms_to(standin, ONE_METER, reference)) == 2)
    token = services(app).orders.get(reference).receipt["tokens"][0]
    assert token[:4] in sms_to(standin, ONE_METER, reference)[1].message


def test_a_declined_payment_sends_a_failure_sms_and_no_token(live):
    app, standin = live
    phone = Phone(app.test_client(), PAYER_DECLINED).dial()
    phone.send("2").send("1").send("1").send("1").send("1")  # pay the whole bill, from this number
    assert phone.ended
    reference = phone.screen.rsplit(" ", 1)[1]
    (failure,) = wait_for(lambda: sms_to(standin, PAYER_DECLINED, reference))
    assert "solde insuffisant" in failure.message
    order = services(app).orders.get(reference)
    assert (order.state, order.reason) == ("declined", "insufficient_funds")
    assert services(app).customers.account("C-3000000001").balance_due == 12_000


def test_paying_from_another_number_names_it_on_the_screen_and_in_the_failure_sms(live):
    """dial -> buy (my one meter) -> 5000 -> pay -> another number -> confirm: the approval
    request rings that number, so the screen names it; declined (no funds there), the SMS
    says which number, for what, how much, and the code to dial again."""
    app, standin = live
    phone = Phone(app.test_client(), ONE_METER).dial()
    phone.send("1").send("5000").send("1").send("2")
    phone.send("670000119")  # the demo provider declines payers ending in 9
    assert "Payé par +237670000119" in phone.screen.splitlines()
    phone.send("1")
    assert phone.ended
    reference = phone.screen.rsplit(" ", 1)[1]
    assert phone.screen.startswith("Demande de paiement de 5 000 FCFA envoyée au +237670000119: validez-la sur ce "
                                   "téléphone. Le code arrive par SMS."), phone.screen
    (failure,) = wait_for(lambda: sms_to(standin, ONE_METER, reference))
    assert failure.message == (
        f"Paiement {reference} de 5 000 FCFA pour le compteur 10000000017 non abouti. "
        "Mobile Money +237670000119: solde insuffisant. Pour réessayer, composez *384#.")
