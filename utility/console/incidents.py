"""Incidents: the list (those under way first), declare one, update it, resolve it; every one
of these is a dry run first (who would be texted, the SMS and their segments, what it would
cost), then confirmed; and each event's broadcast watched as it goes.

The domain does the work (utility.incidents.service, the same calls and the same errors as
/admin/incidents and its ``?dry_run=1``): this module turns the form into that definition.

A confirmation carries the definition its dry run showed (``previewed``): a form changed
after its dry run is dry-run again rather than sent, so nobody confirms what they did not see.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from utility import admin
from utility.console import DEFAULTS, bp, t
from utility.console.auth import REFRESH_HEADER, signed_in
from utility.incidents.model import SERVICES, DefinitionError, Incident
from utility.incidents.service import IncidentResolved, Incidents, Preview, UnknownIncident
from utility.incidents.texts import LANGUAGES
from utility.services import services

DONE = ("created", "updated", "resolved")
TEXTS = ("title", "message")
LOCAL_MINUTE = "%Y-%m-%dT%H:%M"  # what an <input type="datetime-local"> sends and shows


@dataclass(frozen=True)
class Cost:
    """A dry run's bill: the segments it would send and what they would cost the utility."""

    segments: int
    price: float  # XAF a segment (CONSOLE_SEGMENT_PRICE)

    @property
    def amount(self) -> float:
        return self.segments * self.price


@dataclass(frozen=True)
class Broadcast:
    """One event's broadcast as its progress shows (Incidents.progress)."""

    event: str
    figures: dict[str, Any]

    @property
    def pending(self) -> int:
        """Recipients not yet settled one way or the other: still to text, or texted and not yet
        sent, failed or given up."""
        ended = sum(int(self.figures.get(name) or 0)
                    for name in ("sent", "failed", "unconfirmed", "opted_out", "skipped", "superseded"))
        return max(int(self.figures.get("recipients") or 0) - ended, 0)

    @property
    def finished(self) -> bool:
        return bool(self.figures.get("finished_at"))


def _incidents() -> Incidents:
    return services().incidents


def _price() -> float:
    return float(current_app.config.get("CONSOLE_SEGMENT_PRICE", DEFAULTS["CONSOLE_SEGMENT_PRICE"]))


def event_label(event: str) -> str:
    """"created", "update-2", "resolved" in the operator's words."""
    if event.startswith("update-"):
        return t("incidents.event_update", number=event.removeprefix("update-"))
    return t(f"incidents.event_{event}") if event in ("created", "resolved") else event


# -- the form ----------------------------------------------------------------------------------
def form_from(posted: MultiDict[str, str]) -> dict[str, Any]:
    """The incident form as posted: its texts per language, the regions and services ticked,
    the expected end (the utility's time), the two flags."""
    form: dict[str, Any] = {f"{part}_{lang}": posted.get(f"{part}_{lang}", "") for part in TEXTS for lang in LANGUAGES}
    form.update(regions=posted.getlist("regions"), services=posted.getlist("services"),
                expected_end=posted.get("expected_end", "").strip(),
                waive_penalties=bool(posted.get("waive_penalties")), broadcast=bool(posted.get("broadcast")))
    return form


def form_of(incident: Incident | None, tz: datetime.tzinfo) -> dict[str, Any]:
    """The form filled with ``incident`` (None: an empty one)."""
    if incident is None:
        return form_from(MultiDict())
    form: dict[str, Any] = {f"{part}_{lang}": dict(getattr(incident, f"{part}s")).get(lang, "")
                            for part in TEXTS for lang in LANGUAGES}
    end = incident.expected_end
    form.update(regions=list(incident.regions), services=list(incident.services),
                expected_end=end.astimezone(tz).strftime(LOCAL_MINUTE) if end else "",
                waive_penalties=incident.waive_penalties, broadcast=incident.broadcast)
    return form


def definition_of(form: dict[str, Any]) -> dict[str, Any]:
    """The definition the form stands for, in the admin API's JSON shape."""
    return {
        **{part: {lang: form[f"{part}_{lang}"] for lang in LANGUAGES} for part in TEXTS},
        "regions": form["regions"],
        "services": form["services"],
        "expected_end": form["expected_end"] or None,
        "waive_penalties": form["waive_penalties"],
        "broadcast": form["broadcast"],
    }


