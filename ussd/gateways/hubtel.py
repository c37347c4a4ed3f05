"""Hubtel USSD: JSON callbacks carrying only the latest input (`Message`), answered
with JSON `{"Type": "Response"|"Release", "Message": ...}`. It proves the seam: the
session store, not the request, holds the path walked so far.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Request, Response

from ussd.gateways.base import (
    BadCallback,
    Hop,
    bounded_text,
    check_body_size,
    phone_number,
    required,
    split_dial_string,
)
from ussd.screens import Screen

TYPES = {"initiation", "response", "release", "timeout"}


@dataclass(frozen=True)
class Hubtel:
    name: str = "hubtel"

    def parse(self, request: Request) -> Hop:
        check_body_size(request)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadCallback("expected a JSON object body")
        fields = {k: "" if v is None else str(v) for k, v in body.items()}
        kind = required(fields, "Type").lower()
        if kind not in TYPES:
            raise BadCallback(f"Type must be one of {', '.join(sorted(TYPES))}")
        session_id = required(fields, "SessionId")
        phone = phone_number(required(fields, "Mobile"), "Mobile")
        message = bounded_text(fields.get("Message", ""), "Message")
        sequence = fields.get("Sequence", "").strip()
        if kind == "initiation":
            # The first Message is the dial string itself, shortcuts included.
            code, dial_inputs = split_dial_string(message or required(fields, "ServiceCode"), "Message")
            inputs: tuple[str, ...] = ()
        else:
            code, _ = split_dial_string(required(fields, "ServiceCode"), "ServiceCode")
            dial_inputs, inputs = (), (message,)
        if kind in ("release", "timeout"):
            inputs = ()
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
        )

    def respond(self, screen: Screen) -> Response:
        body = {"Type": "Release" if screen.end else "Response", "Message": screen.text}
        return Response(json.dumps(body), status=200, mimetype="application/json")


GATEWAY = Hubtel()
