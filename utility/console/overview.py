"""The overview: what the channel is doing now, refreshed by itself every few seconds.

Hops a minute over the last hour and the sessions in flight (state.tally), orders by state
with the waiting and failed ones first, SMS by status, the built-in backends' switches and
every breaker with their buttons, the campaigns and incidents under way. One page read costs
a handful of round trips, never a scan.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from state import keys, switches, tally
from state.store import get_redis
from utility import admin, operations
from utility.console import bp, t
from utility.console.auth import REFRESH_HEADER, signed_in
from utility.services import services

LISTED = 8  # waiting and failed orders shown on the overview
SMS_STATES = ("queued", "sent", "delivered", "failed", "unconfirmed")
ORDER_STATES = ("paid_awaiting_fulfilment", "failed", "payment_pending", "paid", "fulfilled", "receipt_sent",
                "declined", "expired")  # the ones that need someone first


@dataclass(frozen=True)
class Chart:
    """A bar chart drawn on the server as SVG: (x label, value) per bar."""

    bars: list[tuple[str, int]]
    width: int = 720
    height: int = 140

    @property
    def top(self) -> int:
        return max([value for _, value in self.bars] + [1])

    def bar(self, index: int) -> tuple[float, float, float, float]:
        """x, y, width, height of bar ``index``."""
        step = self.width / max(len(self.bars), 1)
        value = self.bars[index][1]
        tall = (self.height - 20) * value / self.top
        return index * step + 1, self.height - 20 - tall, max(step - 2, 1), tall


def minute_chart(per_minute: list[tuple[float, int]]) -> Chart:
    """A count per minute, each labelled with its minute in the utility's time."""
    tz = services().tz
    return Chart([(datetime.datetime.fromtimestamp(start, tz).strftime("%H:%M"), count) for start, count in per_minute])


def figures() -> dict[str, Any]:
    """Everything the overview shows, read now."""
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.open_orders())
    pipe.scard(keys.waiting_orders())
    pipe.srandmember(keys.waiting_orders(), LISTED)
    pipe.lrange(keys.failed_orders(), 0, LISTED - 1)
    open_now, waiting_count, waiting, failed = pipe.execute()
    built = services()
    seam = operations.seam()
    backends = switches.states(client)
    return {
        "chart": minute_chart(tally.hops_per_minute(client)),
        "sessions_chart": minute_chart(tally.sessions_per_minute(client)),
        "in_flight": tally.sessions_in_flight(client, int(current_app.config["SESSION_TTL"])),
        "orders_today": tally.day_counts(client, "orders"),
        "order_states": ORDER_STATES,
        "open_orders": int(open_now),
        "waiting_count": int(waiting_count),
        "waiting": built.orders.get_many(sorted(waiting or [])),
        "failed": built.orders.get_many(list(failed or [])),
        "sms_today": tally.day_counts(client, "sms"),
        "sms_states": SMS_STATES,
        "backends": {name: state for name, state in backends.items() if name in operations.builtin_backends()},
        "breakers": seam.read(),
        "campaigns": [(campaign, built.campaigns.stats(campaign.code)) for campaign in built.campaigns.active()],
        "incidents": built.incidents.active(),
        "refreshed": time.time(),
    }


@bp.get("/")
@signed_in
def overview() -> str:
    """The page; with ``X-Console-Refresh`` only its live part, which the page's script swaps in."""
    page = "console/overview_live.html" if request.headers.get(REFRESH_HEADER) else "console/overview.html"
    return render_template(page, **figures(), notice=_notice())


def _notice() -> str:
    done = request.args.get("done", "")
    return t(f"done.{done}") if done in ("backend", "breaker") else ""


@bp.post("/backends/<backend>")
@signed_in
def switch_backend(backend: str) -> Response:
    wanted = request.form.get("state", "")
    if backend not in operations.builtin_backends() or wanted not in ("down", "up"):
        admin.audit_detail(f"{backend}: not a built-in backend, or bad state")
        return Response(t("problem.bad_request"), 400)
    retried = operations.switch_backend(backend, wanted == "down")
    admin.audit_detail(f"{backend} {wanted}, {retried} waiting order(s) retried")
    return redirect(url_for("console.overview", done="backend"), 303)


@bp.post("/breakers/<system>/reset")
@signed_in
def reset_breaker(system: str) -> Response:
    if operations.reset_breaker(system) is None:
        admin.audit_detail(f"{system}: no such breaker")
        return Response(t("problem.bad_request"), 404)
    admin.audit_detail(f"{system} breaker closed")
    return redirect(url_for("console.overview", done="breaker"), 303)