def _fingerprint(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _confirmed(data: object) -> bool:
    """Whether the operator confirms this very definition after its dry run."""
    return request.form.get("step") == "confirm" and request.form.get("previewed", "") == _fingerprint(data)


def _changed_since_preview() -> str:
    return t("incidents.changed") if request.form.get("step") == "confirm" else ""


def _notice() -> str:
    done = request.args.get("done", "")
    return t(f"incidents.done_{done}") if done in DONE else ""


def _shown(preview: Preview | None) -> dict[str, Any]:
    """What the page needs to show a dry run (nothing when there is none)."""
    if preview is None:
        return {"preview": None}
    return {"preview": preview, "cost": Cost(preview.audience.total_segments, _price()),
            "preview_event": event_label(preview.event)}


# -- the list and a new incident -------------------------------------------------------------------
def _list_page(form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
               preview: Preview | None = None, previewed: str = "", **shown: Any) -> str:
    incidents = _incidents()
    return render_template("console/incidents.html", rows=incidents.all(), regions=incidents.regions(),
                           service_names=SERVICES, languages=LANGUAGES,
                           form=form or form_of(None, incidents.tz), errors=errors or {}, previewed=previewed,
                           action=url_for("console.create_incident"), **_shown(preview), **shown)


@bp.get("/incidents")
@signed_in
def incidents() -> str:
    return _list_page(notice=_notice())


@bp.post("/incidents")
@signed_in
def create_incident() -> Response | tuple[str, int]:
    form = form_from(request.form)
    data = definition_of(form)
    incidents = _incidents()
    try:
        if not _confirmed(data):
            preview = incidents.preview_create(data)
            admin.audit_detail(preview.summary())
            return _list_page(form, preview=preview, previewed=_fingerprint(data),
                              problem=_changed_since_preview()), 200
        incident = incidents.create(data)
    except DefinitionError as exc:
        admin.audit_detail(f"create refused: {', '.join(exc.errors)}")
        return _list_page(form, exc.errors, problem=t("incidents.refused", count=len(exc.errors))), 422
    admin.audit_detail(f"created {incident.id}{', broadcast' if incident.broadcast else ''}")
    return redirect(url_for("console.incident", incident_id=incident.id, done="created"), 303)


# -- one incident ------------------------------------------------------------------------------------
def _page(incident: Incident, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
          preview: Preview | None = None, previewed: str = "", **shown: Any) -> str:
    incidents = _incidents()
    return render_template("console/incident.html", incident=incident, broadcasts=_broadcasts(incident),
                           regions=incidents.regions(), service_names=SERVICES, languages=LANGUAGES,
                           form=form or form_of(incident, incidents.tz), errors=errors or {}, previewed=previewed,
                           action=url_for("console.update_incident", incident_id=incident.id),
                           event_label=event_label, **_shown(preview), **shown)


def _broadcasts(incident: Incident) -> list[Broadcast]:
    return [Broadcast(figures["event"], figures) for figures in _incidents().broadcasts(incident)]


def _unknown(incident_id: str) -> tuple[str, int]:
    admin.audit_detail(f"{incident_id[:20]}: no such incident")
    return _list_page(problem=t("incidents.unknown", incident_id=incident_id[:20])), 404


@bp.get("/incidents/<incident_id>")
@signed_in
def incident(incident_id: str) -> str | tuple[str, int]:
    """The page; with ``X-Console-Refresh`` only its broadcasts' progress, which the page's
    script swaps in."""
    found = _incidents().get(incident_id)
    if found is None:
        return _list_page(problem=t("incidents.unknown", incident_id=incident_id.upper()[:20])), 404
    if request.headers.get(REFRESH_HEADER):
        return render_template("console/incident_live.html", incident=found, broadcasts=_broadcasts(found),
                               event_label=event_label)
    return _page(found, notice=_notice())


@bp.post("/incidents/<incident_id>")
@signed_in
def update_incident(incident_id: str) -> Response | tuple[str, int]:
    incident_id = incident_id.upper()
    incidents = _incidents()
    current = incidents.get(incident_id)
    if current is None:
        return _unknown(incident_id)
    form = form_from(request.form)
    before = definition_of(form_of(current, incidents.tz))
    # Only what the operator changed: the journal says which fields an update touched.
    changes = {name: value for name, value in definition_of(form).items() if value != before[name]}
    if not changes:
        admin.audit_detail(f"{incident_id} update: nothing changed")
        return _page(current, form, problem=t("incidents.unchanged")), 422
    try:
        if not _confirmed(changes):
            preview = incidents.preview_update(incident_id, changes)
            admin.audit_detail(preview.summary())
            return _page(current, form, preview=preview, previewed=_fingerprint(changes),
                         problem=_changed_since_preview()), 200
        updated = incidents.update(incident_id, changes)
    except UnknownIncident:
        return _unknown(incident_id)
    except IncidentResolved:
        admin.audit_detail(f"{incident_id}: refused, resolved")
        return _page(current, form, problem=t("incidents.resolved_already")), 409
    except DefinitionError as exc:
        admin.audit_detail(f"{incident_id} update refused: {', '.join(exc.errors)}")
        return _page(current, form, exc.errors, problem=t("incidents.refused", count=len(exc.errors))), 422
    admin.audit_detail(f"{incident_id} updated ({updated.updates}){', broadcast' if updated.broadcast else ''}")
    return redirect(url_for("console.incident", incident_id=incident_id, done="updated"), 303)


@bp.post("/incidents/<incident_id>/resolve")
@signed_in
def resolve_incident(incident_id: str) -> Response | tuple[str, int]:
    incident_id = incident_id.upper()
    incidents = _incidents()
    current = incidents.get(incident_id)
    if current is None:
        return _unknown(incident_id)
    try:
        if request.form.get("step") != "confirm":
            preview = incidents.preview_resolve(incident_id)
            admin.audit_detail(preview.summary())
            return _page(current, preview=preview, resolving=True), 200
        resolved = incidents.resolve(incident_id)
    except UnknownIncident:
        return _unknown(incident_id)
    except IncidentResolved:
        admin.audit_detail(f"{incident_id}: refused, resolved")
        return _page(current, problem=t("incidents.resolved_already")), 409
    admin.audit_detail(f"{incident_id} resolved{', broadcast' if resolved.broadcast else ''}")
    return redirect(url_for("console.incident", incident_id=incident_id, done="resolved"), 303)
