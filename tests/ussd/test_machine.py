"""The menu machine is built once and a hop borrows a visit already attached to it:
attaching (binding ~30 triggers onto a model) is not paid on every hop, and nothing of
one caller's hop stays on the visit the next caller borrows."""
from __future__ import annotations

from tests.ussd.conftest import ONE_METER, SEVERAL
from ussd import menu
from ussd.flows import buy


def test_hops_do_not_attach_a_model_each(app, dial, monkeypatch):
    dial(ONE_METER).send("3")  # warm: at least one visit is in the pool
    attached = []
    real = menu.MACHINE.add_model
    monkeypatch.setattr(menu.MACHINE, "add_model", lambda *a, **k: (attached.append(a), real(*a, **k)))
    models = len(menu.MACHINE.models)
    for _ in range(20):
        dial(ONE_METER).send("4").send("0").send("3").send("00")
    assert attached == []  # one hop at a time: the pooled visit serves them all
    assert len(menu.MACHINE.models) == models  # no model left behind per hop


def test_a_borrowed_visit_keeps_nothing_of_the_last_caller(dial):
    mine = dial(SEVERAL).send("3").send("1")  # loads SEVERAL's accounts onto the visit
    assert "Compte C-2000000003" in mine.screen
    theirs = dial(ONE_METER).send("3").send("1")  # the same pooled visit, another caller
    assert "C-2000000003" not in theirs.screen and "Compteur 10000000017" in theirs.screen


def test_the_restored_state_is_the_sessions(dial):
    phone = dial(ONE_METER).send("1").send("1")  # "another meter" from the amount screen
    assert phone.send("0").screen.startswith("Compteur 10000000017\n")  # back from where it was
    assert dial(SEVERAL).screen.splitlines()[1].startswith("1.")  # a new caller starts at main


def test_a_refused_amount_whose_limit_the_backend_does_not_quote_shows_the_known_one():
    """An XMLVend fault may say "below the minimum" without an amount (minimum=None)."""
    from types import SimpleNamespace

    from state.sessions import Session
    from utility.vending.base import AmountTooLow

    class Vending:
        def quote(self, meter, amount):
            raise AmountTooLow("below the minimum vend amount", minimum=None)

    session = Session("s1", "+237699000001", "africastalking", "*384#", "62401", "fr")
    session.data.update(meter="01234567890", minimum=500, maximum=200_000)
    visit = menu.Visit(session, SimpleNamespace(vending=Vending()))
    assert buy.accept_amount(visit, "600") == "hint.amount_low"
    assert session.data["hint_values"] == {"minimum": "500"}
