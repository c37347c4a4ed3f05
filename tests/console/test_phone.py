"""The web phone (/console/phone) through Flask's test client: a trainer dials as a demo
customer and answers the screens; each send reaches the app's own Africa's Talking endpoint
as the gateway's form; the screen's length is shown against its limit; the phone's SMS are
listed from the file provider's file. Open on the embedded store, behind sign-in otherwise."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from state import journal
from state.store import embedded_server, get_redis
from utility.admin import audit_page
from utility.console.phone import Answer
from utility.customers import RedisCustomerBase
from utility.demo import PHONE_ONE_METER, PHONE_SEVERAL_ACCOUNTS, seed_demo

OPERATOR_KEY = "bob-key-for-the-phone-tests"
OTHER_PHONE = "+237699000077"


def _seed(app: Flask) -> None:
    with app.app_context():
        seed_demo(RedisCustomerBase(get_redis()), 5)


@pytest.fixture
def sms_file(tmp_path: Path) -> Path:
    return tmp_path / "sms.jsonl"


@pytest.fixture
def demo_app(monkeypatch: pytest.MonkeyPatch, sms_file: Path) -> Iterator[Flask]:
    """`make run`: the embedded store, no admin key, SMS written whole to a file."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    fakeredis.FakeRedis(server=embedded_server()).flushall()  # one embedded store per process
    app = create_app({"TESTING": True, "SERVICE_CODES": ["*384#"], "SMS_PROVIDER": "file",
                      "SMS_FILE": str(sms_file)})
    _seed(app)
    yield app
    fakeredis.FakeRedis(server=embedded_server()).flushall()


@pytest.fixture
def demo(demo_app: Flask) -> FlaskClient:
    return demo_app.test_client()


def served_app(**config: object) -> Flask:
    """A deployment's app: its own Redis, so the phone is behind the console's sign-in."""
    app = create_app({"TESTING": True, "REDIS_CLIENT": fakeredis.FakeRedis(server=fakeredis.FakeServer(),
                                                                            decode_responses=True),
                      "SERVICE_CODES": ["*384#"], **config})
    _seed(app)
    return app


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields and inputs of the phone's form, as the browser would send them back."""
    fields = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return {name: html.unescape(value) for name, value in fields.items()}


def screen(page: str) -> str:
    found = re.search(r'<pre class="screen" id="screen">(.*?)</pre>', page, re.S)
    assert found, page
    return html.unescape(found.group(1))


class WebPhone:
    """What a trainer does on the page: dial, type an answer, send, hang up."""

    def __init__(self, client: FlaskClient, phone: str = PHONE_ONE_METER) -> None:
        self.client = client
        self.html = self._ok(client.get("/console/phone/"))
        self.fields = form_fields(self.html) | {"phone": phone}

    def _ok(self, response) -> str:
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_data(as_text=True)

    def press(self, action: str, entry: str = "") -> WebPhone:
        self.html = self._ok(self.client.post("/console/phone/", data={**self.fields, "action": action,
                                                                        "entry": entry}))
        self.fields = form_fields(self.html)
        return self

    def dial(self) -> WebPhone:
        return self.press("dial")

    def send(self, entry: str) -> WebPhone:
        return self.press("send", entry)

    @property
    def page(self) -> str:
        """The page's text as the browser shows it (entities resolved)."""
        return html.unescape(self.html)

    @property
    def screen(self) -> str:
        return screen(self.html)


def test_the_page_offers_the_service_code_and_the_demo_customers(demo):
    page = html.unescape(demo.get("/console/phone/").get_data(as_text=True))
    assert form_fields(page)["code"] == "*384#"
    assert form_fields(page)["phone"] == PHONE_ONE_METER
    assert f'<option value="{PHONE_SEVERAL_ACCOUNTS}">Aminatou Bello' in page
    assert 'name="action" value="dial"' in page


