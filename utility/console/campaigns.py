"""Campaigns: the list, a form for the definition the admin API takes (each bad field shown
beside its control), pause, resume, close; a campaign's page with its progress, its
registrations per minute, its refusals by reason and the download of its registrations.

The domain does the work (utility.campaigns.service, the same calls and the same errors as
POST /admin/campaigns): this module only turns a form into that definition and back.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from utility import admin
from utility.campaigns.admin import registrations_download
from utility.campaigns.model import KINDS, REASONS, Campaign, DefinitionError
from utility.campaigns.service import CampaignExists, Campaigns, StateConflict, UnknownCampaign
from utility.campaigns.texts import LANGUAGES
from utility.console import bp, t
from utility.console.auth import REFRESH_HEADER, signed_in
from utility.console.overview import minute_chart
from utility.services import services

DONE = ("created", "paused", "resumed", "closed")
ACTIONS = {"pause": "paused", "resume": "resumed", "close": "closed"}
# The switches each state offers (Campaigns._switch refuses the others anyway).
OFFERED = {"active": ("pause", "close"), "paused": ("resume", "close"), "closed": ()}


@dataclass(frozen=True)
class Progress:
    """How far a campaign is: places taken of its quota, and fulfilments of registrations."""

    registered: int
    quota: int | None
    fulfilled: int
    failed: int

    @property
    def done(self) -> int:
        return self.fulfilled + self.failed


def _campaigns() -> Campaigns:
    return services().campaigns


def _list(text: str) -> list[str]:
    """A comma-separated form field as the definition's list (empty: none, so every one)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def definition_from(form: MultiDict[str, str]) -> dict[str, Any]:
    """The definition the create form stands for, in the admin API's JSON shape. Values are
    passed on as typed (a quota of "abc" stays "abc"): the model's checks name the field."""
    data: dict[str, Any] = {
        "code": form.get("code", "").strip().upper(),
        "name": {lang: form.get(f"name_{lang}", "") for lang in LANGUAGES},
        "starts_at": form.get("starts_at", "").strip() or None,
        "ends_at": form.get("ends_at", "").strip() or None,
        "benefit": {"kind": form.get("benefit_kind", ""), "amount": form.get("benefit_amount", "").strip() or None},
    }
    eligibility = {name: values for name in ("tariffs", "regions") if (values := _list(form.get(name, "")))}
    if eligibility:
        data["eligibility"] = eligibility
    quota = form.get("quota", "").strip()
    if quota:
        data["quota"] = int(quota) if quota.isdigit() else quota
    return {name: value for name, value in data.items() if value is not None}


