"""Africa's Talking USSD: form callbacks, `text` accumulating every input joined by `*`,
answers `CON <screen>` / `END <screen>` as text/plain (see shared PROTOCOLS.md).

`serviceCode` is the channel's own code (`*384*12345#` in the sandbox, or a shared code):
taken whole unless it extends a code of SERVICE_CODES (`split_dial_string`), so a plain dial
opens on the main menu. A customer's shortcut (`*384*12345*1#`) reaches us as `text` ("1").
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Request, Response

from ussd.gateways.base import (
    BadCallback,
    Hop,
    bounded_text,
    phone_number,
    required,
    split_dial_string,
    url_encoded_form,
)
from ussd.screens import Screen


@dataclass(frozen=True)
class AfricasTalking:
    name: str = "africastalking"

    def parse(self, request: Request) -> Hop:
        form = url_encoded_form(request)
        session_id = required(form, "sessionId")
        code, dial_inputs = split_dial_string(required(form, "serviceCode"), "serviceCode")
        phone = phone_number(required(form, "phoneNumber"), "phoneNumber")
        network = form.get("networkCode", "").strip()
        if "text" not in form:
            raise BadCallback("missing field: text")
        text = bounded_text(form["text"], "text")
        if len(session_id) > 128:
            raise BadCallback("sessionId over 128 characters")
        return Hop(
            gateway=self.name,
            session_id=session_id,
            phone=phone,
            service_code=code,
            network=network,
            hop_key="t:" + text,
            inputs=tuple(text.split("*")) if text else (),
            cumulative=True,
            dial_inputs=dial_inputs,
            opening=not text,  # the dial: every later hop carries at least one input
        )

    def respond(self, screen: Screen) -> Response:
        prefix = "END " if screen.end else "CON "
        return Response(prefix + screen.text, status=200, mimetype="text/plain")


GATEWAY = AfricasTalking()
