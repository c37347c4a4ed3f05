"""The operator console: /console, web pages over the same domain services as the admin API.

Server-rendered (Jinja, Flask's own way), one module per page group, each a set of views on
the one blueprint ``bp``:

    auth.py       sign-in with an admin key, the console session (Redis), CSRF, idle timeout
    overview.py   what the channel is doing now: hops, sessions, orders, SMS, backends, campaigns, incidents
    orders.py     find an order, read its journal, resend its token, retry it
    customers.py  find a customer, import a CSV
    campaigns.py  define, steer and watch campaigns; download their registrations
    incidents.py  declare, update, resolve incidents; each broadcast dry-run first, then watched
    audit.py      the audit trail
    phone.py      the web phone (its own blueprint: also open on the embedded store)
    menu_map.py   the menu drawn as a graph, with each screen's figures of the day

Like /admin, the console exists only when an admin key is configured (404 otherwise), and
every action is audited as the admin API's are (utility.admin.audited). Its words live in
the catalogue texts/<lang>.toml (French by default, English selectable per browser) and
templates read them with ``t("key")``; numbers go through the ``num`` filter.
"""
from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from sms.catalogue import Catalogue
from utility import admin

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
# Always there, console or not: the style sheet and script (nothing secret), the language choice,
# which the web phone uses too on the embedded store.
common = Blueprint("console_common", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static")

# The console's pages in the order of its menu: (endpoint, its name in the catalogue).
PAGES = (("console.overview", "nav.overview"), ("console.orders", "nav.orders"),
         ("console.customers", "nav.customers"), ("console.campaigns", "nav.campaigns"),
         ("console.incidents", "nav.incidents"), ("console.audit", "nav.audit"), ("console.menu_map", "nav.menu"))

# Settings (GUICHET_<NAME>), each default stated here once: app.DEFAULTS merges them.
DEFAULTS: dict[str, Any] = {
    "CONSOLE_IDLE_TIMEOUT": 900,  # seconds without a request before the operator signs in again
    "CONSOLE_MAX_AGE": 12 * 3600,  # seconds after sign-in when a session ends whatever happens
    "CONSOLE_SEGMENT_PRICE": 25,  # XAF an SMS segment costs the utility: a broadcast's dry run estimates with it
}

TEXTS = Catalogue(Path(__file__).parent / "texts")
LANG_COOKIE = "guichet_console_lang"

# Pages only ever load their own files: no inline script, nothing from elsewhere. Styles may be
# inline (the SVG charts carry a few).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # customers' numbers, never kept by a shared browser's cache
}


def language() -> str:
    """The operator's language: the one chosen in this browser, else the default (fr)."""
    if "console_lang" not in g:
        chosen = request.cookies.get(LANG_COOKIE, "")
        g.console_lang = chosen if chosen in TEXTS.languages else TEXTS.default
    lang: str = g.console_lang
    return lang


def t(key: str, **values: Any) -> str:
    """The console's text ``key`` in the operator's language."""
    return TEXTS.text(language(), key, **values)


def num(value: Any, digits: int = 0) -> str:
    """A number as the operator reads it: 12 345,5 in French, 12,345.5 in English."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    shown = f"{number:,.{digits}f}"
    if language() == "fr":
        # A narrow no-break space between thousands (what French typography and CLDR use).
        shown = shown.replace(",", "\u202f").replace(".", ",")
    return shown


def when(value: Any) -> str:
    """A Unix time or ISO string as the utility's local date and time (TIMEZONE)."""
    from utility.services import services

    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            moment = datetime.datetime.fromtimestamp(float(value), datetime.UTC)
        else:
            moment = datetime.datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return str(value or "")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    local = moment.astimezone(services().tz)
    return local.strftime("%d/%m/%Y %H:%M:%S" if language() == "fr" else "%Y-%m-%d %H:%M:%S")


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """/console when an admin key is set, and the web phone (its own rule: also on the
    embedded store, for `make run` demos)."""
    from utility.console import audit, auth, campaigns, customers, incidents, menu_map, orders, overview, phone  # noqa: F401  (views)

    app.jinja_env.globals.update(t=t, console_lang=language, console_languages=TEXTS.languages,
                                 csrf_field=auth.csrf_field, csrf_token=auth.csrf_token, operator=auth.current,
                                 console_pages=lambda: [p for p in PAGES if p[0] in app.view_functions],
                                 phone_available=lambda: "phone.page" in app.view_functions,
                                 console_has=lambda endpoint: endpoint in app.view_functions)
    app.jinja_env.filters.update(num=num, when=when)
    app.register_blueprint(common)
    if admin.enabled(app):
        app.register_blueprint(bp)
        log.info("operator console on /console")
    phone.init_app(app)


bp.after_request(secure)
common.after_request(secure)