def test_dialling_shows_the_main_menu_as_a_screen_that_waits(demo):
    phone = WebPhone(demo).dial()
    assert "1. Acheter des unités" in phone.screen
    assert "CON : l'écran attend une réponse" in phone.page
    assert phone.fields["session"].startswith("ATUid_")
    assert phone.fields["text"] == ""


def test_each_send_posts_every_input_so_far_joined_by_stars_as_the_gateway_does(demo, demo_app):
    phone = WebPhone(demo).dial().send("1").send("5000")
    assert phone.fields["text"] == "1*5000"
    assert "5 000 FCFA" in phone.screen
    # The session the app keeps is the one the web phone's hops built, under the gateway's session id.
    with demo_app.app_context():
        hops = [e for e in journal.read(get_redis(), 100) if e.get("session") == phone.fields["session"]]
    assert hops, "the hops were not answered by the app's own session store"


def test_buying_units_ends_with_the_reference_and_the_phone_can_dial_again(demo):
    phone = WebPhone(demo).dial()
    for answer in ("1", "5000", "1", "1", "1"):  # buy, amount (the one meter), pay, this number, confirm
        phone.send(answer)
    assert "Réf." in phone.screen
    assert "END : la session est terminée" in phone.page
    assert phone.fields["session"] == "" and phone.fields["text"] == ""
    assert 'name="action" value="dial"' in phone.page


def test_the_screen_length_is_shown_against_182_gsm7_characters(demo):
    phone = WebPhone(demo).dial()
    length = len(phone.screen)
    assert f"{length} sur 182 caractères (GSM-7)" in phone.page


def test_a_screen_with_a_character_outside_gsm7_is_measured_against_80():
    answer = Answer(200, "CON Coupure prévue – tarif réduit")  # the dash is not GSM-7
    assert answer.kind == "CON"
    assert answer.size == (len("Coupure prévue – tarif réduit"), 80)
    too_long = Answer(200, "END " + "ô" * 81)
    assert not too_long.fits


def test_sending_nothing_keeps_the_screen_and_says_so(demo):
    phone = WebPhone(demo).dial()
    menu = phone.screen
    phone.send("")
    assert phone.screen == menu
    assert "Tapez une réponse avant d'envoyer." in phone.page
    assert phone.fields["text"] == ""


def test_hanging_up_tells_the_app_the_session_ended_incomplete_so_it_can_be_resumed(demo, demo_app):
    phone = WebPhone(demo).dial().send("1")
    session = phone.fields["session"]
    phone.press("hangup")
    assert phone.fields["session"] == ""
    with demo_app.app_context():
        ends = [e for e in journal.read(get_redis(), 100) if e["kind"] == "ussd.session_end"]
    assert [(e["session"], e["status"], e["hops"]) for e in ends] == [(session, "Incomplete", "2")]
    again = WebPhone(demo).dial()
    assert "Reprendre" in again.screen


def test_the_sms_list_shows_this_phones_messages_newest_first(demo, sms_file):
    lines = [{"to": PHONE_ONE_METER, "body": "Code: 1111 2222", "segments": 1, "at": "2026-12-02T10:00:00.000+00:00"},
             {"to": OTHER_PHONE, "body": "Not for you", "segments": 1, "at": "2026-12-02T10:01:00.000+00:00"},
             {"to": PHONE_ONE_METER, "body": "Code: 3333 4444", "segments": 2, "at": "2026-12-02T10:02:00.000+00:00"}]
    sms_file.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    listed = html.unescape(demo.get(f"/console/phone/sms?phone=%2B{PHONE_ONE_METER[1:]}").get_data(as_text=True))
    assert listed.index("3333 4444") < listed.index("1111 2222")
    assert "Not for you" not in listed
    assert "2 segment(s)" in listed
    page = demo.get("/console/phone/").get_data(as_text=True)
    assert "3333 4444" in page


