"""The web phone, /console/phone: a feature phone on screen for demos, trainers and integrators.

Each send posts to the app's own Africa's Talking endpoint the very form the gateway posts
(sessionId, serviceCode, phoneNumber, networkCode, and ``text``: every input of the session
joined by ``*``), through the app's WSGI stack in this process. So a web-phone hop meets the
same access rule, rate gate, admission, session store and menu machine as a handset's, and is
counted as one. The page carries the dialogue (its session id and text so far) in hidden
fields: the server keeps nothing for it, and the page works without scripts (phone.js adds the
keypad, console.js refreshes the SMS list). Hanging up, or an END, posts the gateway's
end-of-session notification too, so the figures see the dialogue end as they would.

Open on the embedded store (the `make run` demo: nothing real can be reached). Otherwise only
for a signed-in operator, and each hop is audited (who dialled as which phone): there a hop
can send a real payment prompt to a real customer.
"""
from __future__ import annotations

import contextvars
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, make_response, render_template, request, url_for
from werkzeug.test import TestResponse

from sms.gsm import is_gsm7, screen_size
from sms.providers import provider_name
from state import logs
from ussd import views as ussd_views
from ussd.dial import DEFAULT_CODE, DEFAULT_NETWORK, new_session_id
from ussd.gateways.base import configured_codes
from utility import admin
from utility.access import TOKEN_HEADER, GatewayAccess
from utility.console import secure, t
from utility.console.auth import anonymous_form_ok, current, keep_anonymous_token, phone_open, signed_in
from utility.customers import mask_phone
from utility.demo import DEMO_PHONES
from utility.phones import is_e164
from utility.services import services

phone_bp = Blueprint("phone", __name__, url_prefix="/console/phone", template_folder="templates")
phone_bp.after_request(secure)

GATEWAY = "africastalking"
SMS_SHOWN = 10  # the latest ones: a phone's inbox, not the provider's history
SMS_TAIL_BYTES = 256 * 1024  # of the file provider's file, which grows for as long as it is kept


@dataclass(frozen=True)
class Dialogue:
    """One USSD session as the handset holds it: what it dialled, as whom, its inputs so far."""

    code: str
    phone: str
    session_id: str = ""
    text: str = ""  # every input so far joined by "*", as the gateway posts it

    def then(self, entry: str) -> Dialogue:
        """The dialogue once ``entry`` is sent."""
        text = f"{self.text}*{entry}" if self.text else entry
        return Dialogue(self.code, self.phone, self.session_id, text)

    def over(self) -> Dialogue:
        """The phone after the session: what it dials and as whom, ready to dial again."""
        return Dialogue(self.code, self.phone)

    @property
    def hops(self) -> int:
        return 1 + (self.text.count("*") + 1 if self.text else 0)

    def form(self) -> dict[str, str]:
        """The hop as Africa's Talking posts it."""
        return {"sessionId": self.session_id, "serviceCode": self.code, "phoneNumber": self.phone,
                "networkCode": DEFAULT_NETWORK, "text": self.text}


@dataclass(frozen=True)
class Answer:
    """What came back: a screen (CON waits for input, END closes), or what went wrong."""

    status: int
    body: str

    @property
    def kind(self) -> str:
        """CON, END, or "" when the answer is not a USSD screen (a handset would drop the session)."""
        if self.status == 200 and self.body[:4] in ("CON ", "END "):
            return self.body[:3]
        return ""

    @property
    def screen(self) -> str:
        return self.body[4:] if self.kind else self.body.strip()

    @property
    def size(self) -> tuple[int, int]:
        """(length, limit): 182 GSM-7 characters, or 80 once one character is outside GSM-7."""
        return screen_size(self.screen)

    @property
    def gsm7(self) -> bool:
        return is_gsm7(self.screen)

    @property
    def fits(self) -> bool:
        length, limit = self.size
        return length <= limit


@dataclass(frozen=True)
class ReceivedSms:
    at: str
    body: str
    segments: int


def guarded(view: Callable[..., Any]) -> Callable[..., Response]:
    """Open on the embedded store to whoever is not signed in; otherwise the console's rule
    (sign-in, CSRF on POST, each POST audited)."""
    protected = signed_in(view)

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Response:
        if current() is None and phone_open(current_app):
            # Open, but not to another site's forms: the page's own token, double-submitted.
            if request.method == "POST" and not anonymous_form_ok():
                return make_response(t("auth.csrf"), 400)
            return make_response(keep_anonymous_token(make_response(view(*args, **kwargs))))
        return make_response(protected(*args, **kwargs))

    return checked


@phone_bp.route("/", methods=["GET", "POST"])
@guarded
def page() -> Response:
    dialogue = Dialogue(code=_field("code") or default_code(), phone=_field("phone") or _first_demo_phone(),
                        session_id=_field("session"), text=_field("text"))
    action = request.form.get("action", "") if request.method == "POST" else ""
    turn = press(action, dialogue)
    if action:
        admin.audit_detail(f"web phone as {mask_phone(dialogue.phone)}: {action}")
    config = current_app.config
    return make_response(render_template(
        "console/phone.html", dialogue=turn.dialogue, answer=turn.answer, posted=turn.posted,
        problem_key=turn.problem, demo_phones=demo_phones(), sms=received_sms(config, dialogue.phone),
        sms_provider=provider_name(config)))


