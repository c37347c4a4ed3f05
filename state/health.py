"""Liveness and readiness probes for load balancers and orchestrators."""
from __future__ import annotations

from flask import Blueprint, current_app

from state import worker
from state.store import get_store

bp = Blueprint("health", __name__)

TEXT = {"Content-Type": "text/plain"}


@bp.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    """200 while the process serves requests. A background loop that died is restarted
    by its supervisor, so it is no reason to restart the process; a supervisor thread
    that is gone is (nothing would ever restart what it watched)."""
    background = worker.running(current_app)
    gone = [loop.name for loop in background.loops.values() if not loop.thread.is_alive()] if background else []
    if gone:
        return f"background supervisor gone: {', '.join(gone)}\n", 503, TEXT
    return "ok\n", 200, TEXT


@bp.get("/readyz")
def readyz() -> tuple[str, int, dict[str, str]]:
    """200 only while Redis answers (without it no hop can be served) and every required
    background loop of this process (worker, scheduler) runs: 503 names what is down."""
    if not get_store().ping():
        return "redis unavailable\n", 503, TEXT
    background = worker.running(current_app)
    if background is not None:
        down = background.down()
        if down:
            return "background down: " + ", ".join(loop.describe() for loop in down) + "\n", 503, TEXT
        degraded = background.down(required_only=False)
        if degraded:
            return "ready; degraded: " + ", ".join(loop.describe() for loop in degraded) + "\n", 200, TEXT
    return "ready\n", 200, TEXT
