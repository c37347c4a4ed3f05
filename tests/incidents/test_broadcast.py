"""The operator declares an outage, updates it, resolves it: at each step every phone of the
region (and its subscribers) gets one SMS in its language, those who texted STOP none, and a
broadcast killed half way resumes without texting anyone twice."""
from __future__ import annotations

import datetime
import time
from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sms import outbox
from state import journal, keys, worker
from state.store import get_redis
from tests.conftest import ADMIN_KEY
from tests.incidents.conftest import (
    AMINA,
    COUSIN,
    GRACE,
    JEAN,
    ODILE,
    PAUL_SHOP,
    TOLD,
    background,
    definition,
    inbox,
)
from tests.sms.fixtures import africastalking_config, sms_app_for
from tests.sms.standin_africastalking import AfricasTalkingStandin
from utility.customers import Account, RedisCustomerBase
from utility.incidents import jobs
from utility.incidents.service import Incidents

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

CREATED_FR = ("Eneo: Coupure Douala Nord\nTravaux sur la ligne de Bonaberi.\n"
              "Fin prévue le 12/05/2099 à 18:00.")
CREATED_EN = "Eneo: Outage Douala North\nWorks on the Bonaberi line.\nExpected end 12/05/2099 at 18:00."


def post(client: FlaskClient, path: str, body: Any = None) -> Any:
    response = client.post(f"/admin/incidents{path}", headers=AUTH, json=body)
    assert response.status_code in (200, 201), response.json
    return response.json


def progress(client: FlaskClient, incident_id: str) -> list[dict[str, Any]]:
    shown = client.get(f"/admin/incidents/{incident_id}", headers=AUTH)
    assert shown.status_code == 200
    return shown.json["broadcasts"]  # type: ignore[index,no-any-return]


