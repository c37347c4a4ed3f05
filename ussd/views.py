"""The USSD webhooks: `POST /ussd/<gateway>` for hops, and session-end notifications."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, Flask, Response, abort, current_app, request

from state import journal
from state.sessions import SessionStore
from state.store import get_redis
from ussd.engine import Engine, Settings
from ussd.catalogue import text
from ussd.gateways import GATEWAYS, BadCallback
from ussd.screens import Screen
from utility.customers import mask_tail
from utility.services import services

log = logging.getLogger(__name__)

bp = Blueprint("ussd", __name__, url_prefix="/ussd")


EXTENSION = "guichet.ussd"


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
    )


def bad_request(reason: str) -> Response:
    return Response(reason + "\n", status=400, mimetype="text/plain")


@bp.post("/<gateway>")
def hop(gateway: str) -> Response:
    adapter = GATEWAYS.get(gateway)
    if adapter is None:
        abort(404)
    try:
        parsed = adapter.parse(request)
    except BadCallback as exc:
        log.info("refused %s callback: %s", gateway, exc)
        return bad_request(str(exc))
    try:
        screen = engine().answer(parsed)
    except Exception:  # a bug must still give the customer an answer, not a dead handset
        log.exception("hop of %s failed", mask_tail(parsed.phone))
        screen = Screen(text(str(current_app.config["DEFAULT_LANGUAGE"]), "end.down"), end=True)
    return adapter.respond(screen)


@bp.post("/africastalking/events")
def africastalking_session_end() -> Response:
    """Africa's Talking's end-of-session notification: journaled for support and figures.

    A session that ended Incomplete or Failed keeps its resume point (written on every
    mid-flow hop), so the customer's next dial offers to continue.
    """
    form = request.form
    if not form.get("sessionId"):
        return bad_request("missing field: sessionId")
    try:
        journal.append(
            get_redis(),
            "ussd.session_end",
            session=form.get("sessionId"),
            phone=form.get("phoneNumber", ""),
            status=form.get("status", ""),
            hops=form.get("hopsCount", ""),
            duration_ms=form.get("durationInMillis", ""),
            error=form.get("errorMessage", ""),
        )
    except redis.RedisError:  # a notification is informative: never fail the gateway for it
        log.exception("could not journal a session end")
    log.info("session end %s %s", mask_tail(form.get("phoneNumber", "")), form.get("status", ""))
    return Response("", status=200, mimetype="text/plain")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
