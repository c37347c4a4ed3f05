"""The operators' campaign API, /admin/campaigns/...: define, steer, restrict, watch, export.

Like the rest of the admin API (utility.admin) it exists only when ADMIN_KEY is set, every
call carries ``Authorization: Bearer <key>`` and is audited, allowed or refused.

    POST /admin/campaigns                          a definition (JSON): 201, 422 {"errors": {field: why}}, 409
    GET  /admin/campaigns                          every campaign
    GET  /admin/campaigns/<code>                   the campaign and its figures (Campaigns.stats)
    POST /admin/campaigns/<code>/pause|resume|close
    POST /admin/campaigns/<code>/allowlist         text/csv, one account or meter number a line
    GET  /admin/campaigns/<code>/registrations.csv every registration, streamed
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from utility.admin import audit_detail, csv_download, enabled, refused_file, require_admin
from utility.campaigns.model import DefinitionError
from utility.campaigns.service import (
    AllowlistError,
    CampaignExists,
    Campaigns,
    StateConflict,
    UnknownCampaign,
)
from utility.gate import upload

bp = Blueprint("campaign_admin", __name__, url_prefix="/admin/campaigns")

EXPORT_COLUMNS = ("reference", "account", "meter", "phone", "channel", "registered_at", "state", "reason")


def init_app(app: Flask) -> None:
    if enabled(app):  # as utility.admin: no key, no admin API
        app.register_blueprint(bp)


def _campaigns() -> Campaigns:
    from utility.services import services

    return services().campaigns


@bp.post("")
@require_admin
def create() -> tuple[Response, int]:
    data = request.get_json(silent=True)
    if data is None:
        audit_detail("not JSON")
        return jsonify(error="send the campaign's definition as JSON (Content-Type: application/json)"), 415
    campaigns = _campaigns()
    try:
        campaign = campaigns.create(data)
    except DefinitionError as exc:
        audit_detail(f"refused: {', '.join(exc.errors)}")
        return jsonify(errors=exc.errors), 422
    except CampaignExists as exc:
        audit_detail(f"{exc}: exists")
        return jsonify(error=f"a campaign {exc} exists already: choose another code"), 409
    audit_detail(f"created {campaign.code}")
    return jsonify(campaign.to_json(campaigns.now())), 201


@bp.get("")
@require_admin
def list_campaigns() -> tuple[Response, int]:
    campaigns = _campaigns()
    now = campaigns.now()
    found = campaigns.all()
    audit_detail(f"{len(found)} campaign(s)")
    return jsonify(campaigns=[campaign.to_json(now) for campaign in found]), 200


@bp.get("/<code>")
@require_admin
def show(code: str) -> tuple[Response, int]:
    try:
        stats = _campaigns().stats(code.upper())
    except UnknownCampaign:
        return _unknown(code)
    audit_detail(f"{code.upper()}")
    return jsonify(stats), 200


@bp.post("/<code>/<action>")
@require_admin
def switch(code: str, action: str) -> tuple[Response, int]:
    code = code.upper()
    campaigns = _campaigns()
    steps = {"pause": campaigns.pause, "resume": campaigns.resume, "close": campaigns.close}
    if action not in steps:
        audit_detail(f"{code}: no action {action[:20]!r}")
        return jsonify(error="the actions are pause, resume, close and allowlist"), 404
    try:
        campaign = steps[action](code)
    except UnknownCampaign:
        return _unknown(code)
    except StateConflict as exc:
        audit_detail(f"{code} {action}: refused, {exc.state}")
        return jsonify(error=str(exc)), 409
    audit_detail(f"{code} {action}: now {campaign.state}")
    return jsonify(campaign.to_json(campaigns.now())), 200


@bp.post("/<code>/allowlist")
@upload  # MAX_UPLOAD_LENGTH: an allow-list may hold a whole customer base
@require_admin
def allowlist(code: str) -> tuple[Response, int]:
    code = code.upper()
    if request.mimetype != "text/csv":
        audit_detail(f"{code}: content type {request.mimetype or 'missing'}")
        return jsonify(error="send the allow-list as Content-Type: text/csv"), 415
    try:
        count = _campaigns().set_allowlist(code, request.get_data(cache=False))
    except UnknownCampaign:
        return _unknown(code)
    except AllowlistError as exc:
        return refused_file(exc, f"{code}: refused, ")
    audit_detail(f"{code}: allow-list of {count}")
    return jsonify(campaign=code, allowlist=count), 200


@bp.get("/<code>/registrations.csv")
@require_admin
def registrations(code: str) -> Response | tuple[Response, int]:
    code = code.upper()
    campaigns = _campaigns()
    if campaigns.get(code) is None:
        return _unknown(code)
    audit_detail(f"{code}: export")
    return registrations_download(campaigns, code)


def registrations_download(campaigns: Campaigns, code: str) -> Response:
    """Every registration of campaign ``code`` as a streamed CSV (this API's export and the
    console's download alike)."""
    rows = ((r.reference, r.account, r.meter, r.phone, r.channel, r.at.isoformat(), r.state, r.reason)
            for r in campaigns.registrations(code))
    return csv_download(EXPORT_COLUMNS, rows, f"{code}-registrations.csv")


def _unknown(code: str) -> tuple[Response, int]:
    audit_detail(f"{code.upper()[:20]}: no such campaign")
    return jsonify(error=f"no campaign {code.upper()[:20]}"), 404
