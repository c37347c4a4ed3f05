"""What every gateway adapter produces and the checks they share."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

from flask import Request, Response, current_app

from ussd.screens import Screen
from utility.phones import is_e164

MAX_BODY_BYTES = 4096
MAX_TEXT_CHARS = 1000
MAX_FIELDS = 50
# ASCII only ([0-9], fullmatch): \d takes fullwidth and other scripts' digits, and $
# lets a trailing newline through.
SERVICE_CODE = re.compile(r"\*[0-9]{1,6}(\*[0-9A-Za-z]+)*#", re.ASCII)


class BadCallback(Exception):
    """A callback we cannot act on; the message is the one-line reason sent back (400)."""


@dataclass(frozen=True)
class Hop:
    """One request of a USSD session, whatever gateway it came through."""

    gateway: str
    session_id: str
    phone: str  # E.164
    service_code: str  # the service's code, shortcut inputs removed (*384#, *384*12345#)
    network: str
    hop_key: str  # identifies this hop among the session's hops (retries repeat it)
    inputs: tuple[str, ...]  # cumulative: every input so far; else: the latest one only
    cumulative: bool
    dial_inputs: tuple[str, ...] = ()  # inputs carried by the dial string (*384*5#)
    opening: bool = True  # the gateway says this hop opens its session (the dial)


class Gateway(Protocol):
    @property
    def name(self) -> str:
        """The gateway's name: its webhook is POST /ussd/<name>."""
        ...

    def parse(self, request: Request) -> Hop:
        """The hop in ``request``; raises BadCallback with a reason."""
        ...

    def respond(self, screen: Screen) -> Response:
        """``screen`` as this gateway expects its answer."""
        ...


def check_body_size(request: Request) -> None:
    if (request.content_length or 0) > MAX_BODY_BYTES or len(request.get_data(cache=True)) > MAX_BODY_BYTES:
        raise BadCallback(f"body over {MAX_BODY_BYTES} bytes")


def url_encoded_form(request: Request) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded body, the first of each name (as
    werkzeug's ``request.form.to_dict()`` gives them), parsed by the standard library:
    werkzeug's general form parser cost every hop about 40 µs."""
    check_body_size(request)
    if request.mimetype != "application/x-www-form-urlencoded":
        raise BadCallback("expected an application/x-www-form-urlencoded body")
    body = request.get_data(cache=True).decode("utf-8", "replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadCallback(f"more than {MAX_FIELDS} form fields") from None
    return dict(reversed(pairs))


def required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None or not str(value).strip():
        raise BadCallback(f"missing field: {name}")
    return str(value).strip()


def phone_number(raw: str, field: str) -> str:
    """An E.164 number; gateways that drop the + (233244...) get it back."""
    number = raw.strip().replace(" ", "")
    if number.isascii() and number.isdigit():
        number = "+" + number
    if not is_e164(number):
        raise BadCallback(f"{field} is not an E.164 number")
    return number


def configured_codes() -> list[str]:
    """SERVICE_CODES as codes like ``*384#``, longest first.

    A list (``GUICHET_SERVICE_CODES='["*384#"]'``), or a plain string of comma-separated
    codes (``GUICHET_SERVICE_CODES='*384#'``, which is not JSON and so stays a string).
    """
    raw = current_app.config.get("SERVICE_CODES") or ()
    if isinstance(raw, str):
        raw = raw.split(",")
    codes = {"*" + str(known).strip().strip("*#") + "#" for known in raw if str(known).strip().strip("*#")}
    return sorted(codes, key=len, reverse=True)


def split_dial_string(code: str, field: str) -> tuple[str, tuple[str, ...]]:
    """The service's code and the shortcut inputs a dial string carries after it.

    With ``*384#`` in SERVICE_CODES: ``*384*5*1#`` -> (``*384#``, (``5``, ``1``)). The
    configured codes are matched longest first (``*384*1234#`` before ``*384#``). A code
    under none of them is the service's own code, whole: ``*384*12345#`` (Africa's
    Talking's sandbox, or a shared code) -> (``*384*12345#``, ()). So with SERVICE_CODES
    unset the code the gateway posts is never cut into a base and inputs, and a plain dial
    always opens on the main menu.
    """
    code = code.strip()
    if not SERVICE_CODE.fullmatch(code):
        raise BadCallback(f"{field} is not a USSD code like *384#")
    body = code[:-1]
    for known in configured_codes():
        base = known[:-1]
        if body == base or body.startswith(base + "*"):
            return known, tuple(part for part in body[len(base) :].split("*") if part)
    return code, ()


def bounded_text(value: str, field: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise BadCallback(f"{field} over {MAX_TEXT_CHARS} characters")
    return value
