"""The USSD webhooks: `POST /ussd/<gateway>` for hops, and session-end notifications.

Every request is first checked against the gateway's access rules (utility.access): with
a callback token or source networks configured, anything else gets 403 and changes
nothing.
"""
from __future__ import annotations

import functools
import json
import logging
import time

import redis
from flask import Blueprint, Flask, Response, abort, current_app, request

from state import journal, keys, logs, metrics, tally
from state.sessions import SESSION_FIELD, SessionStore
from state.store import get_redis
from ussd import figures
from ussd.admission import Admission
from ussd.catalogue import text
from ussd.engine import Engine, Settings
from ussd.flows import SCREENS
from ussd.gateways import GATEWAYS, BadCallback
from ussd.gateways.base import check_body_size, phone_number
from ussd.screens import Screen
from utility.access import GatewayAccess
from utility.customers import mask_phone
from utility.services import services

log = logging.getLogger(__name__)

bp = Blueprint("ussd", __name__, url_prefix="/ussd")


EXTENSION = "guichet.ussd"
ACCESS = "guichet.ussd.access"
ADMISSION = "guichet.ussd.admission"


def engine() -> Engine:
    """The app's hop engine, built on first use (its parts hold no per-hop state)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    built: Engine | None = app.extensions.get(EXTENSION)
    if built is None:
        built = app.extensions[EXTENSION] = _build_engine(app)
    return built


def _build_engine(app: Flask) -> Engine:
    client = get_redis(app)
    config = app.config
    return Engine(
        SessionStore(
            client,
            ttl=int(config["SESSION_TTL"]),
            resume_ttl=int(config["RESUME_TTL"]),
            lock_timeout=float(config["LOCK_TIMEOUT"]),
        ),
        services(app),
        Settings(utility=str(config["UTILITY_NAME"]), default_language=str(config["DEFAULT_LANGUAGE"])),
        count_screens=functools.partial(figures.hop, app),
    )


def bad_request(reason: str) -> Response:
    return Response(reason + "\n", status=400, mimetype="text/plain")


EVENT_FIELD_CHARS = 200  # a session-end field worth keeping is short; the rest is cut


@bp.before_request
def check_access() -> Response | None:
    """403 for a callback that is not from the gateway, before anything reads or writes."""
    gateway = (request.view_args or {}).get("gateway") or "africastalking"  # the events URL is AT's
    access: GatewayAccess | None = current_app.extensions[ACCESS].get(gateway)
    if access is None:
        return None  # not a gateway: a 404 follows
    refusal = access.refusal(request)
    if refusal is None:
        return None
    log.warning("refused a %s callback from %s: %s", gateway, request.remote_addr, refusal)
    return Response(f"forbidden: {refusal}\n", status=403, mimetype="text/plain")


@bp.post("/<gateway>")
def hop(gateway: str) -> Response:
    adapter = GATEWAYS.get(gateway)
    if adapter is None:
        abort(404)
    try:
        parsed = adapter.parse(request)
    except BadCallback as exc:
        log.info("refused %s callback: %s", gateway, exc)
        metrics.hop(gateway, "", "bad_callback")
        # A gateway that shows a 400 as a crash on the handset answers its own way.
        refuse = getattr(adapter, "refuse", None)
        answer = refuse(exc) if refuse is not None else None
        return answer if answer is not None else bad_request(str(exc))
    logs.bind(session=parsed.session_id[:64])  # ties the dialogue's hops together (the gateway's id)
    admission: Admission = current_app.extensions[ADMISSION]
    if not admission.admit(parsed.opening):
        log.warning("saturated: a new dialogue of %s turned away (%d so far)", mask_phone(parsed.phone),
                    admission.refused)
        metrics.hop(gateway, "", "saturated")
        return adapter.respond(Screen(busy_text(), end=True))
    started = time.perf_counter()
    try:
        screen = engine().answer(parsed)
    except Exception:  # a bug must still give the customer an answer, not a dead handset
        log.exception("hop of %s failed", mask_phone(parsed.phone))
        metrics.hop(gateway, "", "error")
        screen = Screen(text(str(current_app.config["DEFAULT_LANGUAGE"]), "end.down"), end=True)
    finally:
        took = time.perf_counter() - started
        admission.done(took)
        metrics.hop_seconds(gateway, took)
    tally.hop(current_app._get_current_object(), parsed.session_id)  # type: ignore[attr-defined]
    return adapter.respond(screen)


def busy_text() -> str:
    """What a dialogue turned away by admission control reads: in the default language
    (reading the phone's would cost the round trip the service cannot spare), with the way
    to register by SMS while a campaign is open (the campaigns' in-process copy)."""
    lang = str(current_app.config["DEFAULT_LANGUAGE"])
    short_code = current_app.config.get("SMS_SHORT_CODE")
    if short_code:
        try:
            open_now = services().campaigns.active()
        except redis.RedisError:
            open_now = []
        if open_now:
            return text(lang, "end.saturated_sms", code=open_now[0].code, short_code=short_code)
    return text(lang, "end.saturated")


@bp.post("/africastalking/events")
def africastalking_session_end() -> Response:
    """Africa's Talking's end-of-session notification: journaled for support and figures.

    A session that ended Incomplete or Failed keeps its resume point (written on every
    mid-flow hop), so the customer's next dial offers to continue, and counts as a drop-off
    on the screen it stood on (ussd.figures): its record says which (kept SESSION_TTL seconds
    after its last hop), read in the journal's round trip.
    """
    # Capped like the hops: a notification is a few hundred bytes, and what it carries
    # goes into the journal, so an unbounded one would fill Redis.
    try:
        check_body_size(request)
    except BadCallback as exc:
        return bad_request(str(exc))
    form = request.form

    def field(name: str) -> str:
        return form.get(name, "")[:EVENT_FIELD_CHARS]

    if not field("sessionId").strip():
        return bad_request("missing field: sessionId")
    logs.bind(session=field("sessionId")[:64])  # the dialogue's hops carry the same
    completed = field("status") == "Success"
    record = None if completed else _session_record(field("phoneNumber"), form.get("sessionId", "").strip())
    try:
        pipe = get_redis().pipeline(transaction=False)
        if record is not None:
            pipe.hget(record, SESSION_FIELD)
        journal.append(
            pipe,
            "ussd.session_end",
            session=field("sessionId"),
            phone=field("phoneNumber"),
            status=field("status"),
            hops=field("hopsCount"),
            duration_ms=field("durationInMillis"),
            error=field("errorMessage"),
        )
        saved = pipe.execute()
        screen = _screen_of(saved[0]) if record is not None else None
        if screen is not None:
            figures.drop_off(current_app._get_current_object(), screen)  # type: ignore[attr-defined]
    except redis.RedisError:  # a notification is informative: never fail the gateway for it
        log.exception("could not journal a session end")
    # "Success": the customer reached an end; "Incomplete" (hung up, timed out) or "Failed": not.
    metrics.session("completed" if completed else "abandoned")
    log.info("session end %s %s", mask_phone(field("phoneNumber")), field("status")[:20])
    return Response("", status=200, mimetype="text/plain")


def _session_record(phone: str, session_id: str) -> str | None:
    """The key of the session a notification is about, as its hops wrote it (the number as
    the hops normalise it); None for a number no hop would have taken."""
    try:
        return keys.session(phone_number(phone, "phoneNumber"), session_id)
    except BadCallback:
        return None


def _screen_of(raw: str | None) -> str | None:
    """The screen a saved session stands on; None when it is gone (expired) or unreadable."""
    try:
        state = json.loads(raw or "null")["state"]
    except (ValueError, TypeError, KeyError):
        return None
    return state if isinstance(state, str) and state in SCREENS else None


def open_warning(app: Flask) -> str | None:
    """The loud line for a server whose USSD callbacks anyone may send (None: none are open)."""
    names = sorted(name for name, access in app.extensions[ACCESS].items() if access.open)
    if not names:
        return None
    return (
        f"USSD callbacks of {', '.join(names)} are OPEN to anyone who can reach this server: "
        "fine for trying Guichet locally; in production set GUICHET_CALLBACK_TOKEN (and "
        "put ?token=<it> in the gateway's callback URL) and/or GUICHET_GATEWAY_IPS"
    )


def init_app(app: Flask) -> None:
    # Built once, so bad access settings fail at start-up, not on the first callback.
    app.extensions[ACCESS] = {name: GatewayAccess.from_config(app.config, name) for name in GATEWAYS}
    app.extensions[ADMISSION] = Admission.from_config(app.config)
    app.register_blueprint(bp)
