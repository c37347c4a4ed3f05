"""Hubtel USSD (Programmable Services): JSON callbacks carrying only the latest input
(`Message`), answered with JSON `{"Type": "Response"|"Release", "Message": ...}`. It proves
the seam: the session store, not the request, holds the path walked so far.

What Hubtel sends (developers.hubtel.com, "API Reference - Prog Services"):
- `Type`: initiation | response | release (| timeout, which its SDKs also know);
- `Message`: on initiation the dial string the customer typed (`*711*2*5#`), blank when the
  session starts from the Hubtel app; then the customer's latest input;
- `ServiceCode`: the service's USSD code *without* `*` and `#` (`711*2`), or the id of the
  service (its sample sends `b230733cd56b4a0fad820e39f66bc27c`); the same on every hop;
- `SessionId`, `Mobile` (233..., no +), `Operator`, `Sequence`, `ClientState`.
Its answer: `Type` and `Message`, plus `Label`, `ClientState`, `DataType` and `FieldType`
that the Hubtel app (not a handset) uses to draw the screen.

Hubtel shows anything but a 200 with that JSON as a failure on the customer's handset, so a
Hubtel-shaped callback with a field we cannot use is answered with a polite Release (see
`refuse`), not the 400 other gateways get.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from flask import Request, Response, current_app

from ussd.catalogue import DEFAULT_LANGUAGE, text
from ussd.gateways.base import (
    BadCallback,
    Hop,
    bounded_text,
    check_body_size,
    configured_codes,
    phone_number,
    required,
)
from ussd.screens import Screen

log = logging.getLogger(__name__)

TYPES = {"initiation", "response", "release", "timeout"}
NOT_JSON = "expected a JSON object body"
BAD_SERVICE_CODE = "ServiceCode is not a USSD code like 711*2 or a service id"
# A code as Hubtel writes it, its `*` and `#` optional: `711*2`, `*711*2#`. ASCII digits
# only: `\d` would take Arabic-Indic or full-width digits no handset dials.
DIAL_CODE = re.compile(r"\*?([0-9]{1,6}(?:\*[0-9A-Za-z]+)*)#?", re.ASCII)
SERVICE_ID = re.compile(r"[0-9a-fA-F]{32}", re.ASCII)  # a GUID without dashes, as in Hubtel's sample


class Refusal(BadCallback):
    """A Hubtel callback with a field we cannot use: answered with a Release, not a 400."""


@dataclass(frozen=True)
class Hubtel:
    name: str = "hubtel"

    def parse(self, request: Request) -> Hop:
        check_body_size(request)
        # force: a Hubtel body whose Content-Type a proxy lost is still Hubtel's.
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            # Not JSON, or JSON but not an object: not something Hubtel sends, so no
            # customer is waiting on it; it (like an oversized body above) keeps the plain
            # BadCallback and gets the view's 400 with its reason.
            raise BadCallback(NOT_JSON)
        try:
            return self._hop(body)
        except BadCallback as exc:  # Hubtel-shaped: a customer is waiting on the answer
            raise Refusal(str(exc)) from exc

    def _hop(self, body: dict[str, Any]) -> Hop:
        fields = {k: "" if v is None else str(v) for k, v in body.items()}
        kind = required(fields, "Type").lower()
        if kind not in TYPES:
            raise BadCallback(f"Type must be one of {', '.join(sorted(TYPES))}")
        session_id = required(fields, "SessionId")
        phone = phone_number(required(fields, "Mobile"), "Mobile")
        message = bounded_text(fields.get("Message", ""), "Message")
        sequence = fields.get("Sequence", "").strip()
        # Every hop takes its code from ServiceCode, which Hubtel repeats unchanged, so all
        # hops of a session name the same code; only the first hop's shortcuts come from
        # the dial string in Message.
        code = service_code(required(fields, "ServiceCode"))
        dial_inputs: tuple[str, ...] = ()
        inputs: tuple[str, ...] = ()
        if kind == "initiation":
            dial_inputs = shortcuts(code, message)
        elif kind == "response":
            inputs = (message,)
        return Hop(
            gateway=self.name,
            session_id=session_id,
            phone=phone,
            service_code=code,
            network=fields.get("Operator", "").strip(),
            hop_key=f"s:{sequence}:{kind}:{message}",
            inputs=inputs,
            cumulative=False,
            dial_inputs=dial_inputs,
            opening=kind == "initiation",
        )

    def respond(self, screen: Screen) -> Response:
        return answer(screen.text, end=screen.end)

    def refuse(self, error: BadCallback) -> Response | None:
        """The answer to a callback `parse` refused; None leaves it to the view's 400.

        The view's hook (ussd/views.py, `hop`): call `adapter.refuse(exc)` when the adapter
        has one and return its answer unless it is None. A Refusal is a Hubtel-shaped
        callback, so a customer is looking at a handset: a 400 would show them a crash,
        a Release shows them a polite goodbye. Anything else is not Hubtel's.
        """
        if not isinstance(error, Refusal):
            return None
        log.warning("hubtel callback answered with a Release: %s", error)
        lang = str(current_app.config.get("DEFAULT_LANGUAGE") or DEFAULT_LANGUAGE)
        return answer(text(lang, "end.down"), end=True)


def answer(message: str, end: bool) -> Response:
    """Hubtel's answer: Type and Message for a handset; Label (the title, here the first
    line), DataType and FieldType for the Hubtel app. ClientState stays empty: the
    session lives in Redis, not in what Hubtel carries for us."""
    body = {
        "Type": "Release" if end else "Response",
        "Message": message,
        "Label": message.split("\n", 1)[0],
        "ClientState": "",
        "DataType": "display" if end else "input",
        "FieldType": "text",
    }
    return Response(json.dumps(body), status=200, mimetype="application/json")


def service_code(raw: str) -> str:
    """ServiceCode as a Hop's service_code: `711*2` and `*711*2#` -> `*711*2#`; a service
    id is kept as it is (opaque: it names the service, not what to dial).

    Hubtel sends the service's own code, a shared code's extension included (`713*20`),
    so no configuration is needed to tell the code from shortcuts. A code of
    SERVICE_CODES it starts with wins all the same (a ServiceCode that carried the
    customer's shortcuts too would then still name the service).
    """
    raw = raw.strip()
    if SERVICE_ID.fullmatch(raw):
        return raw
    match = DIAL_CODE.fullmatch(raw)
    if match is None:
        raise BadCallback(BAD_SERVICE_CODE)
    body = match.group(1)
    for known in configured_codes():
        base = known.strip("*#")
        if body == base or body.startswith(base + "*"):
            return known
    return f"*{body}#"


def shortcuts(code: str, message: str) -> tuple[str, ...]:
    """The inputs the first hop's dial string carries after the service's code:
    (`*711*2#`, `*711*2*5*1#`) -> (`5`, `1`).

    A blank Message (a session started from the Hubtel app), a Message that is not a dial
    string, or one that does not start with the code (as with a service id, which says
    nothing of where the code ends) carries none: the customer gets the main menu rather
    than a guess acted on.
    """
    match = DIAL_CODE.fullmatch(message.strip())
    if match is None:
        return ()
    base, dialled = code.strip("*#"), match.group(1)
    if not dialled.startswith(base + "*"):
        if dialled != base:
            log.info("hubtel dial string %r is not under ServiceCode %r: no shortcuts", message[:40], code)
        return ()
    return tuple(dialled[len(base) + 1 :].split("*"))


GATEWAY = Hubtel()
