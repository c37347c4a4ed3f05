"""The admin API, for the utility's operators and their scripts: /admin/...

It exists only when at least one admin key is set (ADMIN_KEYS, name -> key, or ADMIN_KEY,
the key named "admin"; utility.operators keeps them hashed). Every call carries
``Authorization: Bearer <key>`` and every call, done, rejected, refused or failed, is written
to the audit stream (state.keys.audit): who (the key's name, "unknown" when refused), what
(method and path, and what the view says it did), when, from where (the caller's address,
through TRUSTED_PROXIES only) and how it ended. No key is ever written anywhere.

    POST /admin/customers                   a customer CSV
    POST /admin/backends/<name>             {"state": "down" | "up"}: simulate a built-in backend's outage
    GET  /admin/services                    the customer-facing services (buy, bill, campaigns)
    POST /admin/services/<name>             {"enabled": false, "message": {"fr": ..., "en": ...}}: turn one
                                            off for customers, with the operator's words (or back on)
    GET  /admin/breakers                    each outside system's circuit breaker (utility.calls)
    POST /admin/breakers/<system>/reset     close one: the operator says the system is back
    GET  /admin/calls                       this process's counts of outside calls by system and outcome
    GET  /admin/audit?limit=50&before=<id>  the audit, newest first, a page at a time (``next``: the cursor)
    GET  /admin/orders?q=<number>           the latest orders of a phone, meter or account (or one reference)
    GET  /admin/orders/<reference>          one order, with its journal (every move and its time)
    POST /admin/orders/<reference>/resend   SMS its token again (a delivered purchase)
    POST /admin/orders/<reference>/retry    try its fulfilment now (paid, waiting for its backend)

Reading the audit is audited too: who looked at the trail matters when a key leaks, and the
cursor (``before``, a stream id) keeps pages stable however many entries arrive meanwhile.
"""
from __future__ import annotations

import csv
import datetime
import functools
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import click
from flask import Blueprint, Flask, Response, current_app, g, jsonify, make_response, request, stream_with_context
from flask.cli import with_appcontext
from werkzeug.exceptions import HTTPException

from sms.gsm import gsm7_septets
from state import keys, switches
from state.store import TextCommands, get_redis
from utility import access, calls, customer_csv, operations, operators
from utility.customers import RedisCustomerBase
from utility.gate import upload

log = logging.getLogger(__name__)

AUDIT_MAX_ENTRIES = 100_000  # approximate cap: months of operator actions

bp = Blueprint("admin", __name__, url_prefix="/admin")


AUDIT_PAGE = 50  # entries a page of GET /admin/audit and `guichet audit` by default
AUDIT_PAGE_MAX = 1000
UNKNOWN = "unknown"  # who, in the audit, when no key matched
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}", re.ASCII)


def enabled(app: Flask) -> bool:
    """Whether the admin API exists: at least one admin key is configured."""
    return bool(operators.keyring(app.config))


def init_app(app: Flask) -> None:
    """/admin when a key is set (utility.operators.init_app has hashed them); `guichet audit`
    always (it reads Redis: the trail of servers configured elsewhere)."""
    app.cli.add_command(audit_command)
    keyring = operators.keyring(app.config)
    if keyring:
        app.register_blueprint(bp)
        log.info("admin API on, keys named %s", ", ".join(keyring))


