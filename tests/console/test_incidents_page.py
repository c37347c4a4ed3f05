"""The console's incidents (/console/incidents) through Flask's test client: an operator declares
an outage with the form, sees its dry run (who would be texted, the segments, the cost) before
anything is sent, confirms, watches the broadcast go out; updates it and resolves it the same
way, a dry run first. The customer base and the SMS stand-in are the incident tests' own."""
from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask

from state.store import get_redis
from tests.console.conftest import Console
from tests.incidents import conftest as incident_setup
from tests.incidents.conftest import COUSIN, GRACE, JEAN, TOLD, background, definition, inbox
from tests.sms import fixtures as sms_setup
from tests.sms.standin_africastalking import AfricasTalkingStandin
from utility import admin
from utility.console import DEFAULTS
from utility.incidents.service import Incidents

PRICE = DEFAULTS["CONSOLE_SEGMENT_PRICE"]

# The incident tests' fixtures: their app (SMS to the Africa's Talking stand-in), customers, Incidents.
app = incident_setup.app
base = incident_setup.base
incidents = incident_setup.incidents
africastalking_standin = sms_setup.africastalking_standin


def the_form(step: str = "preview", **changes: Any) -> dict[str, Any]:
    """The incident form as an operator fills it: the Littoral outage of the incident tests."""
    form: dict[str, Any] = {
        "title_fr": "Coupure Douala Nord", "title_en": "Outage Douala North",
        "message_fr": "Travaux sur la ligne de Bonaberi.", "message_en": "Works on the Bonaberi line.",
        "regions": ["Littoral"], "services": ["supply", "vending"], "expected_end": "2099-05-12T18:00",
        "waive_penalties": "1", "broadcast": "1", "step": step,
    }
    form.update(changes)
    return {name: value for name, value in form.items() if value is not ...}


def previewed(page: str) -> str:
    """The dry run's fingerprint the page carries to its confirmation."""
    found = re.search(r'name="previewed" value="([^"]*)"', page)
    assert found, "no dry run on the page"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def audit(app: Flask) -> list[dict[str, str]]:
    with app.app_context():
        return admin.audit_page(get_redis(), 50)["entries"]


def counts(page: str) -> dict[str, int]:
    """The figures of the first broadcast shown (data-count cells)."""
    return {name: int(value) for name, value in re.findall(r'data-count="(\w+)">(\d+)<', page)[:6]}


def test_an_incident_is_a_dry_run_first_then_declared_and_its_broadcast_watched(
    app: Flask, console: Console, incidents: Incidents, africastalking_standin: AfricasTalkingStandin
) -> None:
    page = console.get("/console/incidents").text
    assert 'value="Littoral"' in page and 'value="Centre"' in page  # the regions of the customer base
    expected = incidents.preview_create(definition())

    dry_run = console.post("/console/incidents", the_form())

    assert dry_run.status_code == 200
    shown = text_of(dry_run.text)
    assert re.search(r'id="preview-recipients">4<', dry_run.text)
    assert re.search(rf'id="preview-segments">{expected.audience.total_segments}<', dry_run.text)
    cost = expected.audience.total_segments * PRICE
    assert f"{cost} XAF ({PRICE} XAF le segment)" in shown
    assert " ".join(expected.audience.bodies["en"].split()) in shown  # the SMS as Grace will read it
    assert incidents.all() == [] and inbox(africastalking_standin, JEAN.phone) == []  # nothing done yet
    assert audit(app)[0]["detail"] == f"dry run create (new): 4 recipient(s), {expected.audience.total_segments} segment(s)"

    confirmed = console.post("/console/incidents", the_form("confirm", previewed=previewed(dry_run.text)))

    assert confirmed.status_code == 303
    (declared,) = incidents.all()
    assert confirmed.headers["Location"] == f"/console/incidents/{declared.id}?done=created"
    assert (declared.regions, declared.waive_penalties, declared.broadcast) == (("Littoral",), True, True)
    page = console.get(confirmed.headers["Location"]).text
    assert "Incident déclaré." in page
    assert counts(page)["sent"] == 0

    background(app)

    live = console.get(f"/console/incidents/{declared.id}", headers={"X-Console-Refresh": "1"}).text
    assert "<html" not in live
    # The Littoral's five phones: Odile's texted STOP, the four others got the SMS.
    assert counts(live) == {"recipients": 5, "sent": 4, "pending": 0, "failed": 0, "unconfirmed": 0, "opted_out": 1}
    assert 'data-state="done"' in live
    assert [len(inbox(africastalking_standin, phone)) for phone in TOLD] == [1, 1, 1, 1]


def test_a_form_changed_after_its_dry_run_is_dry_run_again_not_sent(console, incidents):
    dry_run = console.post("/console/incidents", the_form())

    changed = console.post("/console/incidents", the_form("confirm", previewed=previewed(dry_run.text),
                                                          title_fr="Coupure Douala Nord et Bonaberi"))

    assert changed.status_code == 200
    assert "Le formulaire a changé depuis l'essai à blanc" in text_of(changed.text)
    assert 'id="preview-recipients"' in changed.text
    assert incidents.all() == []


