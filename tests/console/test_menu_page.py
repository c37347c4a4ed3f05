"""The menu map page: a product owner sees the menu as the machine has it, and where customers
give up, first."""
from __future__ import annotations

import re

import pytest

from state import tally
from tests.console.conftest import Console
from tests.ussd import conftest as ussd
from tests.ussd.conftest import ONE_METER, Phone
from ussd.catalogue import text
from ussd.menu import MACHINE

customers = ussd.customers  # the USSD tests' customer base, for a dialogue to count


@pytest.fixture(autouse=True)
def flushed_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """No flushing thread: the page flushes its own process's counts when it is asked for."""
    monkeypatch.setattr(tally.Tally, "_ensure_flushing", lambda self: None)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="row-(\w+)"', html)


def test_the_page_asks_for_sign_in(client):
    assert client.get("/console/menu").status_code == 302


def test_the_screens_where_customers_give_up_come_first(console: Console, client, customers):
    phone = Phone(client, ONE_METER).dial().send("9").send("1")  # a refused choice, then the amount
    client.post("/ussd/africastalking/events", data={"sessionId": phone.session_id, "phoneNumber": ONE_METER,
                                                     "status": "Incomplete"})
    page = console.get("/console/menu")
    assert page.status_code == 200
    assert rows(page.text)[:2] == ["buy_amount", "main"]  # gave up there, then the invalid input
    assert sorted(rows(page.text)) == sorted(MACHINE.states)
    assert page.text.count('class="screen"') == len(MACHINE.states)  # the map, inline, a box per screen
    assert "1 passages · 1 abandons · 0 invalides" in page.text  # the operator's words: French by default


def test_the_screens_read_in_the_language_chosen(console: Console):
    english = console.get("/console/menu?lang=en").text
    assert text("en", "main.buy") in english and text("fr", "main.buy") not in english
    assert '<option value="en" lang="en" selected>' in english
    assert "Carte du menu" in english  # the page stays in the operator's language


def test_a_day_that_is_not_one_shows_today_and_says_so(console: Console):
    page = console.get("/console/menu?day=yesterday")
    assert page.status_code == 200
    assert "« yesterday » n&#39;est pas un jour" in page.text and 'class="problem"' in page.text