def _example(now: datetime.datetime) -> dict[str, str]:
    """The create form filled with an example an operator adapts: a week from tomorrow 8:00."""
    start = (now + datetime.timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    return {"code": "", "name_fr": "", "name_en": "", "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (start + datetime.timedelta(days=7, hours=12)).strftime("%Y-%m-%dT%H:%M"),
            "benefit_kind": "kwh", "benefit_amount": "", "tariffs": "", "regions": "", "quota": ""}


def _list_page(form: dict[str, str] | None = None, errors: dict[str, str] | None = None, problem: str = "") -> str:
    campaigns = _campaigns()
    now = campaigns.now()
    found = campaigns.all()
    return render_template("console/campaigns.html", rows=[(c, _registered(campaigns, c.code)) for c in found],
                           now=now, form=form or _example(now), errors=errors or {}, problem=problem,
                           kinds=KINDS, languages=LANGUAGES, notice=_notice())


def _registered(campaigns: Campaigns, code: str) -> int:
    try:
        return int(campaigns.stats(code)["registered"])
    except UnknownCampaign:  # deleted by hand between the list and now
        return 0


def _notice() -> str:
    done = request.args.get("done", "")
    return t(f"campaigns.done_{done}") if done in DONE else ""


@bp.get("/campaigns")
@signed_in
def campaigns() -> str:
    return _list_page()


@bp.post("/campaigns")
@signed_in
def create_campaign() -> Response | tuple[str, int]:
    form = {name: value for name, value in request.form.items() if name != "csrf_token"}
    try:
        campaign = _campaigns().create(definition_from(request.form))
    except DefinitionError as exc:
        admin.audit_detail(f"campaign refused: {', '.join(exc.errors)}")
        return _list_page(form, exc.errors, t("campaigns.refused", count=len(exc.errors))), 422
    except CampaignExists as exc:
        admin.audit_detail(f"campaign {exc}: exists")
        return _list_page(form, {"code": t("campaigns.exists", code=str(exc))}, t("campaigns.refused", count=1)), 409
    admin.audit_detail(f"created campaign {campaign.code}")
    return redirect(url_for("console.campaign", code=campaign.code, done="created"), 303)


def _figures(campaign: Campaign, stats: dict[str, Any]) -> dict[str, Any]:
    """What a campaign's page shows from Campaigns.stats."""
    chart = minute_chart([(datetime.datetime.fromisoformat(minute["minute"]).timestamp(), int(minute["registrations"]))
                          for minute in stats["registrations_per_minute"]])
    return {"campaign": campaign, "stats": stats, "chart": chart, "reasons": REASONS,
            "progress": Progress(stats["registered"], campaign.quota, stats["fulfilled"], stats["failed"]),
            "status": campaign.status(_campaigns().now()), "offered": OFFERED.get(campaign.state, ())}


@bp.get("/campaigns/<code>")
@signed_in
def campaign(code: str) -> str | tuple[str, int]:
    """The page; with ``X-Console-Refresh`` only its figures, which the page's script swaps in."""
    code = code.upper()
    campaigns = _campaigns()
    found = campaigns.get(code)
    if found is None:
        return _list_page(problem=t("campaigns.unknown", code=code[:20])), 404
    figures = _figures(found, campaigns.stats(code))
    if request.headers.get(REFRESH_HEADER):
        return render_template("console/campaign_live.html", **figures)
    return render_template("console/campaign.html", **figures, notice=_notice())


@bp.post("/campaigns/<code>/<action>")
@signed_in
def switch_campaign(code: str, action: str) -> Response | tuple[str, int]:
    code = code.upper()
    campaigns = _campaigns()
    steps = {"pause": campaigns.pause, "resume": campaigns.resume, "close": campaigns.close}
    if action not in steps:
        admin.audit_detail(f"{code}: no action {action[:20]!r}")
        return _list_page(problem=t("problem.bad_request")), 404
    try:
        changed = steps[action](code)
    except UnknownCampaign:
        admin.audit_detail(f"{code[:20]}: no such campaign")
        return _list_page(problem=t("campaigns.unknown", code=code[:20])), 404
    except StateConflict as exc:
        admin.audit_detail(f"{code} {action}: refused, {exc.state}")
        found = campaigns.get(code)
        assert found is not None  # it was there a moment ago: the conflict says its state
        return render_template("console/campaign.html", **_figures(found, campaigns.stats(code)),
                               problem=t(f"campaigns.cannot_{action}", state=t(f"campaigns.status_{exc.state}"))), 409
    admin.audit_detail(f"{code} {action}: now {changed.state}")
    return redirect(url_for("console.campaign", code=code, done=ACTIONS[action]), 303)


@bp.get("/campaigns/<code>/registrations.csv")
@signed_in
def campaign_registrations(code: str) -> Response | tuple[str, int]:
    """Every registration, streamed as the admin API's export; a download of customers' data,
    so audited although a GET."""
    code = code.upper()
    campaigns = _campaigns()
    if campaigns.get(code) is None:
        admin.audit_detail(f"{code[:20]}: no such campaign")
        return _list_page(problem=t("campaigns.unknown", code=code[:20])), 404
    admin.audit_detail(f"{code}: export")
    return registrations_download(campaigns, code)