def test_a_bad_incident_shows_each_field_error_beside_its_control_and_sends_nothing(app, console, incidents):
    answer = console.post("/console/incidents", the_form(title_fr="T" * 41, regions=["Mars"], services=...,
                                                         expected_end="2001-01-01T08:00"))

    assert answer.status_code == 422
    for field in ("title-fr", "regions", "services", "expected_end"):
        assert f'id="error-{field}"' in answer.text, field
    assert 'aria-describedby="error-title-fr"' in answer.text
    shown = text_of(answer.text)
    assert "not a region of the customer base: Mars" in shown
    assert "4 champ(s) à corriger" in shown
    assert 'value="TTTTTTTTTT' in answer.text  # what the operator typed stays, to be fixed
    assert incidents.all() == []
    assert audit(app)[0]["detail"].startswith("create refused: ")


def test_a_form_without_its_csrf_token_is_refused(app, console, incidents):
    answer = console.client.post("/console/incidents", data=the_form("confirm"))

    assert answer.status_code == 400
    assert incidents.all() == []
    assert audit(app)[0]["outcome"] == "refused"


def test_an_update_is_a_dry_run_first_and_sends_only_what_changed(app, console, incidents, africastalking_standin):
    declared = incidents.create(definition(broadcast=False))
    page = console.get(f"/console/incidents/{declared.id}").text
    assert 'value="Coupure Douala Nord"' in page  # the update form holds the incident as it stands
    form = the_form(message_fr="Travaux prolonges sur la ligne de Bonaberi.", broadcast=...)

    dry_run = console.post(f"/console/incidents/{declared.id}", form)

    assert dry_run.status_code == 200
    assert "Essai à blanc (Mise à jour 1)" in text_of(dry_run.text)
    assert 'id="preview-no-broadcast"' in dry_run.text
    still = incidents.get(declared.id)
    assert still is not None and still.updates == 0

    confirmed = console.post(f"/console/incidents/{declared.id}", {**form, "step": "confirm",
                                                                   "previewed": previewed(dry_run.text)})

    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == f"/console/incidents/{declared.id}?done=updated"
    updated = incidents.get(declared.id)
    assert updated is not None
    assert (updated.updates, updated.message("fr")) == (1, "Travaux prolonges sur la ligne de Bonaberi.")
    assert updated.message("en") == declared.message("en")
    assert audit(app)[0]["detail"] == f"{declared.id} updated (1)"
    background(app)
    assert inbox(africastalking_standin, GRACE.phone) == []  # no SMS ticked: nobody texted


def test_an_update_that_changes_nothing_is_refused(console, incidents):
    declared = incidents.create(definition(broadcast=False))

    answer = console.post(f"/console/incidents/{declared.id}", the_form(broadcast=...))

    assert answer.status_code == 422
    assert "Rien n'a changé" in text_of(answer.text)


def test_resolving_is_a_dry_run_first_then_confirmed(app, console, incidents, africastalking_standin):
    declared = incidents.create(definition())
    background(app)

    dry_run = console.post(f"/console/incidents/{declared.id}/resolve", {"step": "preview"})

    assert dry_run.status_code == 200
    assert "Essai à blanc (Résolution)" in text_of(dry_run.text)
    assert re.search(r'id="preview-recipients">4<', dry_run.text)
    still = incidents.get(declared.id)
    assert still is not None and still.active

    confirmed = console.post(f"/console/incidents/{declared.id}/resolve", {"step": "confirm"})

    assert confirmed.status_code == 303
    resolved = incidents.get(declared.id)
    assert resolved is not None and not resolved.active
    assert audit(app)[0]["detail"] == f"{declared.id} resolved, broadcast"
    page = console.get(confirmed.headers["Location"]).text
    assert "Incident résolu." in page and 'data-status="resolved"' in page
    assert f'action="/console/incidents/{declared.id}/resolve"' not in page  # nothing left to do to it
    background(app)
    assert len(inbox(africastalking_standin, COUSIN)) == 2  # the outage, then its end

    again = console.post(f"/console/incidents/{declared.id}/resolve", {"step": "confirm"})
    assert again.status_code == 409


def test_the_list_shows_the_incidents_under_way_before_the_resolved(console, incidents):
    over = incidents.create(definition(title={"fr": "Ancienne coupure", "en": "Old outage"}, broadcast=False))
    incidents.resolve(over.id)
    under_way = incidents.create(definition(broadcast=False))

    page = console.get("/console/incidents").text

    listed = re.findall(r'data-incident="([^"]+)" data-status="(\w+)"', page)
    assert listed == [(under_way.id, "active"), (over.id, "resolved")]
