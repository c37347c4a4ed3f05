"""The operator's campaign API: define, steer, restrict, watch, export; admin key, audited."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from state import keys
from tests.campaigns.conftest import AMINA, JEAN, JEAN_METER, OPEN, definition
from tests.conftest import ADMIN_KEY
from utility.campaigns.service import Campaigns

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def post(client: FlaskClient, path: str, body: Any = None, key: str | None = ADMIN_KEY, **kwargs: Any) -> TestResponse:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    if body is not None and "data" not in kwargs:
        kwargs["json"] = body
    return client.post(f"/admin/campaigns{path}", headers=headers, **kwargs)


def audit_trail(redis_client: fakeredis.FakeRedis) -> list[tuple[str, str, str]]:
    return [(e["action"], e["outcome"], e["detail"]) for _id, e in redis_client.xrange(keys.audit())]


def test_the_operator_defines_a_campaign(client: FlaskClient, campaigns: Campaigns) -> None:
    response = post(client, "", definition(quota=250000))
    assert response.status_code == 201
    assert response.json == {
        "code": "GRATUIT", "name": {"fr": "Electricite offerte", "en": "Free electricity"},
        "starts_at": "2026-04-14T08:00:00+01:00", "ends_at": "2026-04-30T20:00:00+01:00",
        "benefit": {"kind": "kwh", "amount": 50}, "eligibility": {}, "quota": 250000, "state": "active",
        "allowlist": 0, "created_at": response.json["created_at"], "status": response.json["status"],
    }
    again = post(client, "", definition())
    assert (again.status_code, again.json) == (409, {"error": "a campaign GRATUIT exists already: choose another code"})
    listed = client.get("/admin/campaigns", headers=AUTH)
    assert [c["code"] for c in listed.json["campaigns"]] == ["GRATUIT"]  # type: ignore[index]


def test_a_bad_definition_gets_422_naming_each_field(client: FlaskClient, campaigns: Campaigns) -> None:
    response = post(client, "", definition(code="STOP", benefit={"kind": "kwh", "amount": 0}, quota=-1))
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"code", "benefit.amount", "quota"}  # type: ignore[index]
    assert post(client, "", data="not json", content_type="text/plain").status_code == 415
    assert campaigns.all() == []


def test_pause_resume_close(client: FlaskClient, campaigns: Campaigns) -> None:
    post(client, "", definition())
    assert post(client, "/gratuit/pause").json["state"] == "paused"  # type: ignore[index]
    assert post(client, "/GRATUIT/pause").status_code == 200  # paused already: nothing to do
    assert post(client, "/GRATUIT/resume").json["state"] == "active"  # type: ignore[index]
    assert post(client, "/GRATUIT/close").json["state"] == "closed"  # type: ignore[index]
    refused = post(client, "/GRATUIT/resume")
    assert (refused.status_code, refused.json) == (409, {"error": "campaign GRATUIT is closed: it cannot be resumed"})
    assert post(client, "/GRATUIT/restart").status_code == 404
    assert post(client, "/NOPE/pause").status_code == 404


def test_the_allowlist_is_uploaded_as_csv(client: FlaskClient, campaigns: Campaigns) -> None:
    post(client, "", definition())
    ok = post(client, "/GRATUIT/allowlist", data=f"number\n{JEAN_METER}\n{AMINA.account_number}\n",
              content_type="text/csv")
    assert (ok.status_code, ok.json) == (200, {"campaign": "GRATUIT", "allowlist": 2})
    bad = post(client, "/GRATUIT/allowlist", data=f"{JEAN_METER}\n01400000099\n", content_type="text/csv")
    assert bad.status_code == 422
    assert bad.json == {"errors": [{"line": 2, "error": "no account or meter 01400000099 in the customer base"}],
                        "more": 0}
    assert post(client, "/GRATUIT/allowlist", data="x", content_type="application/json").status_code == 415
    assert campaigns.get("GRATUIT").allowlist == 2  # type: ignore[union-attr]


def test_the_campaign_page_shows_its_figures(client: FlaskClient, campaigns: Campaigns) -> None:
    post(client, "", definition(quota=10))
    campaigns.register("GRATUIT", JEAN_METER, JEAN.phone, "ussd", "fr", now=OPEN)
    campaigns.register("GRATUIT", JEAN_METER, JEAN.phone, "sms", "fr", now=OPEN)
    shown = client.get("/admin/campaigns/GRATUIT", headers=AUTH).json
    assert shown is not None
    assert (shown["registered"], shown["fulfilled"], shown["failed"], shown["remaining_quota"]) == (1, 0, 0, 9)
    assert shown["refusals"]["already"] == 1
    assert shown["fulfilment"] == {"to_do": 1, "waiting": 1, "in_flight": 0, "progress": 0.0, "per_minute": 0.0,
                                   "expected_end": None}
    assert shown["campaign"]["code"] == "GRATUIT" and len(shown["registrations_per_minute"]) == 15
    assert client.get("/admin/campaigns/NOPE", headers=AUTH).status_code == 404


def test_the_registrations_are_streamed_as_csv(client: FlaskClient, campaigns: Campaigns, app: Flask,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from utility.campaigns import service

    monkeypatch.setattr(service, "EXPORT_CHUNK", 2)  # several chunks from a few registrations
    post(client, "", definition(eligibility={"tariffs": ["prepaid", "social", "water"]}))
    made = [campaigns.register("GRATUIT", number, phone, channel, "fr", now=OPEN)
            for number, phone, channel in [(JEAN_METER, JEAN.phone, "ussd"), ("CM-1000002", AMINA.phone, "sms"),
                                           ("CM-1000006", "+237699000006", "ussd")]]
    reads: list[int] = []
    real_lrange = campaigns.redis.lrange

    def counted(*args: Any) -> list[str]:
        reads.append(1)
        return real_lrange(*args)

    monkeypatch.setattr(campaigns.redis, "lrange", counted)
    response = client.get("/admin/campaigns/GRATUIT/registrations.csv", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["reference", "account", "meter", "phone", "channel", "registered_at", "state", "reason"]
    assert [row[0] for row in rows[1:]] == [v.reference for v in made]
    assert rows[1][1:] == ["CM-1000001", JEAN_METER, JEAN.phone, "ussd", "2026-04-20T11:00:00+00:00", "pending", ""]
    assert len(reads) == 2  # a chunk of two, then one of one


def test_without_the_key_nothing_happens_and_every_call_is_audited(
    client: FlaskClient, campaigns: Campaigns, fake_redis: fakeredis.FakeRedis
) -> None:
    refused = post(client, "", definition(), key="guess")
    assert refused.status_code == 401 and campaigns.all() == []
    assert client.get("/admin/campaigns/GRATUIT/registrations.csv").status_code == 401
    post(client, "", definition())
    post(client, "", definition(code="NO"))
    post(client, "/GRATUIT/pause")
    assert audit_trail(fake_redis) == [
        ("POST /admin/campaigns", "refused", "wrong admin key"),
        ("GET /admin/campaigns/GRATUIT/registrations.csv", "refused",
         "missing admin key: send Authorization: Bearer <ADMIN_KEY>"),
        ("POST /admin/campaigns", "done", "created GRATUIT"),
        ("POST /admin/campaigns", "rejected", "refused: code"),
        ("POST /admin/campaigns/GRATUIT/pause", "done", "GRATUIT pause: now paused"),
    ]


def test_without_an_admin_key_there_is_no_campaign_api(monkeypatch: pytest.MonkeyPatch,
                                                        fake_redis: fakeredis.FakeRedis) -> None:
    from app import create_app

    monkeypatch.delenv("GUICHET_ADMIN_KEY", raising=False)
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis, "ADMIN_KEY": None})
    assert app.test_client().post("/admin/campaigns", json=definition()).status_code == 404
    assert json.loads(json.dumps(definition()))  # (the same definition the other tests post)
