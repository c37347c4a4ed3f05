"""A customer texts INFO: the incidents under way where they live (their accounts' regions and
those they subscribed to), in their language and one segment; or that there is none. And
what the USSD menu and the late-fee rules read: the notices by region, from this process's
copy, and whether penalties are waived."""
from __future__ import annotations

import datetime
import itertools

from flask import Flask
from flask.testing import FlaskClient

from sms import outbox
from sms.gsm import gsm7_septets
from state.store import get_redis
from tests.incidents.conftest import AMINA, COUSIN, GRACE, JEAN, PAUL_SHOP, definition
from utility.incidents.service import Incidents, UnknownRegion

_ids = itertools.count(1)


def texts(client: FlaskClient, app: Flask, phone: str, text: str) -> str | None:
    """The customer texts our short code through Africa's Talking; the reply we queue."""
    message_id = f"ATXid_info_{next(_ids)}"
    form = {"from": phone, "to": "8080", "text": text, "date": "2026-05-10 12:00:00", "id": message_id,
            "linkId": "", "networkCode": "62401"}
    assert client.post("/sms/africastalking/inbound", data=form).status_code == 200
    reply = outbox.find(get_redis(app), f"inbound:africastalking:{message_id}")
    return reply.body if reply else None


def test_info_lists_the_incidents_where_the_sender_lives(client: FlaskClient, app: Flask, incidents: Incidents) -> None:
    assert texts(client, app, JEAN.phone, "INFO") == "Aucun incident en cours dans votre région."
    outage = incidents.create(definition(broadcast=False))
    assert texts(client, app, JEAN.phone, "info") == (
        "Incidents en cours: Coupure Douala Nord, fin prévue 12/05/2099 18:00")
    assert texts(client, app, GRACE.phone, " Info ") == (
        "Incidents under way: Outage Douala North, expected end 12/05/2099 18:00")
    assert texts(client, app, COUSIN, "INFO").startswith("Incidents en cours: Coupure")  # a subscriber
    assert texts(client, app, AMINA.phone, "INFO") == "Aucun incident en cours dans votre région."  # the Centre
    incidents.create(definition(broadcast=False, regions=["Centre"], expected_end=None,
                                title={"fr": "Paiements suspendus", "en": "Payments stopped"}))
    assert texts(client, app, AMINA.phone, "INFO") == "Incidents en cours: Paiements suspendus"
    both = texts(client, app, PAUL_SHOP.phone, "INFO")  # accounts in both regions: both, the newest first
    assert both == "Incidents en cours: Paiements suspendus; Coupure Douala Nord, fin prévue 12/05/2099 18:00"
    incidents.resolve(outage.id)
    assert texts(client, app, JEAN.phone, "INFO") == "Aucun incident en cours dans votre région."


def test_the_reply_keeps_to_one_segment(client: FlaskClient, app: Flask, incidents: Incidents) -> None:
    for n in range(6):
        incidents.create(definition(broadcast=False, title={"fr": f"Coupure numéro {n} du réseau de Douala",
                                                            "en": f"Outage {n}"}))
    reply = texts(client, app, JEAN.phone, "INFO")
    assert reply is not None and reply.endswith("; ...")
    assert (gsm7_septets(reply) or 999) <= 160
    assert reply.count("Coupure") >= 2


def test_the_menu_reads_the_notices_by_region_from_the_copy(app: Flask, incidents: Incidents) -> None:
    outage = incidents.create(definition(broadcast=False))
    assert [i.id for i in incidents.active_for_regions("Littoral,Centre".split(","))] == [outage.id]
    assert incidents.active_for_regions(["LITTORAL"]) == incidents.active_for_regions(["littoral "])
    assert incidents.active_for_regions(["Centre"]) == incidents.active_for_regions([""]) == []
    calls: list[str] = []
    real_all = incidents.all

    def counted() -> list:
        calls.append("all")
        return real_all()

    incidents.all = counted  # type: ignore[method-assign]
    for _ in range(100):
        incidents.active_for_regions(["Littoral"])
    assert calls == []  # no round trip: the copy made by this process's change serves


def test_penalties_are_waived_where_and_while_an_incident_says_so(app: Flask, incidents: Incidents) -> None:
    outage = incidents.create(definition(broadcast=False))
    quiet = incidents.create(definition(broadcast=False, regions=["Centre"], waive_penalties=False))
    during = datetime.datetime.now(datetime.UTC)
    assert incidents.penalties_waived("Littoral", during)
    assert not incidents.penalties_waived("Centre", during)  # its incident waives nothing
    assert not incidents.penalties_waived("Littoral", during - datetime.timedelta(hours=1))  # before it
    resolved = incidents.resolve(outage.id)
    assert resolved.resolved_at is not None
    assert incidents.penalties_waived("Littoral", during)  # paid while it lasted: still waived once resolved
    assert not incidents.penalties_waived("Littoral", resolved.resolved_at + datetime.timedelta(seconds=1))
    assert quiet.active


def test_a_phone_subscribes_to_a_region_it_has_no_account_in(app: Flask, incidents: Incidents) -> None:
    assert incidents.regions() == ["Centre", "Littoral"]
    assert incidents.subscriptions(COUSIN) == ["Littoral"]
    assert incidents.subscribe(COUSIN, "CENTRE") == "Centre"
    assert incidents.subscriptions(COUSIN) == ["Centre", "Littoral"]
    assert incidents.unsubscribe(COUSIN, "littoral") and not incidents.unsubscribe(COUSIN, "littoral")
    assert incidents.subscriptions(COUSIN) == ["Centre"]
    try:
        incidents.subscribe(COUSIN, "Atlantis")
    except UnknownRegion:
        pass
    else:
        raise AssertionError("a region nobody lives in was accepted")