def test_each_event_texts_every_affected_phone_once_in_its_language(
    client: FlaskClient, app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    created = client.post("/admin/incidents", headers=AUTH, json=definition())
    assert created.status_code == 201
    incident_id = created.json["id"]  # type: ignore[index]
    assert incident_id.startswith("INC-") and len(incident_id) == 8
    background(app)

    assert inbox(africastalking_standin, JEAN.phone) == [CREATED_FR]
    assert inbox(africastalking_standin, GRACE.phone) == [CREATED_EN]  # her phone reads English
    assert inbox(africastalking_standin, PAUL_SHOP.phone) == [CREATED_FR]  # one SMS for his two accounts
    assert inbox(africastalking_standin, COUSIN) == [CREATED_FR]  # a subscriber: the default language
    assert inbox(africastalking_standin, ODILE.phone) == []  # texted STOP
    assert inbox(africastalking_standin, AMINA.phone) == []  # the Centre is not concerned
    [shown] = progress(client, incident_id)
    assert {name: shown[name] for name in ("event", "state", "recipients", "queued", "opted_out", "sent", "failed",
                                           "waiting", "in_flight", "unsettled", "progress")} == {
        "event": "created", "state": "done", "recipients": 5, "queued": 4, "opted_out": 1, "sent": 4, "failed": 0,
        "waiting": 0, "in_flight": 0, "unsettled": 0, "progress": 1.0}
    assert shown["segments"] == {"fr": 1, "en": 1} and shown["finished_at"]

    post(client, f"/{incident_id}", {"message": {"fr": "Le poste de Bonaberi est réparé à moitié."},
                                     "expected_end": "2099-05-13T08:00"})
    background(app)
    assert inbox(africastalking_standin, JEAN.phone)[1:] == [
        "Eneo, mise à jour: Coupure Douala Nord\nLe poste de Bonaberi est réparé à moitié.\n"
        "Fin prévue le 13/05/2099 à 08:00."]
    assert inbox(africastalking_standin, GRACE.phone)[1:] == [  # the English message was kept
        "Eneo, update: Outage Douala North\nWorks on the Bonaberi line.\nExpected end 13/05/2099 at 08:00."]

    post(client, f"/{incident_id}/resolve")
    background(app)
    assert inbox(africastalking_standin, JEAN.phone)[2:] == [
        "Eneo: Coupure Douala Nord\nIncident terminé, le service est rétabli. Merci de votre patience."]
    for phone in TOLD:
        assert len(inbox(africastalking_standin, phone)) == 3, phone
    assert inbox(africastalking_standin, ODILE.phone) == inbox(africastalking_standin, AMINA.phone) == []

    background(app)  # nothing left: nothing more
    assert len(africastalking_standin.received) == 3 * len(TOLD)
    assert [(b["event"], b["state"], b["sent"]) for b in progress(client, incident_id)] == [
        ("created", "done", 4), ("update-1", "done", 4), ("resolved", "done", 4)]
    kinds = Counter(entry["kind"] for entry in journal.read(get_redis(app), 1000) if entry["kind"].startswith("incident."))
    assert (kinds["incident.created"], kinds["incident.updated"], kinds["incident.resolved"],
            kinds["incident.broadcast_started"], kinds["incident.broadcast_done"]) == (1, 1, 1, 3, 3)


def test_without_broadcast_nobody_is_texted(
    app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    incident = incidents.create(definition(broadcast=...))
    incidents.update(incident.id, {"expected_end": None})
    incidents.resolve(incident.id)
    assert background(app) == 0
    assert africastalking_standin.received == [] and incidents.broadcasts(incidents.get(incident.id)) == []  # type: ignore[arg-type]


def test_a_phone_that_left_the_region_is_not_texted(
    app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    # A crash half way through an import left Aminatou's phone in the Littoral's set: the set
    # says she is there, her profile (the truth the import keeps) says Centre only.
    get_redis(app).sadd(keys.region_phones("littoral"), AMINA.phone)
    incident = incidents.create(definition())
    background(app)
    assert inbox(africastalking_standin, AMINA.phone) == []
    [shown] = incidents.broadcasts(incident)
    assert (shown["recipients"], shown["queued"], shown["skipped"], shown["opted_out"]) == (6, 4, 1, 1)


class Killed(BaseException):
    """SIGKILL: nothing after it runs, no except clause sees it."""


def test_a_broadcast_killed_half_way_resumes_without_texting_anyone_twice(
    app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = incidents.create(definition())
    real_send_bulk = outbox.send_bulk

    def two_then_die(app: Flask | None, messages: list[outbox.NewSms]) -> list[str]:
        # The chunk's SMS are queued together: the worker is killed once two of them are.
        real_send_bulk(app, messages[:2])
        raise Killed()

    monkeypatch.setattr(outbox, "send_bulk", two_then_die)
    start = time.time()
    jobs.pump(app, now=start)
    bulk = worker.queue(app, worker.BULK_QUEUE_NAME)
    [chunk] = [job for job in bulk.jobs if job.func_name == "utility.incidents.jobs.send_chunk"]
    bulk.remove(chunk)
    with pytest.raises(Killed), app.app_context():
        chunk.func(*chunk.args)
    monkeypatch.setattr(outbox, "send_bulk", real_send_bulk)
    [shown] = incidents.broadcasts(incident)
    assert (shown["queued"], shown["in_flight"]) == (0, 4)  # two queued but not counted: all four held by the dead job

    assert background(app, now=start + 10) == 0  # held: their job might still be running
    assert len(africastalking_standin.received) == 2
    background(app, now=start + jobs.HOLD + 1)  # handed out again
    for phone in TOLD:
        assert inbox(africastalking_standin, phone) == [CREATED_EN if phone == GRACE.phone else CREATED_FR], phone
    [shown] = incidents.broadcasts(incident)
    assert (shown["state"], shown["queued"], shown["sent"], shown["opted_out"]) == ("done", 4, 4, 1)


def test_a_job_killed_after_texting_but_before_counting_counts_once(
    app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = incidents.create(definition())

    def die(*args: Any, **kwargs: Any) -> int:
        raise Killed()

    start = time.time()
    monkeypatch.setattr(incidents, "finish", die)
    background(app, now=start, rounds=1)  # the job dies once its SMS are queued (the worker notes its failure)
    monkeypatch.undo()
    assert len(africastalking_standin.received) == 4  # texted, never counted
    background(app, now=start + jobs.HOLD + 1)
    assert len(africastalking_standin.received) == 4  # the outbox knew each reference: nothing again
    [shown] = incidents.broadcasts(incident)
    assert (shown["state"], shown["recipients"], shown["queued"], shown["sent"]) == ("done", 5, 4, 4)


def test_an_update_before_the_first_sms_went_out_replaces_it(
    app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    incident = incidents.create(definition())
    incidents.update(incident.id, {"title": {"fr": "Coupure Douala Nord et Bonaberi"}})
    background(app)
    assert inbox(africastalking_standin, JEAN.phone) == [
        "Eneo, mise à jour: Coupure Douala Nord et Bonaberi\nTravaux sur la ligne de Bonaberi.\n"
        "Fin prévue le 12/05/2099 à 18:00."]  # the out-of-date first SMS never went
    first, update = incidents.broadcasts(incidents.get(incident.id))  # type: ignore[arg-type]
    assert (first["state"], first["superseded_by"], first["finished_at"] is not None) == ("superseded", "update-1", True)
    assert (update["state"], update["sent"]) == ("done", 4)


def test_once_resolved_nothing_more_of_it_goes_out_even_without_a_broadcast(
    app: Flask, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    incident = incidents.create(definition())  # its SMS not sent yet when...
    incidents.update(incident.id, {"broadcast": False})  # ...the operator stops texting (this says nothing)
    incidents.resolve(incident.id)  # and resolves it: the first SMS would be old news
    background(app)
    assert africastalking_standin.received == []
    [first] = incidents.broadcasts(incidents.get(incident.id))  # type: ignore[arg-type]
    assert (first["state"], first["superseded_by"]) == ("superseded", "resolved")


def test_the_pump_keeps_to_the_bulk_share_of_the_sms_rate(
    redis_client: Any, africastalking_standin: AfricasTalkingStandin
) -> None:
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=10,
                      ADMIN_KEY=ADMIN_KEY, UTILITY_NAME="Eneo")
    crowd = [Account(f"CM-4{i:05d}", "", f"Client {i}", f"+2376994{i:05d}", "Littoral", "postpaid", 0, None)
             for i in range(12)]
    with app.app_context():
        RedisCustomerBase(get_redis(app)).upsert(crowd)
        from utility.services import services

        incidents = services(app).incidents
        incident = incidents.create(definition())
    assert jobs.per_round(app) == 5  # 10 SMS a second, half of them for bulk
    now = time.time()
    assert [jobs.pump(app, now=now + second) for second in range(4)] == [5, 5, 2, 0]
    bulk = worker.queue(app, worker.BULK_QUEUE_NAME)
    assert sorted(len(job.args[2]) for job in bulk.jobs) == [2, 5, 5]
    progress = incidents.progress(incident.id, "created", now=now + 4)
    assert (progress["state"], progress["recipients"], progress["waiting"], progress["in_flight"]) == (
        "sending", 12, 0, 12)
    # Nothing sent yet: the end is foreseen at the bulk rate configured, 12 SMS at 5 a second.
    end = datetime.datetime.fromisoformat(progress["expected_end"]).timestamp()
    assert now + 4 + 12 / 5 - 1 <= end <= now + 4 + 12 / 5 + 1
