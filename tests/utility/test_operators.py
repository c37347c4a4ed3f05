"""Named admin keys and the audit trail: each operator acts under their own key, kept hashed;
every call is written down with who, what, when, from where and how it ended, and the trail
is read back a page at a time (GET /admin/audit, `guichet audit`)."""
from __future__ import annotations

import logging
import re

import click
import fakeredis
import pytest
from flask import Flask

from app import DEFAULTS, check_live_config, create_app, live_config_problems
from state import keys
from utility.operators import MIN_KEY_LENGTH, Keyring

ALICE_KEY = "alice-0c1f9a6e4b2d7c58"
BOT_KEY = "ops-bot-7d3e1b9c5a2f4e60"
LEGACY_KEY = "legacy-admin-key-39af"
CAMPAIGN = {"code": "GRATUIT", "name": {"fr": "Electricite offerte", "en": "Free electricity"},
            "starts_at": "2026-01-01T08:00", "ends_at": "2027-06-30T20:00", "benefit": {"kind": "kwh", "amount": 50}}


def make_app(fake_redis: fakeredis.FakeRedis, **config: object) -> Flask:
    return create_app({"TESTING": True, "REDIS_CLIENT": fake_redis, **config})


@pytest.fixture
def team(fake_redis: fakeredis.FakeRedis) -> Flask:
    """Two operators, each with a key of their own."""
    return make_app(fake_redis, ADMIN_KEYS={"alice": ALICE_KEY, "ops-bot": BOT_KEY})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def trail(redis_client: fakeredis.FakeRedis) -> list[dict[str, str]]:
    return [fields for _id, fields in redis_client.xrange(keys.audit())]


def test_two_operators_act_each_under_their_own_name(team: Flask, fake_redis: fakeredis.FakeRedis) -> None:
    client = team.test_client()
    assert client.post("/admin/backends/vending", json={"state": "down"}, headers=bearer(ALICE_KEY)).status_code == 200
    assert client.post("/admin/campaigns", json=CAMPAIGN, headers=bearer(BOT_KEY)).status_code == 201
    assert client.post("/admin/backends/vending", json={"state": "up"}, headers=bearer(BOT_KEY)).status_code == 200

    assert [(e["who"], e["action"], e["outcome"]) for e in trail(fake_redis)] == [
        ("alice", "POST /admin/backends/vending", "done"),
        ("ops-bot", "POST /admin/campaigns", "done"),
        ("ops-bot", "POST /admin/backends/vending", "done"),
    ]
    assert trail(fake_redis)[1]["detail"] == "created GRATUIT"


