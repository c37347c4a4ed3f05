"""The operator's incident API: a dry run says who would be texted and what it costs, writing
nothing; incidents are listed under way first; a resolved one changes no more; admin key,
audited."""
from __future__ import annotations

from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient

from state import keys
from state.store import get_redis, get_store
from tests.conftest import ADMIN_KEY
from tests.incidents.conftest import background, definition
from tests.sms.standin_africastalking import AfricasTalkingStandin
from utility.incidents.service import Incidents

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def snapshot(app: Flask) -> dict[bytes, Any]:
    """Every key and its value (jobs too: read as bytes), but the audit trail (which records
    the dry run, as it should)."""
    client = get_store(app).jobs
    found: dict[bytes, Any] = {}
    for key in client.keys("*"):
        kind = client.type(key).decode()
        if key.decode() == keys.audit():
            continue
        found[key] = {
            "string": lambda k: client.get(k), "hash": lambda k: client.hgetall(k),
            "set": lambda k: client.smembers(k), "list": lambda k: client.lrange(k, 0, -1),
            "zset": lambda k: client.zrange(k, 0, -1, withscores=True), "stream": lambda k: client.xrange(k),
        }[kind](key)
    return found


def test_a_dry_run_says_who_would_be_texted_and_writes_nothing(
    client: FlaskClient, app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    before = snapshot(app)
    response = client.post("/admin/incidents?dry_run=1", headers=AUTH, json=definition(
        message={"fr": "Travaux sur la ligne de Bonaberi. " * 4, "en": "Works on the Bonaberi line."}))
    assert response.status_code == 200
    figures = response.json
    assert figures["dry_run"] is True and figures["event"] == "created" and figures["broadcast"] is True  # type: ignore[index]
    assert (figures["recipients"], figures["opted_out"]) == (4, 1)  # type: ignore[index]
    languages = figures["languages"]  # type: ignore[index]
    assert {lang: (f["recipients"], f["segments"]) for lang, f in languages.items()} == {"fr": (3, 2), "en": (1, 1)}
    assert languages["en"]["sms"] == ("Eneo: Outage Douala North\nWorks on the Bonaberi line.\n"
                                      "Expected end 12/05/2099 at 18:00.")
    assert figures["total_segments"] == 3 * 2 + 1  # type: ignore[index]
    assert client.post("/admin/incidents?dry_run=1", headers=AUTH, json=definition(regions=["Mars"])).status_code == 422
    assert snapshot(app) == before
    assert incidents.all() == []

    incident_id = client.post("/admin/incidents", headers=AUTH, json=definition()).json["id"]  # type: ignore[index]
    assert snapshot(app) != before  # (the snapshot sees what a real create writes)
    background(app)
    before = snapshot(app)
    update = client.post(f"/admin/incidents/{incident_id}?dry_run=1", headers=AUTH, json={"regions": ["Centre"]})
    assert (update.status_code, update.json["event"], update.json["recipients"]) == (200, "update-1", 2)  # type: ignore[index]
    resolve = client.post(f"/admin/incidents/{incident_id}/resolve?dry_run=true", headers=AUTH)
    assert (resolve.json["event"], resolve.json["recipients"], resolve.json["total_segments"]) == (  # type: ignore[index]
        "resolved", 4, 4)
    assert resolve.json["incident"]["status"] == "resolved"  # type: ignore[index]
    assert snapshot(app) == before
    assert incidents.get(incident_id).active  # type: ignore[union-attr]
    assert len(africastalking_standin.received) == 4  # the creation's, and nothing since


def test_incidents_are_listed_under_way_first_and_a_resolved_one_changes_no_more(
    client: FlaskClient, incidents: Incidents
) -> None:
    first = incidents.create(definition(broadcast=False))
    second = incidents.create(definition(broadcast=False, regions=["Centre"]))
    incidents.resolve(second.id)
    third = incidents.create(definition(broadcast=False))
    listed = client.get("/admin/incidents", headers=AUTH).json["incidents"]  # type: ignore[index]
    assert [incident["id"] for incident in listed][-1] == second.id
    assert {incident["id"] for incident in listed[:2]} == {first.id, third.id}
    assert [i.id for i in incidents.active()] == [i["id"] for i in listed[:2]]

    refused = client.post(f"/admin/incidents/{second.id}", headers=AUTH, json={"broadcast": True})
    assert (refused.status_code, refused.json) == (409, {"error": f"incident {second.id} is resolved: it cannot be "
                                                                  "updated"})
    again = client.post(f"/admin/incidents/{second.id.lower()}/resolve", headers=AUTH)
    assert (again.status_code, again.json) == (409, {"error": f"incident {second.id} is resolved: it cannot be "
                                                                "resolved again"})
    assert client.post("/admin/incidents/INC-NOPE/resolve", headers=AUTH).status_code == 404
    assert client.post("/admin/incidents/INC-NOPE", headers=AUTH, json={}).status_code == 404
    assert client.get("/admin/incidents/INC-NOPE", headers=AUTH).status_code == 404
    assert client.post(f"/admin/incidents/{first.id}/close", headers=AUTH).status_code == 404
    shown = client.get(f"/admin/incidents/{first.id}", headers=AUTH).json
    assert (shown["status"], shown["broadcasts"], shown["waive_penalties"]) == ("active", [], True)  # type: ignore[index]


def test_without_the_admin_key_nothing_happens_and_the_attempt_is_audited(
    client: FlaskClient, app: Flask, incidents: Incidents
) -> None:
    refused = client.post("/admin/incidents", headers={"Authorization": "Bearer wrong"}, json=definition())
    assert refused.status_code == 401
    assert client.get("/admin/incidents").status_code == 401
    assert incidents.all() == []
    made = client.post("/admin/incidents", headers=AUTH, json=definition(broadcast=False))
    trail = [(e["action"], e["outcome"], e["detail"]) for _id, e in get_redis(app).xrange(keys.audit())]
    assert trail == [("POST /admin/incidents", "refused", "wrong admin key"),
                     ("GET /admin/incidents", "refused", "missing admin key: send Authorization: Bearer <ADMIN_KEY>"),
                     ("POST /admin/incidents", "done", f"created {made.json['id']}")]  # type: ignore[index]


def test_no_admin_key_no_incident_api(redis_client: redis.Redis) -> None:
    from app import create_app

    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client})
    assert app.test_client().get("/admin/incidents", headers=AUTH).status_code == 404
