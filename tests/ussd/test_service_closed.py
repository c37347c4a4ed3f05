"""An operator closes a service (POST /admin/services/<name>): the caller who picks its
entry hears the operator's words and the call ends; every other entry works as before, and
the service opens again as soon as the operator says so."""
from __future__ import annotations

from state import switches
from tests.conftest import ADMIN_KEY
from tests.ussd.conftest import ONE_METER, POSTPAID_ONLY
from tests.ussd.test_campaigns import open_campaign

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
WORDS = {"fr": "Achats fermés jusqu'à 18h: panne du système de vente.",
         "en": "Purchases closed until 6 pm: vending system outage."}


def close(client, app, name: str, message: dict[str, str] | None = None) -> None:
    body = {"enabled": False, **({"message": message} if message else {})}
    assert client.post(f"/admin/services/{name}", json=body, headers=AUTH).status_code == 200
    switches.forget_services(app)  # this process reads the switch again now (others within a second)


def test_buying_closed_by_the_operator_says_their_words(app, client, dial):
    close(client, app, "buy", WORDS)
    phone = dial(ONE_METER).send("1")
    assert phone.ended and phone.screen == WORDS["fr"]


def test_in_english_the_english_words(app, client, dial, redis_client):
    from state import keys

    close(client, app, "buy", WORDS)
    redis_client.hset(keys.profile(ONE_METER), "lang", "en")
    assert dial(ONE_METER).send("1").screen == WORDS["en"]


def test_without_words_the_menu_says_it_is_closed(app, client, dial):
    close(client, app, "bill")
    phone = dial(POSTPAID_ONLY).send("2")
    assert phone.ended and phone.screen == "Ce service est momentanément fermé. Réessayez plus tard."


def test_the_other_entries_still_work(app, client, dial):
    close(client, app, "buy", WORDS)
    assert dial(POSTPAID_ONLY).send("2").screen.startswith("Payer la facture de:"), "bills are open"
    assert dial(ONE_METER).send("3").screen.startswith("Mon compte")


def test_campaign_registration_closed_too(app, client, dial):
    open_campaign(app)
    close(client, app, "campaigns", {"fr": "Inscriptions suspendues.", "en": "Registration paused."})
    assert dial(ONE_METER).send("4").screen == "Inscriptions suspendues."


def test_open_again_the_flow_is_back(app, client, dial):
    close(client, app, "buy", WORDS)
    assert client.post("/admin/services/buy", json={"enabled": True}, headers=AUTH).status_code == 200
    switches.forget_services(app)
    assert not dial(ONE_METER).send("1").ended  # the amount prompt, as before
