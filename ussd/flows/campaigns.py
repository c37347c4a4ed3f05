"""Free credits: register a meter or an account for an open campaign.

dial -> "Crédits gratuits" (offered while a campaign is open) -> the campaign (skipped when
only one is open) -> one of the caller's accounts, or a number typed -> the verdict, in the
same words as the SMS reply (utility.campaigns.texts.verdict_text): a reference and when
the credit comes, or why not.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from transitions import EventData

from sms.gsm import clip, to_gsm7
from state.sessions import Session
from ussd.catalogue import text
from ussd.flows.account import account_label
from ussd.screens import NAME_WIDTH, Context, Option, ScreenSpec, account_item, visit_of
from utility.campaigns.service import UnknownCampaign
from utility.campaigns.texts import verdict_text
from utility.customers import Account

if TYPE_CHECKING:
    from ussd.menu import Visit
    from utility.services import Services

MAX_TARGETS = 3  # the caller's accounts offered by number before "another one"
# Verdicts that ask for the number again rather than end the call: a typing slip.
RETYPE = {"unknown_number": "hint.number_unknown", "ambiguous": "hint.account_ambiguous"}


def _any_open(session: Session, services: Services) -> bool:
    return bool(services.campaigns.active())  # this process's copy: no round trip


ENTRY = Option("main.campaigns", "campaigns", when=_any_open)


# -- what the screens say -------------------------------------------------------------------
def _campaign_label(lang: str, item: dict[str, Any]) -> str:
    return clip(to_gsm7(item["names"].get(lang) or next(iter(item["names"].values()), item["code"])), NAME_WIDTH)


def _verdict(session: Session, ctx: Context) -> str:
    return str(session.data["verdict"])


# -- steps ----------------------------------------------------------------------------------
def load_campaigns(event: EventData) -> None:
    visit = visit_of(event)
    visit.session.data["campaigns_open"] = [
        {"code": campaign.code, "names": dict(campaign.names)} for campaign in visit.services.campaigns.active()
    ]


def none_open(event: EventData) -> bool:
    return not visit_of(event).session.data["campaigns_open"]


def one_open(event: EventData) -> bool:
    data = visit_of(event).session.data
    if len(data["campaigns_open"]) != 1:
        return False
    data["campaign"] = data["campaigns_open"][0]["code"]
    return True


def take_picked_campaign(event: EventData) -> None:
    data = visit_of(event).session.data
    data["campaign"] = data["campaigns_open"][event.kwargs["campaign_index"]]["code"]


def load_targets(event: EventData) -> None:
    visit = visit_of(event)
    if "targets" not in visit.session.data:
        accounts = visit.services.customers.accounts_for_phone(visit.session.phone)
        visit.session.data["targets"] = [account_item(account) for account in accounts[:MAX_TARGETS]]


def has_targets(event: EventData) -> bool:
    return bool(visit_of(event).session.data["targets"])


def register_picked(event: EventData) -> None:
    visit = visit_of(event)
    target = visit.session.data["targets"][event.kwargs["target_index"]]
    # Read from the customer base on the hop before: the service need not read it again.
    account = Account(target["number"], target["meter"], target["name"], visit.session.phone, target["region"],
                      target["tariff"], int(target["balance"]),
                      datetime.date.fromisoformat(target["due"]) if target["due"] else None)
    visit.refusal = _register(visit, target["meter"] or target["number"], account)


def registered(event: EventData) -> bool:
    return not visit_of(event).refusal


def accept_number(visit: Visit, value: str) -> str | None:
    if not "".join(value.split()):
        return "hint.number_unknown"
    return _register(visit, value)


def _register(visit: Visit, number: str, account: Account | None = None) -> str | None:
    """Register ``number`` for the session's campaign; the verdict's text is kept for the
    END screen, or the hint returned when the number should be typed again."""
    session = visit.session
    try:
        verdict = visit.services.campaigns.register(session.data["campaign"], number, session.phone, "ussd",
                                                    session.lang, account=account, journal_to=visit.journal)
    except UnknownCampaign:  # removed while the customer was choosing
        session.data["verdict"] = text(session.lang, "campaigns.none")
        return None
    if verdict.reason in RETYPE:
        return RETYPE[verdict.reason]
    session.data["verdict"] = verdict_text(session.lang, verdict)
    return None


SCREENS: dict[str, ScreenSpec] = {
    "campaign_list": ScreenSpec("list", title="campaigns.title", items="campaigns_open", label=_campaign_label,
                                pick="pick_campaign", choice="campaign_index"),
    "campaign_none": ScreenSpec("end", title="campaigns.none", resumable=False),
    "campaign_target": ScreenSpec("list", title="campaigns.target", items="targets", label=account_label,
                                  pick="pick_target", choice="target_index", pick_hints=tuple(RETYPE.values()),
                                  extra=(Option("campaigns.other", "other_number"),)),
    "campaign_number": ScreenSpec("input", title="campaigns.prompt", accept=accept_number, submit="number_entered"),
    "campaign_verdict": ScreenSpec("end", body=_verdict, resumable=False),
}

EDGES: list[dict[str, Any]] = [
    {"trigger": "campaigns", "source": "main", "dest": "campaign_none", "prepare": load_campaigns,
     "conditions": none_open},
    {"trigger": "campaigns", "source": "main", "dest": "campaign_target", "prepare": load_targets,
     "conditions": [one_open, has_targets]},
    {"trigger": "campaigns", "source": "main", "dest": "campaign_number", "conditions": one_open},
    {"trigger": "campaigns", "source": "main", "dest": "campaign_list"},
    {"trigger": "pick_campaign", "source": "campaign_list", "dest": "campaign_target",
     "prepare": [take_picked_campaign, load_targets], "conditions": has_targets},
    {"trigger": "pick_campaign", "source": "campaign_list", "dest": "campaign_number"},
    {"trigger": "pick_target", "source": "campaign_target", "dest": "campaign_verdict", "prepare": register_picked,
     "conditions": registered},
    {"trigger": "other_number", "source": "campaign_target", "dest": "campaign_number"},
    {"trigger": "number_entered", "source": "campaign_number", "dest": "campaign_verdict"},
]

WORST_VERDICT = "V" * 160  # the campaigns' texts are one SMS long at most (tests/campaigns/test_texts.py)
WORST: dict[str, Any] = {
    "campaigns_open": [{"code": "ABCDEFGHIJKL", "names": {"fr": "N" * 60, "en": "N" * 60}}] * 12,
    "campaign": "ABCDEFGHIJKL",
    "targets": [{"number": "ABCDEFGHIJKLMNOPQRS9", "meter": "0123456789012", "name": "N", "tariff": "prepaid",
                 "region": "Centre", "balance": 0, "due": ""}] * MAX_TARGETS,
    "verdict": WORST_VERDICT,
}
VARIANTS: list[dict[str, Any]] = [
    {"targets": [{"number": "ABCDEFGHIJKLMNOPQRS9", "meter": "", "name": "N", "tariff": "postpaid", "region": "Centre",
                  "balance": 0, "due": ""}] * MAX_TARGETS},
]
