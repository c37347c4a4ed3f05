"""An operator finds a customer's purchase and reads what happened to it.

dial -> buy -> approve -> (console) find by reference, phone or meter -> its journal -> resend the token;
vending down -> paid, waiting -> (console) retry.
"""
from __future__ import annotations

import pytest

from tests.ussd.conftest import ONE_METER
from tests.ussd.test_buy_and_pay import MY_METER, order_of, settle
from utility.payments.base import SUCCESSFUL
from utility.services import services


@pytest.fixture
def bought(app, dial):
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")  # buy, amount, pay, this number, confirm
    return settle(app, ONE_METER, SUCCESSFUL)


@pytest.mark.parametrize("typed", ["reference", ONE_METER, MY_METER])
def test_find_a_purchase_by_reference_phone_or_meter(console, bought, typed):
    page = console.get("/console/orders", query_string={"q": bought if typed == "reference" else typed}).text
    found = page.split('id="found"')[1].split("</table>")[0]
    assert f'href="/console/orders/{bought}"' in found
    assert ONE_METER not in found and MY_METER not in found  # masked as in the logs
    assert "****101" in found and f"****{MY_METER[-4:]}" in found


def test_an_orders_journal_shows_every_move_in_order(console, bought):
    page = console.get(f"/console/orders/{bought}").text
    journal = page.split('id="journal"')[1].split("</table>")[0]
    moves = [row for row in journal.split("<tr>")[2:]]
    assert [m.split("<td>")[2].split("<")[0] for m in moves] == [
        "payment_requested", "payment_succeeded", "fulfilled", "receipt_sent"]
    assert [m.split("<td>")[4].split("<")[0] for m in moves] == [
        "paiement demandé", "payée", "livrée", "reçu envoyé"]  # where each move led, in the operator's words


def test_resend_a_token_sms(app, console, bought):
    answer = console.post(f"/console/orders/{bought}/resend")
    assert answer.status_code == 303
    assert "Le jeton est renvoyé par SMS." in console.get(answer.headers["Location"]).text
    with app.app_context():
        from state import journal
        from state.store import get_redis
        from utility import admin

        resent = [e for e in journal.read(get_redis()) if e["kind"] == "order.tokens_resent"]
        entry = admin.audit_page(get_redis(), 5)["entries"][0]
    assert [(e["reference"], e["by"]) for e in resent] == [(bought, "operator")]
    assert (entry["action"], entry["detail"]) == (f"POST /console/orders/{bought}/resend",
                                                  f"order {bought}: token SMS sent again")


def test_an_order_without_a_token_cannot_be_resent(app, console, dial):
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")
    pending = order_of(app, ONE_METER).reference
    assert console.post(f"/console/orders/{pending}/resend").status_code == 409


def test_retry_an_order_waiting_for_vending(app, console, dial, monkeypatch):
    retried: list[tuple[str, float]] = []
    orders = services(app).orders
    monkeypatch.setattr(orders, "later", lambda reference, delay: retried.append((reference, delay)))
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")
    order = order_of(app, ONE_METER)
    with app.app_context():
        from state import switches
        from state.store import get_redis

        switches.set_down(get_redis(), "vending", True)
        switches.forget_services(app)
    settle(app, ONE_METER, SUCCESSFUL)
    assert orders.get(order.reference).state == "paid_awaiting_fulfilment"
    page = console.get(f"/console/orders/{order.reference}").text
    assert "Relancer la livraison" in page
    retried.clear()
    assert console.post(f"/console/orders/{order.reference}/retry").status_code == 303
    assert retried == [(order.reference, 0)]


def test_an_unknown_reference_is_a_404_not_a_crash(console):
    assert console.get("/console/orders/NOPE").status_code == 404
    assert "Aucune commande pour" in console.get("/console/orders?q=NOPE").text
