"""The operators' incident API, /admin/incidents/...: declare, update, resolve, watch, export.

Like the rest of the admin API (utility.admin) it exists only when ADMIN_KEY is set, every
call carries ``Authorization: Bearer <key>`` and is audited, allowed or refused.

    POST /admin/incidents                      a definition (JSON): 201 {"id": ...}, 422 {"errors": {field: why}}
    POST /admin/incidents/<id>                 the fields to change (JSON): 200; 404; 409 once resolved; 422
    POST /admin/incidents/<id>/resolve         200; 404; 409 when resolved already
    GET  /admin/incidents                      every incident, those under way first
    GET  /admin/incidents/<id>                 the incident and each event's broadcast (progress, expected end)
    GET  /admin/incidents/<id>/late-payments.csv  bills paid late in its regions during it, streamed

``?dry_run=1`` on the three POSTs checks and answers what would happen (the incident as it
would stand, the recipients, the SMS and segments per language, the total segments) and
writes nothing.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from utility.admin import audit_detail, csv_download, enabled, require_admin
from utility.incidents.model import DefinitionError
from utility.incidents.service import IncidentResolved, Incidents, Preview, UnknownIncident

bp = Blueprint("incident_admin", __name__, url_prefix="/admin/incidents")

EXPORT_COLUMNS = ("account", "phone", "amount", "due_date", "paid_at", "reference", "region")
DRY_RUN = ("1", "true", "yes")


def init_app(app: Flask) -> None:
    if enabled(app):  # as utility.admin: no key, no admin API
        app.register_blueprint(bp)


def _incidents() -> Incidents:
    from utility.services import services

    return services().incidents


def _dry_run() -> bool:
    return request.args.get("dry_run", "").strip().lower() in DRY_RUN


def _previewed(preview: Preview) -> tuple[Response, int]:
    audit_detail(preview.summary())
    return jsonify(preview.to_json()), 200


def _definition() -> object | None:
    return request.get_json(silent=True)


def _not_json() -> tuple[Response, int]:
    audit_detail("not JSON")
    return jsonify(error="send the incident's fields as JSON (Content-Type: application/json)"), 415


def _refused(exc: DefinitionError, what: str) -> tuple[Response, int]:
    audit_detail(f"{what} refused: {', '.join(exc.errors)}")
    return jsonify(errors=exc.errors), 422


@bp.post("")
@require_admin
def create() -> tuple[Response, int]:
    data = _definition()
    if data is None:
        return _not_json()
    incidents = _incidents()
    try:
        if _dry_run():
            return _previewed(incidents.preview_create(data))
        incident = incidents.create(data)
    except DefinitionError as exc:
        return _refused(exc, "create")
    audit_detail(f"created {incident.id}{', broadcast' if incident.broadcast else ''}")
    return jsonify(incident.to_json()), 201


@bp.post("/<incident_id>")
@require_admin
def update(incident_id: str) -> tuple[Response, int]:
    incident_id = incident_id.upper()
    data = _definition()
    if data is None:
        return _not_json()
    incidents = _incidents()
    try:
        if _dry_run():
            return _previewed(incidents.preview_update(incident_id, data))
        incident = incidents.update(incident_id, data)
    except UnknownIncident:
        return _unknown(incident_id)
    except IncidentResolved as exc:
        return _conflict(incident_id, exc)
    except DefinitionError as exc:
        return _refused(exc, f"{incident_id} update")
    audit_detail(f"{incident_id} updated ({incident.updates}){', broadcast' if incident.broadcast else ''}")
    return jsonify(incident.to_json()), 200


@bp.post("/<incident_id>/<action>")
@require_admin
def resolve(incident_id: str, action: str) -> tuple[Response, int]:
    incident_id = incident_id.upper()
    if action != "resolve":
        audit_detail(f"{incident_id}: no action {action[:20]!r}")
        return jsonify(error="the action is resolve"), 404
    incidents = _incidents()
    try:
        if _dry_run():
            return _previewed(incidents.preview_resolve(incident_id))
        incident = incidents.resolve(incident_id)
    except UnknownIncident:
        return _unknown(incident_id)
    except IncidentResolved as exc:
        return _conflict(incident_id, exc)
    audit_detail(f"{incident_id} resolved{', broadcast' if incident.broadcast else ''}")
    return jsonify(incident.to_json()), 200


@bp.get("")
@require_admin
def list_incidents() -> tuple[Response, int]:
    found = _incidents().all()
    audit_detail(f"{len(found)} incident(s)")
    return jsonify(incidents=[incident.to_json() for incident in found]), 200


@bp.get("/<incident_id>")
@require_admin
def show(incident_id: str) -> tuple[Response, int]:
    incident_id = incident_id.upper()
    incidents = _incidents()
    incident = incidents.get(incident_id)
    if incident is None:
        return _unknown(incident_id)
    audit_detail(incident_id)
    return jsonify({**incident.to_json(), "broadcasts": incidents.broadcasts(incident)}), 200


@bp.get("/<incident_id>/late-payments.csv")
@require_admin
def late_payments(incident_id: str) -> Response | tuple[Response, int]:
    incident_id = incident_id.upper()
    incidents = _incidents()
    if incidents.get(incident_id) is None:
        return _unknown(incident_id)
    audit_detail(f"{incident_id}: late payments export")

    rows = ((p.account, p.phone, p.amount, p.due_date.isoformat(), p.paid_at.isoformat(timespec="seconds"),
             p.reference, p.region) for p in incidents.late_payments(incident_id))
    return csv_download(EXPORT_COLUMNS, rows, f"{incident_id}-late-payments.csv")


def _unknown(incident_id: str) -> tuple[Response, int]:
    audit_detail(f"{incident_id[:20]}: no such incident")
    return jsonify(error=f"no incident {incident_id[:20]}"), 404


def _conflict(incident_id: str, exc: IncidentResolved) -> tuple[Response, int]:
    audit_detail(f"{incident_id}: refused, resolved")
    return jsonify(error=str(exc)), 409
