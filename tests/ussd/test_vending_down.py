"""Vending is down (here the built-in backend switched off, as an open breaker does it):
by default the purchase is still taken and the token follows by SMS when vending returns;
an operator who will not take money it cannot vend at once (GUICHET_VENDING_DOWN=refuse)
has the call end on why, and where the news is."""
from __future__ import annotations

from state import switches
from tests.ussd.conftest import NOBODY, ONE_METER
from utility.meters import with_check_digit

MY_METER = with_check_digit("1000000001")  # ONE_METER's


def test_by_default_the_payment_is_taken_and_the_token_follows(app, dial, redis_client):
    switches.set_down(redis_client, "vending", True)
    phone = dial(ONE_METER).send("1").send("5000")
    assert not phone.ended and phone.screen.startswith("5 000 FCFA. Vente momentanément coupée: paiement accepté")


def test_refused_the_call_ends_on_why(app, dial, redis_client):
    app.config["VENDING_DOWN"] = "refuse"
    switches.set_down(redis_client, "vending", True)
    phone = dial(ONE_METER).send("1")  # one meter: straight to where the amount would be asked
    assert phone.ended
    assert phone.screen == "Achat d'unités impossible pour le moment: le système de vente est en panne. Réessayez plus tard."


def test_refused_with_the_short_code_the_news_is_one_sms_away(app, dial, redis_client):
    app.config.update(VENDING_DOWN="refuse", SMS_SHORT_CODE="20880")
    switches.set_down(redis_client, "vending", True)
    phone = dial(NOBODY).send("1").send(MY_METER)  # a meter typed from a phone the base does not know
    assert phone.ended and phone.screen.splitlines()[-1] == "Nouvelles: envoyez INFO au 20880."


def test_refused_only_while_down(app, dial):
    app.config["VENDING_DOWN"] = "refuse"
    phone = dial(ONE_METER).send("1").send("5000")
    assert not phone.ended and phone.screen.startswith("5 000 FCFA = ")
