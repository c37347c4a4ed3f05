"""Opt-out from notices: a phone that texted STOP (or ARRET, or that its operator reported
opted out) gets no broadcast notice until it texts START. Receipts for the customer's own
payments are not notices: they always go.

The choice is a field of the phone's profile (``notices`` = ``off``), beside its language:
the hash a new USSD session and an inbound SMS read already, so knowing it costs no round
trip of its own. A broadcast asks for a whole batch of phones at once (`allowed_among`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from state import journal, keys

if TYPE_CHECKING:
    from state.store import TextRedis

FIELD = "notices"
OFF = "off"


def opted_out(client: TextRedis, phone: str) -> bool:
    return client.hget(keys.profile(phone), FIELD) == OFF


def set_notices(client: TextRedis, phone: str, allowed: bool, source: str) -> bool:
    """Stop (``allowed`` False) or resume notices for ``phone``; ``source`` says who asked
    (sms, africastalking-optout, admin). True when this changed something."""
    pipe = client.pipeline(transaction=False)
    if allowed:
        pipe.hdel(keys.profile(phone), FIELD)
    else:
        pipe.hset(keys.profile(phone), FIELD, OFF)
    journal.append(pipe, "sms.notices", phone=phone, allowed="yes" if allowed else "no", source=source)
    changed, _ = pipe.execute()
    return bool(changed)


def allowed_among(client: TextRedis, phones: Sequence[str]) -> list[str]:
    """The phones of ``phones`` that take notices, in the same order: one round trip."""
    pipe = client.pipeline(transaction=False)
    for phone in phones:
        pipe.hget(keys.profile(phone), FIELD)
    return [phone for phone, choice in zip(phones, pipe.execute(), strict=True) if choice != OFF]
