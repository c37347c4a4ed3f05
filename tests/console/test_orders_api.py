"""The same order actions as the console's, for scripts: GET /admin/orders, resend, retry."""
from __future__ import annotations

from tests.conftest import ADMIN_KEY
from tests.ussd.conftest import ONE_METER
from tests.ussd.test_buy_and_pay import MY_METER, settle
from utility.payments.base import SUCCESSFUL

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_find_an_order_and_read_its_journal(app, client, dial):
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")
    reference = settle(app, ONE_METER, SUCCESSFUL)
    (found,) = client.get(f"/admin/orders?q={MY_METER}", headers=AUTH).get_json()["orders"]
    assert found["reference"] == reference and found["state"] == "receipt_sent"
    journal = client.get(f"/admin/orders/{reference}", headers=AUTH).get_json()["journal"]
    assert [(m["source"], m["dest"]) for m in journal] == [
        ("created", "payment_pending"), ("payment_pending", "paid"), ("paid", "fulfilled"),
        ("fulfilled", "receipt_sent")]
    assert journal == sorted(journal, key=lambda move: move["at"])


def test_resend_and_retry_say_when_there_is_nothing_to_do(app, client, dial):
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")
    reference = settle(app, ONE_METER, SUCCESSFUL)
    assert client.post(f"/admin/orders/{reference}/resend", headers=AUTH).status_code == 200
    assert client.post(f"/admin/orders/{reference}/retry", headers=AUTH).status_code == 409
    assert client.post("/admin/orders/NOPE/resend", headers=AUTH).status_code == 404
    assert client.get("/admin/orders", headers=AUTH).status_code == 400
    assert client.post(f"/admin/orders/{reference}/resend").status_code == 401