@dataclass(frozen=True)
class Turn:
    """What one press did: the dialogue after it, the hop it posted and the answer to show."""

    dialogue: Dialogue
    posted: Dialogue | None = None
    answer: Answer | None = None
    problem: str = ""  # a key of the console's catalogue


def press(action: str, dialogue: Dialogue) -> Turn:
    """Dial (a new session), send what was typed, or hang up; anything else only shows the page."""
    if action == "dial":
        return answered(Dialogue(dialogue.code, dialogue.phone, new_session_id()))
    if action == "send" and dialogue.session_id:
        entry = _field("entry")
        if entry:
            return answered(dialogue.then(entry))
        last = _field("last")  # the screen stays as it was
        return Turn(dialogue, answer=Answer(200, last) if last else None, problem="phone.nothing_typed")
    if action == "hangup" and dialogue.session_id:
        session_ended(dialogue, "Incomplete", "")
        return Turn(dialogue.over())
    return Turn(dialogue)


def answered(dialogue: Dialogue) -> Turn:
    """``dialogue``'s latest hop posted; after an END (or an answer no handset would take) the
    session is over and the phone can dial again."""
    answer = hop(dialogue)
    if answer.kind == "END":
        session_ended(dialogue, "Success", answer.screen)
    return Turn(dialogue if answer.kind == "CON" else dialogue.over(), dialogue, answer)


@phone_bp.get("/sms")
@guarded
def sms() -> Response:
    """The SMS list alone, for the page's script to refresh."""
    phone = request.args.get("phone", "").strip()
    return make_response(render_template("console/phone_sms.html", sms=received_sms(current_app.config, phone),
                                         sms_provider=provider_name(current_app.config), phone=phone))


def _field(name: str) -> str:
    return request.values.get(name, "").strip()


def default_code() -> str:
    """The code customers dial: the shortest of SERVICE_CODES (the others extend it), else *384#."""
    codes = configured_codes()
    return codes[-1] if codes else DEFAULT_CODE


def demo_phones() -> list[tuple[str, str]]:
    """(phone, who) of the demo customers present in the customer base: none in production."""
    found = []
    base = services().customers
    for phone, what in DEMO_PHONES.items():
        accounts = base.accounts_for_phone(phone)
        if accounts:
            found.append((phone, f"{accounts[0].name}: {what}"))
    return found


def _first_demo_phone() -> str:
    phones = demo_phones()
    return phones[0][0] if phones else ""


def hop(dialogue: Dialogue) -> Answer:
    """``dialogue``'s latest hop, answered by the app's own USSD endpoint."""
    response = _post(url_for("ussd.hop", gateway=GATEWAY), dialogue.form())
    return Answer(response.status_code, response.get_data(as_text=True))


def session_ended(dialogue: Dialogue, status: str, last_screen: str) -> None:
    """Africa's Talking's end-of-session notification: Success after an END, Incomplete when
    the customer hangs up (the session keeps its resume point)."""
    form = {**dialogue.form(), "status": status, "hopsCount": str(dialogue.hops), "input": dialogue.text,
            "lastAppResponse": last_screen[:200], "durationInMillis": "", "cost": "", "errorMessage": ""}
    del form["text"]
    _post(url_for("ussd.africastalking_session_end"), form)


def _post(path: str, form: Mapping[str, str]) -> TestResponse:
    """POST ``form`` to ``path`` through this app, as the gateway would: with its callback
    token when one is configured, and this request's id, so the hop's log lines carry it.
    In a copy of the context: the inner request starts and clears its own log context (and
    Flask's), which must not end this one's."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    headers = {logs.REQUEST_ID_HEADER: logs.request_id() or ""}
    access: GatewayAccess = app.extensions[ussd_views.ACCESS][GATEWAY]  # what the endpoint checks
    token = access.token
    if token is not None:
        headers[TOKEN_HEADER] = token
    client = app.test_client()
    return contextvars.copy_context().run(client.post, path, data=dict(form), headers=headers)


def received_sms(config: Mapping[str, Any], phone: str) -> list[ReceivedSms] | None:
    """The latest SMS the file provider wrote for ``phone``, newest first; None when SMS go
    elsewhere (a real provider, the log), where this page cannot read them."""
    if provider_name(config) != "file" or not config.get("SMS_FILE"):
        return None
    if not is_e164(phone):
        return []
    found: list[ReceivedSms] = []
    for line in reversed(_tail(Path(str(config["SMS_FILE"])), SMS_TAIL_BYTES)):
        try:
            message = json.loads(line)
        except ValueError:
            continue  # the first line of the tail, cut in the middle
        if message.get("to") == phone:
            found.append(ReceivedSms(str(message.get("at", "")), str(message.get("body", "")),
                                     int(message.get("segments", 1))))
            if len(found) == SMS_SHOWN:
                break
    return found


def _tail(path: Path, max_bytes: int) -> list[str]:
    """The last lines of ``path`` within its last ``max_bytes`` bytes ([] if it does not exist yet)."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()


def init_app(app: Flask) -> None:
    """The web phone where the console exists (an admin key), or open on the embedded store."""
    if admin.enabled(app) or phone_open(app):
        app.register_blueprint(phone_bp)
