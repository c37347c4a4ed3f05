"""Signing in to the console: an admin key, a session in Redis, CSRF on every form, idle timeout.

The browser holds only a random session id (an HttpOnly, SameSite=Strict cookie); the
session itself (who, its CSRF token, when it started) is a Redis hash that expires after
CONSOLE_IDLE_TIMEOUT seconds without a request, and is refused CONSOLE_MAX_AGE after
sign-in whatever happens. Signing out deletes it, so a copied cookie is worthless at once
(a signed cookie would stay valid until it expired), and every process and machine of the
deployment sees the same sessions without a shared secret to configure.

The overview's own refreshes (``X-Console-Refresh``) do not count as activity: a console
left open on a wall screen still times out.
"""
from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, g, make_response, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from state import keys
from state.store import get_redis, get_store
from utility import admin, operators
from utility.console import DEFAULTS, LANG_COOKIE, TEXTS, bp, common, t

COOKIE = "guichet_console"
SIGNIN_COOKIE = "guichet_console_signin"  # the sign-in form's own CSRF token (no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
REFRESH_HEADER = "X-Console-Refresh"

@dataclass(frozen=True)
class Operator:
    name: str
    csrf: str
    started: float
    session_id: str


def _setting(name: str) -> float:
    return float(current_app.config.get(name, DEFAULTS[name]))


def current() -> Operator | None:
    """The signed-in operator of this request, or None (no cookie, expired, signed out)."""
    if "console_operator" in g:
        found: Operator | None = g.console_operator
        return found
    g.console_operator = None
    session_id = request.cookies.get(COOKIE, "")
    if not session_id or len(session_id) > 64 or not session_id.isascii():
        return None
    client = get_redis()
    key = keys.console_session(session_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(key)
    if not request.headers.get(REFRESH_HEADER):
        pipe.expire(key, int(_setting("CONSOLE_IDLE_TIMEOUT")))
    fields = pipe.execute()[0]
    if not fields or time.time() - float(fields.get("started", 0)) > _setting("CONSOLE_MAX_AGE"):
        return None
    operator = Operator(fields["who"], fields["csrf"], float(fields["started"]), session_id)
    g.console_operator = operator
    return operator


def csrf_token() -> str:
    """The token every console form and script sends back."""
    operator = current()
    if operator is not None:
        return operator.csrf
    if "signin_csrf" not in g:
        g.signin_csrf = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
    token: str = g.signin_csrf
    return token


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def anonymous_form_ok() -> bool:
    """Whether a form posted by someone not signed in (the sign-in form, the open web phone)
    carries the token its page set in a cookie: another site cannot read that cookie, so it
    cannot forge the form (double submit)."""
    return _same(_csrf_sent(), request.cookies.get(SIGNIN_COOKIE, ""))


def keep_anonymous_token(response: Response) -> Response:
    """Set the cookie that ``anonymous_form_ok`` checks against (the token the page's forms carry)."""
    response.set_cookie(SIGNIN_COOKIE, csrf_token(), httponly=True, samesite="Strict", secure=request.is_secure,
                        path="/console")
    return response


def _csrf_sent() -> str:
    return request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def _back_to(target: str | None) -> str:
    """Where to go after sign-in: a console page of this site, never another site."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/console") or "\\" in (target or ""):
        return url_for("console.overview")
    return target or url_for("console.overview")


def signed_in(view: Callable[..., Any]) -> Callable[..., Response]:
    """Only for a signed-in operator (others go to the sign-in page, or get 401 from a script).

    A POST must carry the session's CSRF token, and is audited as an admin call: who, what,
    when, from where, how it ended, with what the view says it did (``admin.audit_detail``).
    A GET is audited when the view says what it did (reading the audit, a download of
    customers' data); the pages an operator merely looks at are not."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Response:
        operator = current()
        if operator is None:
            if request.method != "GET" or request.headers.get(REFRESH_HEADER):
                return make_response(t("auth.expired"), 401)
            return redirect(url_for("console.signin", next=request.full_path.rstrip("?")))
        g.admin_name = operator.name
        if request.method == "POST":
            if not _same(_csrf_sent(), operator.csrf):
                admin.record_audit("refused", "console form without its CSRF token")
                return make_response(t("auth.csrf"), 400)
            return admin.audited(view, *args, **kwargs)
        response = make_response(view(*args, **kwargs))
        if g.get("audit_detail"):
            admin.record_audit("done" if response.status_code < 400 else "rejected", g.audit_detail)
        return response

    return checked


def phone_open(app: Flask) -> bool:
    """Whether the web phone may be used without signing in: on the embedded store only,
    the `make run` demo, where nothing real can be reached."""
    return get_store(app).embedded


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Response:
    error = ""
    status = 200
    if request.method == "POST":
        if not anonymous_form_ok():
            error, status = t("auth.csrf"), 400
        else:
            name = operators.keyring(current_app.config).name_of(request.form.get("key", ""))
            g.admin_name = name or admin.UNKNOWN
            if name is None:
                admin.record_audit("refused", "console sign-in with a wrong admin key")
                error, status = t("auth.wrong_key"), 401
            else:
                return _start_session(name)
    return keep_anonymous_token(make_response(render_template("console/signin.html", error=error,
                                                              next=request.values.get("next", "")), status))


def _start_session(name: str) -> Response:
    session_id = secrets.token_urlsafe(32)
    key = keys.console_session(session_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.hset(key, mapping={"who": name, "csrf": secrets.token_urlsafe(24), "started": f"{time.time():.3f}"})
    pipe.expire(key, int(_setting("CONSOLE_IDLE_TIMEOUT")))
    pipe.execute()
    admin.record_audit("done", "console sign-in")
    response = redirect(_back_to(request.form.get("next")), 303)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", secure=request.is_secure,
                        path="/console")
    response.delete_cookie(SIGNIN_COOKIE, path="/console")
    return response


@bp.post("/signout")
@signed_in
def signout() -> Response:
    operator = current()
    assert operator is not None  # signed_in
    get_redis().delete(keys.console_session(operator.session_id))
    admin.audit_detail("console sign-out")
    response = redirect(url_for("console.signin"), 303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@common.get("/language/<lang>")
def choose_language(lang: str) -> Response:
    """Remember the operator's language in this browser, and go back where they were."""
    response = redirect(_back_to(request.args.get("next")), 303)
    if lang in TEXTS.languages:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/console")
    return response
