"""Signing in to the console: the admin keys, a session that can be ended, CSRF, idle timeout, audit."""
from __future__ import annotations

import pytest
from flask import Flask
from markupsafe import escape

from app import create_app
from state import keys
from tests.conftest import ADMIN_KEY
from tests.console.conftest import csrf_of, sign_in
from utility import admin


def audit(app: Flask) -> list[dict]:
    with app.app_context():
        from state.store import get_redis

        return admin.audit_page(get_redis(), 50)["entries"]


def test_without_an_admin_key_the_console_does_not_exist(fake_redis):
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis})
    client = app.test_client()
    assert client.get("/console/").status_code == 404
    assert client.get("/console/signin").status_code == 404


def test_a_page_asks_for_sign_in_and_comes_back_after_it(client):
    answer = client.get("/console/orders?q=X")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/console/signin?next=/console/orders?q%3DX"
    form = client.get(answer.headers["Location"])
    signed = client.post("/console/signin", data={"csrf_token": csrf_of(form.text), "key": ADMIN_KEY,
                                                  "next": "/console/orders?q=X"})
    assert signed.status_code == 303 and signed.headers["Location"] == "/console/orders?q=X"


def test_a_wrong_key_is_refused_and_audited(app, client):
    form = client.get("/console/signin")
    answer = client.post("/console/signin", data={"csrf_token": csrf_of(form.text), "key": "not-the-key-at-all"})
    assert answer.status_code == 401
    assert "Clé refusée." in answer.text
    assert client.get("/console/").status_code == 302  # still not signed in
    (entry,) = audit(app)
    assert (entry["who"], entry["outcome"], entry["action"]) == ("unknown", "refused", "POST /console/signin")


def test_sign_in_without_the_forms_token_is_refused(client):
    client.get("/console/signin")
    answer = client.post("/console/signin", data={"csrf_token": "forged", "key": ADMIN_KEY})
    assert answer.status_code == 400
    assert client.get("/console/").status_code == 302


def test_a_sign_in_cannot_send_the_operator_to_another_site(client):
    form = client.get("/console/signin")
    answer = client.post("/console/signin", data={"csrf_token": csrf_of(form.text), "key": ADMIN_KEY,
                                                  "next": "https://evil.example/console"})
    assert answer.headers["Location"] == "/console/"


def test_an_action_without_its_csrf_token_is_refused_and_audited(app, console):
    answer = console.client.post("/console/backends/vending", data={"state": "down"})
    assert answer.status_code == 400
    assert audit(app)[0]["outcome"] == "refused"
    with app.app_context():
        from state import switches
        from state.store import get_redis

        assert switches.states(get_redis())["vending"] == "up"


def test_sign_out_ends_the_session_for_a_copied_cookie_too(app, console):
    cookie = console.client.get_cookie("guichet_console", path="/console")
    assert cookie is not None
    assert console.post("/console/signout").status_code == 303
    thief = app.test_client()
    thief.set_cookie("guichet_console", cookie.value, path="/console")
    assert thief.get("/console/").status_code == 302
    assert [e["detail"] for e in audit(app)][:2] == ["console sign-out", "console sign-in"]


def test_the_session_ends_after_the_idle_timeout(fake_redis, console):
    (key,) = fake_redis.keys(keys.console_session("*"))
    assert 0 < fake_redis.ttl(key) <= 900
    fake_redis.delete(key)  # what Redis does when the idle timeout passes
    assert console.get("/console/").status_code == 302


def test_the_overviews_own_refresh_does_not_keep_the_session_alive(fake_redis, console):
    (key,) = fake_redis.keys(keys.console_session("*"))
    fake_redis.expire(key, 30)
    assert console.get("/console/", headers={"X-Console-Refresh": "1"}).status_code == 200
    assert fake_redis.ttl(key) <= 30
    console.get("/console/")  # the operator's own click does
    assert fake_redis.ttl(key) > 800


def test_a_session_ends_after_its_maximum_age_whatever_happens(app, fake_redis, console):
    (key,) = fake_redis.keys(keys.console_session("*"))
    fake_redis.hset(key, "started", "1000")
    assert console.get("/console/").status_code == 302


@pytest.mark.parametrize("lang,title", [("fr", "Vue d'ensemble"), ("en", "Overview")])
def test_the_operator_chooses_the_language(console, lang, title):
    console.get(f"/console/language/{lang}?next=/console/")
    assert f"<h1>{escape(title)}</h1>" in console.get("/console/").text


def test_pages_say_where_they_may_be_shown_and_loaded_from(console):
    answer = console.get("/console/")
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"


def test_two_named_operators_are_told_apart_in_the_audit(fake_redis):
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis,
                      "ADMIN_KEYS": {"alice": "alice-key-0123456789", "bob": "bob-key-01234567890"}})
    bob = sign_in(app.test_client(), "bob-key-01234567890")
    assert "bob" in bob.get("/console/").text
    assert audit(app)[0]["who"] == "bob"