def require_admin(view: Callable[..., Any]) -> Callable[..., Response]:
    """Let the call through only with the admin key, and audit it either way.

    A view adds what it did to the audit entry with ``audit_detail()``.
    """

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Response:
        g.admin_name, refusal = _operator()
        if refusal:
            record_audit("refused", refusal)
            response = make_response(jsonify(error=refusal), 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="guichet admin"'
            return response
        return audited(view, *args, **kwargs)

    return checked


def audited(view: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
    """``view``'s response, with its audit entry written however it ended (the admin API's
    calls and the console's actions alike; ``g.admin_name`` says who)."""
    try:
        response = make_response(view(*args, **kwargs))
    except HTTPException as exc:  # a body over MAX_CONTENT_LENGTH, ...
        record_audit("rejected", f"{exc.code} {exc.name}")
        raise
    except Exception:
        record_audit("failed", "internal error")
        raise
    # A redirect is how a console form says it did what was asked.
    record_audit("done" if response.status_code < 400 else "rejected", g.get("audit_detail", ""))
    return response


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
@upload  # MAX_UPLOAD_LENGTH, not the 64 KB of every other body
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
    if backend not in operations.builtin_backends():
        audit_detail(f"{backend}: not a built-in backend")
        return jsonify(error=f"no built-in backend {backend!r} to switch"), 404
    body = request.get_json(silent=True)
    wanted = body.get("state") if isinstance(body, dict) else None
    if wanted not in ("down", "up"):
        audit_detail(f"{backend}: bad state")
        return jsonify(error='send {"state": "down"} or {"state": "up"}'), 400
    retried = operations.switch_backend(backend, wanted == "down")  # up: paid orders waiting for it, now
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
@bp.get("/breakers")
@require_admin
def list_breakers() -> tuple[Response, int]:
    """Each breaker as every process sees it: state (closed | open | half_open: open with its
    probe due), failures in a row, when it opened and when it lets a call through again."""
    seam = operations.seam()
    return jsonify(breakers=[breaker.to_json() for breaker in seam.read()], failures_to_open=seam.failures,
                   reset_seconds=seam.reset_seconds), 200


@bp.post("/breakers/<system>/reset")
@require_admin
def reset_breaker(system: str) -> tuple[Response, int]:
    breaker = operations.reset_breaker(system)
    if breaker is None:
        audit_detail(f"{system}: no such breaker")
        return jsonify(error=f"no breaker {system!r}: one of {', '.join(operations.seam().systems())}"), 404
    audit_detail(f"{system} breaker closed")
    return jsonify(breaker.to_json()), 200


@bp.get("/calls")
@require_admin
def list_calls() -> tuple[Response, int]:
    """This process's counts of outside calls (each serving process keeps its own)."""
    counted = {system: {outcome: {"calls": t.calls, "seconds": round(t.seconds, 3), "slowest": round(t.slowest, 3)}
                        for outcome, t in outcomes.items()}
               for system, outcomes in calls.tallies().items()}
    return jsonify(calls=counted), 200


def _operator() -> tuple[str, str | None]:
    """(the name of the key presented, None) or ("unknown", why the call is refused)."""
    # Exactly "Bearer <key>": one space, no other whitespace, the scheme as RFC 6750
    # writes it. A lax parse ("bearer", "Bearer  k", "Bearer k ") lets a key travel in
    # forms that proxies and log scrubbers do not recognise as a credential.
    header = request.headers.get("Authorization", "")
    scheme, space, presented = header.partition(" ")
    if scheme != "Bearer" or not space or not presented or not presented.isprintable() or any(
        c.isspace() for c in presented
    ):
        return UNKNOWN, "missing admin key: send Authorization: Bearer <ADMIN_KEY>"
    name = operators.keyring(current_app.config).name_of(presented)
    if name is None:
        return UNKNOWN, "wrong admin key"
    return name, None


def record_audit(outcome: str, detail: str) -> None:
    """One audit entry for the current request: who (``g.admin_name``), what, when, from where."""
    entry = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "who": g.get("admin_name", UNKNOWN),
        "action": f"{request.method} {request.path}",
        "outcome": outcome,
        # The caller, looking through TRUSTED_PROXIES only (utility.access); "via" the proxy.
        "remote_addr": access.source(request, access.trusted_proxies(current_app)),
        "detail": detail,
    }
    if entry["remote_addr"] != (request.remote_addr or ""):
        entry["via"] = request.remote_addr or ""
    get_redis().xadd(keys.audit(), entry, maxlen=AUDIT_MAX_ENTRIES, approximate=True)


# -- orders -------------------------------------------------------------------------------------------
def _order_json(order: Any) -> dict[str, Any]:
    shown = {name: getattr(order, name) for name in ("reference", "kind", "phone", "target", "amount", "payer",
                                                       "provider", "state", "reason", "created_at", "updated_at")}
    shown["journal"] = [dict(zip(("at", "trigger", "source", "dest", "why"), move, strict=True))
                        for move in order.history]
    return shown


@bp.get("/orders")
@require_admin
def find_orders() -> tuple[Response, int]:
    from utility.services import services

    query = request.args.get("q", "").strip()[:64]
    if not query:
        return jsonify(error="send ?q= a reference, a phone (E.164), a meter or an account number"), 400
    found = services().orders.find(query)
    audit_detail(f"looked up orders: {len(found)} found")
    return jsonify(orders=[_order_json(order) for order in found]), 200


@bp.get("/orders/<reference>")
@require_admin
def show_order(reference: str) -> tuple[Response, int]:
    from utility.services import services

    order = services().orders.get(reference)
    if order is None:
        return jsonify(error=f"no order {reference!r}"), 404
    return jsonify(_order_json(order)), 200


@bp.post("/orders/<reference>/<action>")
@require_admin
def act_on_order(reference: str, action: str) -> tuple[Response, int]:
    from utility.services import services

    if action not in operations.ORDER_ACTIONS:
        return jsonify(error=f"the actions are {' and '.join(operations.ORDER_ACTIONS)}"), 404
    if services().orders.get(reference) is None:
        audit_detail(f"order {reference}: unknown")
        return jsonify(error=f"no order {reference!r}"), 404
    done, said = operations.act_on_order(reference, action)
    audit_detail(said)
    if not done:
        return jsonify(error=said), 409
    return jsonify(reference=reference, done=action), 200


# -- the audit, read back ------------------------------------------------------------------------------
class BadCursor(ValueError):
    """A ``limit`` or ``before`` that is not one; the message says what is expected."""


def audit_page(client: TextCommands, limit: int = AUDIT_PAGE, before: str | None = None) -> dict[str, Any]:
    """Up to ``limit`` audit entries, newest first, older than the stream id ``before``;
    ``next`` is the ``before`` of the following page (None: this is the last)."""
    if not 1 <= limit <= AUDIT_PAGE_MAX:
        raise BadCursor(f"limit is from 1 to {AUDIT_PAGE_MAX}")
    if before is not None and not STREAM_ID.fullmatch(before):
        raise BadCursor("before is the id of an audit entry, like 1764669900000-0 (the next of a page)")
    # One more than asked: whether another page follows, without a second round trip.
    found = client.xrevrange(keys.audit(), max=f"({before}" if before else "+", min="-", count=limit + 1)
    entries = [{"id": entry_id, **fields} for entry_id, fields in found[:limit]]
    return {"entries": entries, "next": entries[-1]["id"] if len(found) > limit else None}


@bp.get("/audit")
@require_admin
def read_audit() -> tuple[Response, int]:
    """The audit trail, newest first: ``?limit=50`` a page, ``&before=<next>`` the next one."""
    try:
        limit = int(request.args.get("limit", AUDIT_PAGE))
    except ValueError:
        limit = 0
    before = request.args.get("before") or None
    try:
        page = audit_page(get_redis(), limit, before)
    except BadCursor as exc:
        audit_detail(f"refused: {exc}")
        return jsonify(error=str(exc)), 400
    audit_detail(f"read {len(page['entries'])} entr{'y' if len(page['entries']) == 1 else 'ies'}"
                 + (f" before {before}" if before else ""))
    return jsonify(page), 200


@click.command("audit")
@with_appcontext
@click.option("--limit", type=click.IntRange(1, AUDIT_PAGE_MAX), default=AUDIT_PAGE, show_default=True,
              help="Entries to show.")
@click.option("--before", default=None, metavar="ID", help="Show entries older than this one (a page's next).")
def audit_command(limit: int, before: str | None) -> None:
    """Print the admin audit trail, newest first: when, who, what, how it ended, from where.

    Reads the Redis of REDIS_URL directly (no admin key; not itself audited: whoever can
    reach that Redis could rewrite the stream anyway)."""
    from utility.cli import shared_store

    store = shared_store("REDIS_URL is not set: the audit of a server lives in its Redis; set REDIS_URL to read it.")
    try:
        page = audit_page(store.data, limit, before)
    except BadCursor as exc:
        raise click.BadParameter(str(exc), param_hint="--before") from None
    for entry in page["entries"]:
        where = entry.get("remote_addr", "") + (f" via {entry['via']}" if entry.get("via") else "")
        detail = f"  {entry['detail']}" if entry.get("detail") else ""
        click.echo(f"{entry['id']}  {entry.get('at', '')}  {entry.get('who', UNKNOWN)}  {entry.get('outcome', '')}  "
                   f"{entry.get('action', '')}  from {where}{detail}")
    if not page["entries"]:
        click.echo("no audit entries" + (f" before {before}" if before else ""))
    if page["next"]:
        click.echo(f"more: guichet audit --limit {limit} --before {page['next']}")
