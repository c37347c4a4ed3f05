"""The admin API, for the utility's operators and their scripts: /admin/...

It exists only when ADMIN_KEY is set. Every call carries ``Authorization: Bearer <key>``
and every call, allowed or refused, is written to the audit stream (state.keys.audit)
with what was done and from where; the key itself is never written anywhere.
"""
from __future__ import annotations

import datetime
import functools
import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, make_response, request
from werkzeug.exceptions import HTTPException

from state import keys, switches
from state.store import get_redis
from utility import customer_csv, payments, vending
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
    retried = 0
    if wanted == "up" and backend in ("vending", "billing"):
        from utility.services import services

        retried = services().orders.retry_waiting()  # paid orders waiting for it: now
    audit_detail(f"{backend} {wanted}, {retried} waiting order(s) retried")
    return jsonify(backend=backend, state=wanted, retried=retried, backends=switches.states(get_redis())), 200


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