def test_without_the_file_provider_the_page_says_where_sms_go():
    app = served_app(ADMIN_KEYS={"bob": OPERATOR_KEY}, SMS_PROVIDER="console")
    client = app.test_client()
    sign_in(client)
    listed = html.unescape(client.get(f"/console/phone/sms?phone=%2B{PHONE_ONE_METER[1:]}").get_data(as_text=True))
    assert "journal du serveur" in listed and "GUICHET_SMS_PROVIDER=file" in listed


def test_the_web_phone_passes_the_callback_token_a_caller_without_it_is_refused(monkeypatch, sms_file):
    monkeypatch.delenv("REDIS_URL", raising=False)
    fakeredis.FakeRedis(server=embedded_server()).flushall()
    app = create_app({"TESTING": True, "CALLBACK_TOKEN": "gateway-secret-123", "SMS_PROVIDER": "file",
                      "SMS_FILE": str(sms_file)})
    _seed(app)
    client = app.test_client()
    outsider = client.post("/ussd/africastalking", data={"sessionId": "s1", "serviceCode": "*384#",
                                                         "phoneNumber": PHONE_ONE_METER, "text": ""})
    assert outsider.status_code == 403
    assert "1. Acheter des unités" in WebPhone(client).dial().screen


def test_the_request_keeps_its_own_id_after_the_hop_it_made(demo):
    fields = WebPhone(demo).fields
    answer = demo.post("/console/phone/", data={**fields, "action": "dial"}, headers={"X-Request-Id": "trainer-1"})
    assert answer.headers["X-Request-Id"] == "trainer-1"


def sign_in(client: FlaskClient, key: str = OPERATOR_KEY) -> None:
    client.get("/console/signin")
    token = client.get_cookie("guichet_console_signin", path="/console")
    assert token is not None
    answer = client.post("/console/signin", data={"csrf_token": token.value, "key": key})
    assert answer.status_code == 303, answer.get_data(as_text=True)


def test_on_a_deployment_the_phone_is_behind_sign_in():
    client = served_app(ADMIN_KEYS={"bob": OPERATOR_KEY}).test_client()
    answer = client.get("/console/phone/")
    assert answer.status_code == 302
    assert "/console/signin" in answer.headers["Location"]


def test_without_an_admin_key_a_deployment_has_no_web_phone():
    assert served_app().test_client().get("/console/phone/").status_code == 404


def test_a_signed_in_operators_hops_are_audited_with_the_phone_masked():
    app = served_app(ADMIN_KEYS={"bob": OPERATOR_KEY})
    client = app.test_client()
    sign_in(client)
    phone = WebPhone(client).dial()
    assert "1. Acheter des unités" in phone.screen
    with app.app_context():
        entries = audit_page(get_redis())["entries"]
    dialled = [e for e in entries if e["action"] == "POST /console/phone/"]
    assert [(e["who"], e["outcome"]) for e in dialled] == [("bob", "done")]
    assert PHONE_ONE_METER not in dialled[0]["detail"] and "dial" in dialled[0]["detail"]


def test_a_signed_in_operators_hop_without_the_csrf_token_is_refused():
    client = served_app(ADMIN_KEYS={"bob": OPERATOR_KEY}).test_client()
    sign_in(client)
    fields = WebPhone(client).fields
    fields.pop("csrf_token")
    answer = client.post("/console/phone/", data={**fields, "action": "dial"})
    assert answer.status_code == 400


def test_an_operator_who_chose_english_reads_the_phone_in_english(demo):
    demo.set_cookie("guichet_console_lang", "en", path="/console")
    phone = WebPhone(demo).dial()
    assert "CON: the screen waits for an answer" in phone.page
    assert "of 182 characters (GSM-7)" in phone.page


def test_another_sites_form_cannot_drive_the_open_demo_phone(demo):
    """Open on the embedded store, but a form from elsewhere lacks the page's token (its cookie
    cannot be read from another site): refused, nothing dialled."""
    forged = demo.post("/console/phone/", data={"code": "*384#", "phone": PHONE_ONE_METER, "action": "dial"})
    assert forged.status_code == 400
    assert "Acheter des unités" in WebPhone(demo).dial().screen  # the page's own form still dials
