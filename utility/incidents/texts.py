"""The customer's words about an incident: the broadcast SMS of each event and the reply to
INFO. The texts are in the SMS catalogue (sms/texts/<lang>.toml, table [incident]).

Each event of an incident has its SMS: "created", "update-<n>" (every update is an event of
its own, so a customer hears each) and "resolved". A broadcast keeps to two segments (the
model checks the message against the longest it can be); the INFO reply to one.
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sms.gsm import gsm7_septets
from sms.keywords import REPLY_SEPTETS
from sms.receipts import MESSAGES, UTILITY_WIDTH

if TYPE_CHECKING:
    from utility.incidents.model import Incident

LANGUAGES = MESSAGES.languages
EVENTS_WITH_MESSAGE = ("created", "update")  # the kinds of event whose SMS carry the message
BROADCAST_SEPTETS = 2 * 153  # two concatenated GSM-7 segments
LONGEST_UTILITY = "X" * UTILITY_WIDTH  # the longest utility name the SMS may carry (GUICHET_UTILITY_NAME)
MORE = "..."


def text(lang: str, key: str, **values: object) -> str:
    return MESSAGES.text(lang, f"incident.{key}", **values)


def kind_of(event: str) -> str:
    """"created", "update" or "resolved": what an event's SMS says ("update-3" is an update)."""
    return "update" if event.startswith("update-") else event


def _moment(lang: str, key: str, at: datetime.datetime, tz: datetime.tzinfo) -> str:
    local = at.astimezone(tz)
    return text(lang, key, date=local.strftime(MESSAGES.text(lang, "number.date")),
                time=local.strftime(MESSAGES.text(lang, "number.time")))


def broadcast_body(
    lang: str, event: str, utility: str, title: str, message: str, expected_end: datetime.datetime | None,
    tz: datetime.tzinfo,
) -> str:
    """The SMS of ``event`` in ``lang``: the utility, the title, the message and when the end is
    expected (the resolution says the service is back instead)."""
    kind = kind_of(event)
    end = _moment(lang, "end", expected_end, tz) if expected_end is not None and kind != "resolved" else ""
    return text(lang, kind, utility=utility, title=title, message=message, end=end)


def bodies(incident: Incident, event: str, utility: str, tz: datetime.tzinfo) -> dict[str, str]:
    """The SMS of ``event`` in every language, as the broadcast sends them."""
    return {lang: broadcast_body(lang, event, utility, incident.title(lang), incident.message(lang),
                                 incident.expected_end, tz) for lang in LANGUAGES}


def info_reply(lang: str, incidents: Sequence[Incident], tz: datetime.tzinfo) -> str:
    """The reply to INFO: the incidents under way in the sender's regions, each with its title
    and expected end, within one segment (those that do not fit are left out, and "..."
    says so); or that there is none."""
    if not incidents:
        return text(lang, "none")
    items = [incident.title(lang) + (_moment(lang, "item_end", incident.expected_end, tz)
                                     if incident.expected_end is not None else "") for incident in incidents]
    reply = text(lang, "info", incidents="; ".join(items))
    while len(items) > 1 and (gsm7_septets(reply) or REPLY_SEPTETS + 1) > REPLY_SEPTETS:
        items.pop()
        reply = text(lang, "info", incidents="; ".join([*items, MORE]))
    return reply
