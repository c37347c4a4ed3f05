"""Registering by SMS: "<CODE> <meter or account>" (e.g. "GRATUIT 01400000012").

A campaign's code is a keyword of the inbound SMS channel (sms.keywords) for as long as the
campaign exists: `resolve` answers for it, `on_sms` registers and replies with the verdict
in the very words of the USSD END screen (texts.verdict_text). A closed campaign's code still
answers (the customer hears it is closed, not the generic help); while an operator has closed
the campaigns service (POST /admin/services/campaigns) every code answers with their words. utility.services.init_app
registers the resolver, one line.
"""
from __future__ import annotations

from flask import current_app

from sms.keywords import Handler, Inbound
from sms.receipts import MESSAGES
from state import switches
from utility.campaigns.service import UnknownCampaign
from utility.campaigns.texts import text, verdict_text

USAGE = "meter_or_account"  # what follows the code, as the SMS help lists it (sms/texts [inbound.usage])


def resolve(word: str) -> Handler | None:
    """The handler of ``word`` (folded: "GRATUIT") when it is a campaign's code."""
    from utility.services import services

    return on_sms if services().campaigns.lookup(word) is not None else None


def words() -> list[str]:
    """The codes the SMS help lists: those of campaigns open now."""
    from utility.services import services

    return [campaign.code for campaign in services().campaigns.active()]


def on_sms(message: Inbound) -> str:
    """Register the number after the code; the verdict's words are the reply."""
    from utility.services import services

    closed = switches.services(current_app)["campaigns"]
    if not closed.enabled:  # the operator closed registrations: their words, as on the USSD menu
        return closed.text(message.lang) or MESSAGES.text(message.lang, "inbound.closed")
    if not message.argument:
        return text(message.lang, "sms.usage", code=message.keyword)
    try:
        verdict = services().campaigns.register(message.keyword, message.argument, message.phone, "sms", message.lang)
    except UnknownCampaign:  # gone between the keyword's lookup and now: codes are never removed, but be safe
        return text(message.lang, "sms.usage", code=message.keyword)
    return verdict_text(message.lang, verdict)
