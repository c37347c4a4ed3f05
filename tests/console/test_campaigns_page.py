"""The console's campaigns (/console/campaigns) through Flask's test client: an operator defines
a campaign with the form, sees it listed, pauses, resumes and closes it (each action in the
audit), is shown every bad field of a wrong definition beside its control, watches a
campaign's progress, registrations per minute and refusals, and downloads its registrations."""
from __future__ import annotations

import datetime
import html
import re
from typing import Any

import pytest
from flask import Flask

from state.store import get_redis
from tests.campaigns.conftest import AMINA, CUSTOMERS, JEAN
from tests.console.conftest import Console
from utility import admin
from utility.campaigns.service import Campaigns
from utility.customers import RedisCustomerBase
from utility.services import services

LOCAL_MINUTE = "%Y-%m-%dT%H:%M"


@pytest.fixture
def campaigns(app: Flask) -> Campaigns:
    with app.app_context():
        RedisCustomerBase(get_redis()).upsert(CUSTOMERS)
        return services(app).campaigns


def audit(app: Flask) -> list[dict[str, str]]:
    """The audit entries, newest first."""
    with app.app_context():
        return admin.audit_page(get_redis(), 50)["entries"]


def text_of(page: str) -> str:
    """The page's text as the operator reads it (tags dropped, entities decoded, spaces folded)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def the_form(campaigns: Campaigns, **changes: str) -> dict[str, str]:
    """The create form as an operator fills it: GRATUIT, 50 kWh, open since yesterday for a week."""
    opens = campaigns.now() - datetime.timedelta(days=1)
    form = {"code": "GRATUIT", "name_fr": "Electricite offerte", "name_en": "Free electricity",
            "starts_at": opens.strftime(LOCAL_MINUTE),
            "ends_at": (opens + datetime.timedelta(days=7)).strftime(LOCAL_MINUTE),
            "benefit_kind": "kwh", "benefit_amount": "50", "tariffs": "prepaid, social", "regions": "", "quota": "4"}
    form.update(changes)
    return form


def definition(campaigns: Campaigns, **changes: Any) -> dict[str, Any]:
    """The same campaign as the admin API's JSON."""
    opens = campaigns.now() - datetime.timedelta(days=1)
    data = {"code": "GRATUIT", "name": {"fr": "Electricite offerte", "en": "Free electricity"},
            "starts_at": opens.isoformat(), "ends_at": (opens + datetime.timedelta(days=7)).isoformat(),
            "benefit": {"kind": "kwh", "amount": 50}, "quota": 4}
    data.update(changes)
    return data


def test_an_operator_creates_a_campaign_with_the_form_and_sees_it_listed(app, console: Console, campaigns):
    page = console.get("/console/campaigns")
    assert page.status_code == 200
    assert 'for="benefit_amount"' in page.text and 'id="benefit_amount"' in page.text  # a label on each control

    answer = console.post("/console/campaigns", the_form(campaigns))

    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/campaigns/GRATUIT?done=created"
    created = campaigns.get("GRATUIT")
    assert created is not None
    assert (created.quota, created.tariffs, created.benefit.to_json()) == (4, ("prepaid", "social"),
                                                                          {"kind": "kwh", "amount": 50})
    assert "Campagne créée." in console.get(answer.headers["Location"]).text
    listed = console.get("/console/campaigns").text
    assert re.search(r'data-campaign="GRATUIT" data-status="active"', listed)
    assert "Electricite offerte" in listed
    entry = audit(app)[0]
    assert (entry["action"], entry["outcome"], entry["detail"]) == ("POST /console/campaigns", "done",
                                                                    "created campaign GRATUIT")


def test_a_bad_definition_shows_each_field_error_beside_its_control_and_creates_nothing(app, console, campaigns):
    form = the_form(campaigns, code="STOP", benefit_amount="-5", quota="lots",
                    ends_at=(campaigns.now() - datetime.timedelta(days=3)).strftime(LOCAL_MINUTE))

    answer = console.post("/console/campaigns", form)

    assert answer.status_code == 422
    for field in ("code", "benefit-amount", "ends_at", "quota"):
        assert f'id="error-{field}"' in answer.text, field
    assert 'aria-describedby="error-quota"' in answer.text
    shown = text_of(answer.text)
    assert "STOP is a word the SMS channel answers itself" in shown
    assert "4 champ(s) à corriger" in shown
    assert 'value="lots"' in answer.text  # what the operator typed stays, to be fixed
    assert campaigns.all() == []
    assert audit(app)[0]["detail"].startswith("campaign refused: ")


