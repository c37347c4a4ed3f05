"""The audit trail: who did what, when, from where, and how it ended, newest first, a page at a
time. Reading it is audited, as GET /admin/audit is."""
from __future__ import annotations

from flask import render_template, request

from state.store import get_redis
from utility import admin
from utility.console import bp
from utility.console.auth import signed_in


@bp.get("/audit")
@signed_in
def audit() -> tuple[str, int]:
    before = request.args.get("before") or None
    try:
        page = admin.audit_page(get_redis(), admin.AUDIT_PAGE, before)
    except admin.BadCursor as exc:
        admin.audit_detail(f"refused: {exc}")
        return render_template("console/audit.html", entries=[], next=None, problem=str(exc)), 400
    admin.audit_detail(f"read {len(page['entries'])} entries" + (f" before {before}" if before else ""))
    return render_template("console/audit.html", entries=page["entries"], next=page["next"]), 200
