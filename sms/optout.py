"""Opt-out from notices: a phone that texted STOP (or ARRET, or that its operator reported
opted out) gets no broadcast notice until it texts START. Receipts for the customer's own
payments are not notices: they always go (nothing on the receipt path reads this module).

The choice is a field of the phone's profile (``notices`` = ``off``), beside its language:
the hash a new USSD session and an inbound SMS read already, so knowing it costs no round
trip of its own. A broadcast asks for a whole batch of phones at once (`allowed_among`).

Who may change it: the customer by SMS (the STOP / ARRET / START keywords answered here,
listed in sms.keywords.KEYWORDS), and Africa's Talking's bulk SMS opt-out callback
(sms.inbound, parsed by the provider: `ProviderOptOut`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sms.receipts import MESSAGES
from state import journal, keys
from state.store import get_redis

if TYPE_CHECKING:
    from sms.keywords import Inbound
    from state.store import TextRedis

FIELD = "notices"
OFF = "off"


@dataclass(frozen=True)
class ProviderOptOut:
    """A provider's word that a subscriber opted out of our messages."""

    provider: str  # "africastalking"
    phone: str  # the subscriber, E.164
    sender_id: str  # the sender ID or short code they opted out of


def opted_out(client: TextRedis, phone: str) -> bool:
    return client.hget(keys.profile(phone), FIELD) == OFF


def set_notices(client: TextRedis, phone: str, allowed: bool, source: str, via: str = "") -> bool:
    """Stop (``allowed`` False) or resume notices for ``phone``; ``source`` says who asked
    (sms, africastalking, admin), ``via`` through what (our short code, the sender ID the
    subscriber opted out of). True when this changed something.

    Asking for what is already so changes nothing and journals nothing: a provider retries
    its callback, a customer texts STOP twice. The read and the write are two round trips,
    not one transaction (the journal lives in another cluster slot than the profile): two
    requests racing may both journal, which an audit trail survives; neither can leave the
    choice other than the last one asked."""
    if opted_out(client, phone) == (not allowed):
        return False
    pipe = client.pipeline(transaction=False)
    if allowed:
        pipe.hdel(keys.profile(phone), FIELD)
    else:
        pipe.hset(keys.profile(phone), FIELD, OFF)
    journal.append(pipe, "sms.notices", phone=phone, allowed="yes" if allowed else "no", source=source, via=via)
    pipe.execute()
    return True


def allowed_among(client: TextRedis, phones: Sequence[str]) -> list[str]:
    """The phones of ``phones`` that take notices, in the same order: one round trip."""
    pipe = client.pipeline(transaction=False)
    for phone in phones:
        pipe.hget(keys.profile(phone), FIELD)
    return [phone for phone, choice in zip(phones, pipe.execute(), strict=True) if choice != OFF]


# -- the keywords (sms.keywords.KEYWORDS) ------------------------------------------------------
def stop_reply(message: Inbound) -> str:
    """STOP / ARRET: no more notices to this number. Said the same when they were off
    already: the customer wants to read that it is done, not that it was done before."""
    set_notices(get_redis(), message.phone, allowed=False, source="sms", via=message.to)
    return MESSAGES.text(message.lang, "self_service.stopped")


def start_reply(message: Inbound) -> str:
    """START: notices again (after a STOP by SMS or an operator's opt-out alike)."""
    set_notices(get_redis(), message.phone, allowed=True, source="sms", via=message.to)
    return MESSAGES.text(message.lang, "self_service.resumed")