def test_the_single_key_of_earlier_releases_is_the_operator_named_admin(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    client = make_app(fake_redis, ADMIN_KEY=LEGACY_KEY, ADMIN_KEYS={"alice": ALICE_KEY}).test_client()
    assert client.get("/admin/services", headers=bearer(LEGACY_KEY)).status_code == 200
    assert client.get("/admin/services", headers=bearer(ALICE_KEY)).status_code == 200
    assert [e["who"] for e in trail(fake_redis)] == ["admin", "alice"]


@pytest.mark.parametrize("variable", [f'{{"alice": "{ALICE_KEY}", "ops-bot": "{BOT_KEY}"}}',
                                      f"alice:{ALICE_KEY}, ops-bot:{BOT_KEY}"])
def test_the_keys_come_from_the_environment_as_json_or_name_colon_key(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("GUICHET_ADMIN_KEYS", variable)
    monkeypatch.delenv("GUICHET_ADMIN_KEY", raising=False)
    app = make_app(fake_redis)
    assert sorted(app.config["ADMIN_KEYS"]) == ["alice", "ops-bot"]
    client = app.test_client()
    assert client.get("/admin/calls", headers=bearer(BOT_KEY)).status_code == 200
    assert [e["who"] for e in trail(fake_redis)] == ["ops-bot"]


def test_a_wrong_key_is_refused_and_audited_as_unknown_from_its_address(
    team: Flask, fake_redis: fakeredis.FakeRedis
) -> None:
    client = team.test_client()
    response = client.post("/admin/backends/vending", json={"state": "down"}, headers=bearer("guessed-" + ALICE_KEY),
                           environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 401
    (entry,) = trail(fake_redis)
    assert {k: entry[k] for k in ("who", "action", "outcome", "detail", "remote_addr")} == {
        "who": "unknown", "action": "POST /admin/backends/vending", "outcome": "refused",
        "detail": "wrong admin key", "remote_addr": "203.0.113.7"}
    assert "via" not in entry


def test_behind_a_trusted_proxy_the_audit_names_the_client_and_the_proxy(fake_redis: fakeredis.FakeRedis) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.20", **bearer(ALICE_KEY)}
    untrusted = make_app(fake_redis, ADMIN_KEYS={"alice": ALICE_KEY}).test_client()
    untrusted.get("/admin/calls", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.5"})
    proxied = make_app(fake_redis, ADMIN_KEYS={"alice": ALICE_KEY}, TRUSTED_PROXIES="10.0.0.0/8").test_client()
    proxied.get("/admin/calls", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.5"})

    first, second = trail(fake_redis)
    assert (first["remote_addr"], first.get("via")) == ("10.0.0.5", None)  # anyone can write the header
    assert (second["remote_addr"], second["via"]) == ("198.51.100.20", "10.0.0.5")


def test_the_operator_reads_the_audit_a_page_at_a_time(team: Flask, fake_redis: fakeredis.FakeRedis) -> None:
    client = team.test_client()
    for state in ("down", "up", "down"):
        client.post("/admin/backends/vending", json={"state": state}, headers=bearer(ALICE_KEY))
    client.get("/admin/services", headers=bearer("not-a-key-at-all"))

    first = client.get("/admin/audit?limit=2", headers=bearer(BOT_KEY)).json
    assert [(e["who"], e["outcome"]) for e in first["entries"]] == [("unknown", "refused"), ("alice", "done")]
    assert first["entries"][1]["detail"].startswith("vending down")
    second = client.get(f"/admin/audit?limit=2&before={first['next']}", headers=bearer(BOT_KEY)).json
    assert [e["detail"][:12] for e in second["entries"]] == ["vending up, ", "vending down"]
    assert second["next"] is None  # the first call is the oldest: no page after it

    # Reading is audited too, and those entries, newer than any cursor, do not shift the pages.
    latest = client.get("/admin/audit?limit=1", headers=bearer(BOT_KEY)).json["entries"][0]
    assert (latest["who"], latest["action"], latest["detail"]) == (
        "ops-bot", "GET /admin/audit", f"read 2 entries before {first['next']}")
    again = client.get(f"/admin/audit?limit=2&before={first['next']}", headers=bearer(BOT_KEY)).json
    assert again["entries"] == second["entries"]


@pytest.mark.parametrize("query", ["limit=0", "limit=5000", "limit=many", "before=yesterday", "before=1-2-3"])
def test_a_bad_page_request_is_refused_with_what_is_expected(team: Flask, query: str) -> None:
    response = team.test_client().get(f"/admin/audit?{query}", headers=bearer(ALICE_KEY))
    assert response.status_code == 400
    assert re.search(r"limit is from 1 to|before is the id of an audit entry", response.json["error"])


def test_guichet_audit_prints_the_trail_newest_first(team: Flask, fake_redis: fakeredis.FakeRedis) -> None:
    client = team.test_client()
    client.post("/admin/backends/vending", json={"state": "down"}, headers=bearer(ALICE_KEY),
                environ_base={"REMOTE_ADDR": "192.0.2.10"})
    client.get("/admin/services", headers=bearer("guessed-key-guessed-key"), environ_base={"REMOTE_ADDR": "203.0.113.7"})
    client.get("/admin/calls", headers=bearer(BOT_KEY))

    result = team.test_cli_runner().invoke(args=["audit", "--limit", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "ops-bot  done  GET /admin/calls  from 127.0.0.1" in lines[0]
    assert "unknown  refused  GET /admin/services  from 203.0.113.7  wrong admin key" in lines[1]
    (_id, _fields), = fake_redis.xrange(keys.audit(), count=1)  # the oldest: alice's, on the next page
    cursor = lines[1].split()[0]
    assert lines[2] == f"more: guichet audit --limit 2 --before {cursor}"

    rest = team.test_cli_runner().invoke(args=["audit", "--before", cursor])
    assert rest.exit_code == 0
    assert rest.output.splitlines()[0].startswith(f"{_id}  ")
    assert "alice  done  POST /admin/backends/vending  from 192.0.2.10  vending down" in rest.output
    assert "more:" not in rest.output


def test_guichet_audit_without_redis_url_says_where_the_trail_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("GUICHET_REDIS_URL", raising=False)
    result = create_app({"TESTING": True}).test_cli_runner().invoke(args=["audit"])
    assert result.exit_code == 2
    assert "set REDIS_URL" in result.output


def test_no_plain_key_stays_in_the_config_nor_reaches_the_log(
    fake_redis: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(fake_redis, ADMIN_KEY=LEGACY_KEY, ADMIN_KEYS={"alice": ALICE_KEY, "ops-bot": BOT_KEY})
    client = app.test_client()
    client.get("/admin/calls", headers=bearer(ALICE_KEY))
    client.get("/admin/calls", headers=bearer(BOT_KEY + "x"))

    config = repr(dict(app.config)) + " ".join(map(str, app.config["ADMIN_KEYS"].values()))
    logged = caplog.text + " ".join(repr(record.args) for record in caplog.records)
    recorded = " ".join(" ".join(entry.values()) for entry in trail(fake_redis))
    for key in (ALICE_KEY, BOT_KEY, LEGACY_KEY):
        assert key not in config
        assert key not in logged
        assert key not in recorded
    assert app.config["ADMIN_KEY"] is None
    assert sorted(app.config["ADMIN_KEYS"]) == ["admin", "alice", "ops-bot"]
    assert "keys named admin, alice, ops-bot" in caplog.text


def test_only_named_keys_still_open_the_whole_admin_api(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, ADMIN_KEY=None, ADMIN_KEYS={"alice": ALICE_KEY}).test_client()
    for path in ("/admin/services", "/admin/campaigns", "/admin/incidents", "/admin/audit"):
        assert client.get(path, headers=bearer(ALICE_KEY)).status_code == 200, path


def test_with_no_key_at_all_there_is_no_admin_api(fake_redis: fakeredis.FakeRedis,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUICHET_ADMIN_KEY", raising=False)
    monkeypatch.delenv("GUICHET_ADMIN_KEYS", raising=False)
    client = make_app(fake_redis, ADMIN_KEY=None, ADMIN_KEYS={}).test_client()
    assert client.get("/admin/audit", headers=bearer(ALICE_KEY)).status_code == 404


# -- refused at startup ------------------------------------------------------------------------------
def test_a_short_key_stops_the_server_from_starting_naming_the_operator_not_the_key(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    app = make_app(fake_redis, ADMIN_KEYS={"alice": ALICE_KEY, "bob": "hunter2"})
    with pytest.raises(click.ClickException) as refused:
        check_live_config(app)
    message = refused.value.message
    assert f"GUICHET_ADMIN_KEYS: the key of 'bob' is shorter than {MIN_KEY_LENGTH} characters" in message
    assert "hunter2" not in message
    assert live_config_problems({**DEFAULTS, "ADMIN_KEY": "secret"}) == [
        f"GUICHET_ADMIN_KEY: the key of 'admin' is shorter than {MIN_KEY_LENGTH} characters; draw one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(24))'"]
    assert live_config_problems({**DEFAULTS, "ADMIN_KEYS": {"alice": ALICE_KEY}}) == []


@pytest.mark.parametrize(("named", "problem"), [
    ({"alice": ALICE_KEY, "bob": ALICE_KEY}, "'alice', 'bob' share one key"),
    ({"alice smith": ALICE_KEY}, "the name 'alice smith' is not a plain word"),
    ({"alice": ""}, "'alice' has no key"),
    ({"alice": "two words are a key with spaces"}, "holds a space or a control character"),
    (f"alice={ALICE_KEY}", "an entry is not name:key"),
    (["alice", ALICE_KEY], "neither a JSON object of name: key nor name:key,name:key"),
])
def test_keys_the_audit_could_not_tell_apart_or_no_header_could_carry_are_named_at_start(
    named: object, problem: str
) -> None:
    (found,) = live_config_problems({**DEFAULTS, "ADMIN_KEYS": named})
    assert problem in found
    assert ALICE_KEY not in found


def test_the_key_named_admin_is_given_once() -> None:
    (found,) = Keyring.from_config({"ADMIN_KEY": LEGACY_KEY, "ADMIN_KEYS": {"admin": ALICE_KEY}}).problems
    assert found == "GUICHET_ADMIN_KEYS names 'admin' twice (GUICHET_ADMIN_KEY is the key named admin)"


def test_a_key_is_matched_whole(team: Flask) -> None:
    keyring: Keyring = team.config["ADMIN_KEYS"]
    assert keyring.name_of(ALICE_KEY) == "alice"
    for almost in (ALICE_KEY[:-1], ALICE_KEY + "0", ALICE_KEY.upper(), "", "é" * 20):
        assert keyring.name_of(almost) is None
