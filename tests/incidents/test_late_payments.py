"""The penalties an operator may waive: the bills paid after their due date in the incident's
regions while it lasted, exported as CSV (GET /admin/incidents/<id>/late-payments.csv)."""
from __future__ import annotations

import csv
import datetime
import io
import time

from flask import Flask
from flask.testing import FlaskClient

from state.store import get_redis
from tests.conftest import ADMIN_KEY
from tests.incidents.conftest import AMINA, GRACE, JEAN, PAUL_HOME, definition
from utility.customers import RedisCustomerBase
from utility.incidents.service import Incidents
from utility.orders import BILL, Order, new_reference, note_late_payment
from utility.payments.base import PaymentResult
from utility.services import services

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def pay_bill(app: Flask, phone: str, account: str, amount: int) -> str:
    """The customer pays a bill on USSD and the provider says it went through; the reference."""
    with app.app_context():
        orders = services(app).orders
        reference = new_reference()
        order = orders.place(BILL, phone, "fr", account, amount, phone, reference)
        assert orders.on_payment_result(PaymentResult(order.provider, order.provider_ref, reference, "successful")) == (
            "paid")
    return reference


def export(client: FlaskClient, incident_id: str) -> list[dict[str, str]]:
    response = client.get(f"/admin/incidents/{incident_id}/late-payments.csv", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_bills_paid_late_in_the_incidents_regions_during_it_are_exported(
    client: FlaskClient, app: Flask, incidents: Incidents
) -> None:
    before = time.time() - 60
    incident = incidents.create(definition(regions=["Littoral", "Centre"], broadcast=False))
    late = pay_bill(app, JEAN.phone, JEAN.account_number, 10_000)  # due 5 days ago
    pay_bill(app, GRACE.phone, GRACE.account_number, 9_000)  # due in 5 days: on time
    paul = pay_bill(app, PAUL_HOME.phone, PAUL_HOME.account_number, 4_000)  # due 3 days ago, in the Centre
    with app.app_context():  # paid late, but before the incident began
        note_late_payment(get_redis(app), services(app).customers,
                          Order(new_reference(), BILL, AMINA.phone, "fr", AMINA.account_number, 12_000, AMINA.phone,
                                "demo"), paid_at=before)

    rows = export(client, incident.id)
    assert [row["reference"] for row in rows] == [late, paul]
    first = rows[0]
    assert {name: first[name] for name in ("account", "phone", "amount", "due_date", "region")} == {
        "account": JEAN.account_number, "phone": JEAN.phone, "amount": "10000",
        "due_date": JEAN.due_date.isoformat(), "region": "Littoral"}  # type: ignore[union-attr]
    paid_at = datetime.datetime.fromisoformat(first["paid_at"])
    assert paid_at.utcoffset() == datetime.timedelta(hours=1)  # the utility's time (Africa/Douala)
    assert abs(paid_at.timestamp() - time.time()) < 60

    only_littoral = incidents.create(definition(broadcast=False))
    assert [row["reference"] for row in export(client, only_littoral.id)] == []  # the payments came before it
    incidents.resolve(incident.id)
    pay_bill(app, AMINA.phone, AMINA.account_number, 1_000)  # after the incident was resolved
    assert [row["reference"] for row in export(client, incident.id)] == [late, paul]
    assert client.get("/admin/incidents/INC-NOPE/late-payments.csv", headers=AUTH).status_code == 404


def test_a_payment_is_indexed_once_and_never_holds_up_its_order(app: Flask, base: RedisCustomerBase) -> None:
    r = get_redis(app)
    order = Order(new_reference(), BILL, JEAN.phone, "fr", JEAN.account_number, 5_000, JEAN.phone, "demo")
    now = time.time()
    assert note_late_payment(r, base, order, paid_at=now)
    assert note_late_payment(r, base, order, paid_at=now + 5)  # a second call: the same entry
    month = time.strftime("%Y-%m", time.gmtime(now))
    assert r.zcard(f"guichet:{{late-payments:{month}}}:payments") == 1
    on_time = Order(new_reference(), BILL, GRACE.phone, "fr", GRACE.account_number, 5_000, GRACE.phone, "demo")
    assert not note_late_payment(r, base, on_time)
    assert not note_late_payment(r, None, order)  # no customer base to read the due date from
    assert not note_late_payment(r, base, Order(new_reference(), "units", JEAN.phone, "fr", "01400000012", 500,
                                                JEAN.phone, "demo"))

    class Broken(RedisCustomerBase):
        def account(self, account_number: str) -> None:
            raise ConnectionError("Redis away")

    assert not note_late_payment(r, Broken(r), order)  # logged, never raised