def test_a_code_taken_already_is_said_on_the_code_field(console, campaigns):
    campaigns.create(definition(campaigns))

    answer = console.post("/console/campaigns", the_form(campaigns, name_fr="Autre campagne"))

    assert answer.status_code == 409
    assert 'id="error-code"' in answer.text
    assert "Une campagne GRATUIT existe déjà" in text_of(answer.text)


def test_pause_resume_and_close_change_the_campaign_and_are_each_audited(app, console, campaigns):
    campaigns.create(definition(campaigns))
    for action, state, notice in (("pause", "paused", "Campagne mise en pause."),
                                  ("resume", "active", "Campagne reprise."),
                                  ("close", "closed", "Campagne clôturée.")):
        answer = console.post(f"/console/campaigns/GRATUIT/{action}")
        assert answer.status_code == 303, action
        found = campaigns.get("GRATUIT")
        assert found is not None and found.state == state
        assert notice in console.get(answer.headers["Location"]).text
        entry = audit(app)[0]
        assert (entry["action"], entry["outcome"], entry["detail"]) == (
            f"POST /console/campaigns/GRATUIT/{action}", "done", f"GRATUIT {action}: now {state}")

    refused = console.post("/console/campaigns/GRATUIT/resume")

    assert refused.status_code == 409
    assert "Impossible de reprendre : la campagne est clôturée." in text_of(refused.text)
    assert audit(app)[0]["detail"] == "GRATUIT resume: refused, closed"


def test_a_form_without_its_csrf_token_is_refused(app, console, campaigns):
    campaigns.create(definition(campaigns))

    forged = console.client.post("/console/campaigns/GRATUIT/close", data={})
    created = console.client.post("/console/campaigns", data=the_form(campaigns, code="AUTRE"))

    assert (forged.status_code, created.status_code) == (400, 400)
    found = campaigns.get("GRATUIT")
    assert found is not None and found.state == "active"
    assert campaigns.get("AUTRE") is None
    assert [entry["outcome"] for entry in audit(app)[:2]] == ["refused", "refused"]


def test_the_campaign_page_shows_its_progress_registrations_per_minute_and_refusals(console, campaigns):
    campaigns.create(definition(campaigns))
    for number in (JEAN.meter_number, AMINA.meter_number):
        assert campaigns.register("GRATUIT", number, JEAN.phone, "ussd", "fr").accepted
    campaigns.register("GRATUIT", JEAN.meter_number, JEAN.phone, "ussd", "fr")  # already
    campaigns.register("GRATUIT", "99999999999", JEAN.phone, "ussd", "fr")  # unknown number
    campaigns.finish("GRATUIT", campaigns.claim("GRATUIT", 1, 1, 60)[0])

    page = console.get("/console/campaigns/GRATUIT").text

    assert re.search(r'<progress id="taken"[^>]* max="4" value="2"', page)
    assert re.search(r'<progress id="fulfilment"[^>]* max="2" value="1"', page)
    assert re.search(r'data-reason="already">1<', page) and re.search(r'data-reason="unknown_number">1<', page)
    assert re.search(r'data-reason="quota">0<', page)
    this_minute = campaigns.now().strftime("%H:%M")
    assert f"<title>{this_minute}: 2</title>" in page  # the bar of this minute
    assert 'href="/console/campaigns/GRATUIT/registrations.csv"' in page


def test_the_campaign_page_refreshes_its_figures_alone(console, campaigns):
    campaigns.create(definition(campaigns))
    campaigns.register("GRATUIT", JEAN.meter_number, JEAN.phone, "ussd", "fr")

    live = console.get("/console/campaigns/GRATUIT", headers={"X-Console-Refresh": "1"})

    assert live.status_code == 200
    assert "<html" not in live.text
    assert '<strong id="registered">1</strong>' in live.text


def test_the_registrations_download_is_the_exports_csv_and_is_audited(app, console, campaigns):
    campaigns.create(definition(campaigns))
    verdict = campaigns.register("GRATUIT", JEAN.meter_number, JEAN.phone, "ussd", "fr")

    answer = console.get("/console/campaigns/GRATUIT/registrations.csv")

    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert 'filename="GRATUIT-registrations.csv"' in answer.headers["Content-Disposition"]
    header, row = answer.text.splitlines()
    assert header == "reference,account,meter,phone,channel,registered_at,state,reason"
    assert row.startswith(f"{verdict.reference},{JEAN.account_number},{JEAN.meter_number},{JEAN.phone},ussd,")
    entry = audit(app)[0]
    assert (entry["action"], entry["detail"]) == ("GET /console/campaigns/GRATUIT/registrations.csv",
                                                  "GRATUIT: export")


def test_an_unknown_campaign_is_not_found(console):
    answer = console.get("/console/campaigns/NOPE")
    assert answer.status_code == 404
    assert "Aucune campagne NOPE." in answer.text
