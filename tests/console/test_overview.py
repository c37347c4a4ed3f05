"""The overview an operator keeps open during an outage or a campaign."""
from __future__ import annotations

from state import tally
from tests.ussd.conftest import ONE_METER
from tests.ussd.test_buy_and_pay import settle
from utility.payments.base import FAILED


def live_part(console) -> str:
    answer = console.get("/console/", headers={"X-Console-Refresh": "1"})
    assert answer.status_code == 200
    assert "<html" not in answer.text  # only the part the page's script swaps in
    return answer.text


def row(html: str, table: str, name: str) -> str:
    part = html.split(f'id="{table}"')[1].split("</table>")[0]
    return part.split(name)[1].split("</tr>")[0]


def test_switching_vending_down_shows_at_once(app, console):
    assert 'data-backend="vending" data-state="up"' in live_part(console)
    answer = console.post("/console/backends/vending", {"state": "down"})
    assert answer.status_code == 303
    page = console.get(answer.headers["Location"]).text
    assert "Interrupteur changé." in page
    assert 'data-backend="vending" data-state="down"' in page
    assert "Rétablir Vente (jetons)" in page
    assert console.post("/console/backends/vending", {"state": "up"}).status_code == 303
    assert 'data-backend="vending" data-state="up"' in live_part(console)


def test_a_real_system_cannot_be_switched_from_the_console(app, console):
    assert console.post("/console/backends/sms", {"state": "down"}).status_code == 400


def test_hops_sessions_and_orders_of_the_day_appear(app, console, dial):
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")  # 6 hops, one dialogue
    with app.app_context():  # as the payment callback runs
        settle(app, ONE_METER, FAILED, "insufficient_funds")
    dial(ONE_METER).send("9")  # another dialogue
    tally.of(app).flush()  # what the flusher thread does every few seconds
    html = live_part(console)
    assert '<strong id="in-flight">2</strong>' in html
    sessions_chart = html.split("Sessions par minute")[1].split("</svg>")[0]
    assert sessions_chart.count("<rect") == 60 and ": 2</title>" in sessions_chart.rsplit("<title>", 1)[1]
    assert '<span id="hops-last">8</span>' in html
    assert "<td>1</td>" in row(html, "orders-today", "refusée")  # declined by the payer
    assert "<td>1</td>" in row(html, "orders-today", "paiement demandé")


def test_an_open_breaker_can_be_closed_from_the_overview(app, console):
    with app.app_context():
        from utility import operations

        breaker = operations.seam().breaker("vending")
        assert breaker is not None
        breaker.open()
    assert 'data-breaker="vending" data-state="open"' in live_part(console)
    assert console.post("/console/breakers/vending/reset").status_code == 303
    assert 'data-breaker="vending" data-state="closed"' in live_part(console)


def test_an_expired_session_refresh_gets_401_so_the_page_reloads_to_sign_in(app):
    assert app.test_client().get("/console/", headers={"X-Console-Refresh": "1"}).status_code == 401
