"""Liveness and readiness probes for load balancers and orchestrators."""
from __future__ import annotations

from flask import Blueprint

from state.store import get_store

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    """200 while the process serves requests."""
    return "ok\n", 200, {"Content-Type": "text/plain"}


@bp.get("/readyz")
def readyz() -> tuple[str, int, dict[str, str]]:
    """200 only while Redis answers: without it no hop can be served."""
    if get_store().ping():
        return "ready\n", 200, {"Content-Type": "text/plain"}
    return "redis unavailable\n", 503, {"Content-Type": "text/plain"}
