"""The admin API, for the utility's operators and their scripts: /admin/...

It exists only when ADMIN_KEY is set. Every call carries ``Authorization: Bearer <key>``
and every call, allowed or refused, is written to the audit stream (state.keys.audit)
with what was done and from where; the key itself is never written anywhere.

    POST /admin/customers                   a customer CSV
    POST /admin/backends/<name>             {"state": "down" | "up"}: simulate a built-in backend's outage
    GET  /admin/services                    the customer-facing services (buy, bill, campaigns)
    POST /admin/services/<name>             {"enabled": false, "message": {"fr": ..., "en": ...}}: turn one
                                            off for customers, with the operator's words (or back on)
    GET  /admin/breakers                    each outside system's circuit breaker (utility.calls)
    POST /admin/breakers/<system>/reset     close one: the operator says the system is back
    GET  /admin/calls                       this process's counts of outside calls by system and outcome
"""
from __future__ import annotations

import csv
import datetime
import functools
import hmac
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, make_response, request, stream_with_context
from werkzeug.exceptions import HTTPException

from sms.gsm import gsm7_septets
from state import keys, switches
from state.store import get_redis
from utility import calls, customer_csv, payments, vending
from utility.customers import RedisCustomerBase

log = logging.getLogger(__name__)

AUDIT_MAX_ENTRIES = 100_000  # approximate cap: months of operator actions

bp = Blueprint("admin", __name__, url_prefix="/admin")


def init_app(app: Flask) -> None:
    key = app.config["ADMIN_KEY"]
    if isinstance(key, str) and key:
        app.register_blueprint(bp)
    elif key == "":
        log.warning("ADMIN_KEY is empty: the admin API stays off")


def require_admin(view: Callable[..., Any]) -> Callable[..., Response]:
    """Let the call through only with the admin key, and audit it either way.

    A view adds what it did to the audit entry with ``audit_detail()``.
    """

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Response:
        refusal = _credential_problem()
        if refusal:
            _audit("refused", refusal)
            response = make_response(jsonify(error=refusal), 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="guichet admin"'
            return response
        try:
            response = make_response(view(*args, **kwargs))
        except HTTPException as exc:  # a body over MAX_CONTENT_LENGTH, ...
            _audit("rejected", f"{exc.code} {exc.name}")
            raise
        except Exception:
            _audit("failed", "internal error")
            raise
        _audit("done" if response.status_code < 400 else "rejected", g.get("audit_detail", ""))
        return response

    return checked


def audit_detail(detail: str) -> None:
    """What the current admin call did, for its audit entry (never a secret)."""
    g.audit_detail = detail


def csv_download(header: Sequence[str], rows: Iterable[Sequence[object]], filename: str) -> Response:
    """``rows`` as a CSV attachment, streamed a thousand rows at a time: memory stays flat
    however many there are (a campaign's registrations, an incident's late payments)."""

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for count, row in enumerate(rows, 1):
            writer.writerow(row)
            if count % 1000 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    response = Response(stream_with_context(chunks()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def refused_file(exc: customer_csv.FileRefused, said: str = "refused: ") -> tuple[Response, int]:
    """422 with every line's reason (a customer file, an allow-list), audited as ``said``
    and the counts."""
    # Counts only: the reasons quote customers' data, which the audit need not keep.
    audit_detail(f"{said}{len(exc.errors) + exc.more} bad line(s), the first on line {exc.errors[0].line}")
    return jsonify(errors=[{"line": e.line, "error": e.error} for e in exc.errors], more=exc.more), 422


@bp.post("/customers")
@require_admin
def import_customers() -> tuple[Response, int]:
    """Add or update the customers in the CSV body (utility.customer_csv).

    One bad line refuses the whole file: 422 with every bad line and why.
    """
    if request.mimetype != "text/csv":
        audit_detail(f"content type {request.mimetype or 'missing'}")
        return jsonify(error="send the customer file as Content-Type: text/csv"), 415
    try:
        accounts = customer_csv.parse_customers(customer_csv.decode(request.get_data(cache=False)))
    except customer_csv.CustomerFileError as exc:
        return refused_file(exc)
    result = RedisCustomerBase(get_redis()).upsert(accounts)
    audit_detail(f"imported {result.imported}, updated {result.updated}")
    return jsonify(imported=result.imported, updated=result.updated), 200


@bp.post("/backends/<backend>")
@require_admin
def switch_backend(backend: str) -> tuple[Response, int]:
    """Switch a built-in backend down or up (demonstrations, tests, drills):
    ``{"state": "down"}`` or ``{"state": "up"}``. A backend that is the utility's real
    system (XMLVend vending, MTN MoMo) cannot be switched from here: 404."""
    if backend not in _builtin_backends():
        audit_detail(f"{backend}: not a built-in backend")
        return jsonify(error=f"no built-in backend {backend!r} to switch"), 404
    body = request.get_json(silent=True)
    wanted = body.get("state") if isinstance(body, dict) else None
    if wanted not in ("down", "up"):
        audit_detail(f"{backend}: bad state")
        return jsonify(error='send {"state": "down"} or {"state": "up"}'), 400
    switches.set_down(get_redis(), backend, wanted == "down")
    switches.forget_services(current_app)
    retried = 0
    if wanted == "up" and backend in ("vending", "billing"):
        from utility.services import services

        retried = services().orders.retry_waiting()  # paid orders waiting for it: now
    audit_detail(f"{backend} {wanted}, {retried} waiting order(s) retried")
    return jsonify(backend=backend, state=wanted, retried=retried, backends=switches.states(get_redis())), 200


# -- customer-facing services ------------------------------------------------------------------
@bp.get("/services")
@require_admin
def list_services() -> tuple[Response, int]:
    stored = switches.read_services(get_redis())
    return jsonify(services={name: switch.to_json() for name, switch in stored.items()}), 200


@bp.post("/services/<name>")
@require_admin
def switch_service(name: str) -> tuple[Response, int]:
    """Turn a customer-facing service off, with the operator's message for customers in
    every language of the USSD texts, or back on: ``{"enabled": false, "message": {"fr":
    "...", "en": "..."}}`` / ``{"enabled": true}``. 422 names each bad field."""
    if name not in switches.SERVICES:
        audit_detail(f"{name}: no such service")
        return jsonify(error=f"no service {name!r}: one of {', '.join(switches.SERVICES)}"), 404
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        audit_detail(f"{name}: not a JSON object")
        return jsonify(error='send {"enabled": false, "message": {...}} as JSON (Content-Type: application/json)'), 415
    from ussd.catalogue import languages  # the languages customers read screens in

    enabled, message, errors = _service_switch(body, languages())
    if errors:
        audit_detail(f"{name}: refused: {', '.join(sorted(errors))}")
        return jsonify(errors=errors), 422
    switch = switches.set_service(get_redis(), name, enabled, message)
    switches.forget_services(current_app)
    audit_detail(f"{name} {'on' if enabled else 'off'}" + (f", message in {', '.join(message)}" if message else ""))
    return jsonify(service=name, **switch.to_json()), 200


def _service_switch(body: dict[str, Any], languages: tuple[str, ...]) -> tuple[bool, dict[str, str], dict[str, str]]:
    """(enabled, message by language, errors by field) of a POST /admin/services body."""
    errors: dict[str, str] = {}
    for field in body:
        if field not in ("enabled", "message"):
            errors[str(field)] = "unknown field (the fields are enabled, message)"
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        errors["enabled"] = "required: true or false"
    given = body.get("message")
    message: dict[str, str] = {}
    if given is None:
        return bool(enabled), message, errors
    if enabled is True:
        errors["message"] = "shown only while the service is off: send it with \"enabled\": false"
        return True, message, errors
    if not isinstance(given, dict):
        example = ", ".join(f'"{lang}": "..."' for lang in languages)
        errors["message"] = f"the customers' message in each language, like {{{example}}}"
        return False, message, errors
    for lang in given:
        if lang not in languages:
            errors[f"message.{lang}"] = f"no customer texts in this language (there are {', '.join(languages)})"
    for lang in languages:
        field, text = f"message.{lang}", given.get(lang)
        if not isinstance(text, str) or not text.strip():
            errors[field] = "required: what customers read in this language"
            continue
        text = " ".join(text.split())  # one paragraph: a newline must not break the screen
        septets = gsm7_septets(text)
        if septets is None:
            odd = "".join(sorted({char for char in text if gsm7_septets(char) is None}))
            errors[field] = f"not GSM-7 (a USSD screen cannot show {odd!r})"
        elif septets > switches.MESSAGE_MAX:
            errors[field] = f"{septets} characters: at most {switches.MESSAGE_MAX} fit the screen (€ [ ] ^ count two)"
        else:
            message[lang] = text
    return False, message, errors


# -- outside systems: breakers and calls ---------------------------------------------------------------
def _seam() -> calls.Seam:
    from utility.services import services

    services()  # builds the backends, and with them their breakers
    return calls.seam()


@bp.get("/breakers")
@require_admin
def list_breakers() -> tuple[Response, int]:
    """Each breaker as every process sees it: state (closed | open | half_open: open with its
    probe due), failures in a row, when it opened and when it lets a call through again."""
    seam = _seam()
    return jsonify(breakers=[breaker.to_json() for breaker in seam.read()], failures_to_open=seam.failures,
                   reset_seconds=seam.reset_seconds), 200


@bp.post("/breakers/<system>/reset")
@require_admin
def reset_breaker(system: str) -> tuple[Response, int]:
    seam = _seam()
    if system not in seam.systems():
        audit_detail(f"{system}: no such breaker")
        return jsonify(error=f"no breaker {system!r}: one of {', '.join(seam.systems())}"), 404
    seam.reset(system)
    audit_detail(f"{system} breaker closed")
    (breaker,) = [b for b in seam.read() if b.system == system]
    return jsonify(breaker.to_json()), 200


@bp.get("/calls")
@require_admin
def list_calls() -> tuple[Response, int]:
    """This process's counts of outside calls (each serving process keeps its own)."""
    counted = {system: {outcome: {"calls": t.calls, "seconds": round(t.seconds, 3), "slowest": round(t.slowest, 3)}
                        for outcome, t in outcomes.items()}
               for system, outcomes in calls.tallies().items()}
    return jsonify(calls=counted), 200


def _builtin_backends() -> set[str]:
    config = current_app.config
    builtin = {"billing"}  # billing has no external adapter yet
    if vending.backend_name(config) == "builtin":
        builtin.add("vending")
    if payments.configured_name(current_app) == payments.demo.NAME:
        builtin.add("payments")
    return builtin


def _credential_problem() -> str | None:
    # Exactly "Bearer <key>": one space, no other whitespace, the scheme as RFC 6750
    # writes it. A lax parse ("bearer", "Bearer  k", "Bearer k ") lets a key travel in
    # forms that proxies and log scrubbers do not recognise as a credential.
    header = request.headers.get("Authorization", "")
    scheme, space, presented = header.partition(" ")
    if scheme != "Bearer" or not space or not presented or not presented.isprintable() or any(
        c.isspace() for c in presented
    ):
        return "missing admin key: send Authorization: Bearer <ADMIN_KEY>"
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    expected = current_app.config["ADMIN_KEY"].encode()
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), expected):
        return "wrong admin key"
    return None


def _audit(outcome: str, detail: str) -> None:
    entry = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "action": f"{request.method} {request.path}",
        "outcome": outcome,
        "remote_addr": request.remote_addr or "",
        "detail": detail,
    }
    get_redis().xadd(keys.audit(), entry, maxlen=AUDIT_MAX_ENTRIES, approximate=True)
