"""Orders: find by reference, phone, meter or account; an order's journal; resend its token;
retry it. Numbers are shown masked as in the logs: the operator typed the full one."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sms import outbox
from state.store import get_redis
from utility import admin
from utility.console import bp, t
from utility.console.auth import signed_in
from utility.customers import mask_phone, mask_tail
from utility.services import services

SMS_KINDS = ("payment_received", "receipt", "receipt_details", "payment_failed", "fulfilment_failed")


@bp.get("/orders")
@signed_in
def orders() -> str:
    query = request.args.get("q", "").strip()[:64]
    found = services().orders.find(query) if query else []
    return render_template("console/orders.html", query=query, found=found, mask_phone=mask_phone,
                           mask_tail=mask_tail)


@bp.get("/orders/<reference>")
@signed_in
def order(reference: str) -> str | tuple[str, int]:
    found = services().orders.get(reference)
    if found is None:
        return render_template("console/orders.html", query=reference, found=[], mask_phone=mask_phone,
                               mask_tail=mask_tail), 404
    client = get_redis()
    messages = [(kind, message) for kind in SMS_KINDS
                if (message := outbox.find(client, f"order:{reference}:{kind}")) is not None]
    done = request.args.get("done", "")
    return render_template("console/order.html", order=found, messages=messages, mask_phone=mask_phone,
                           mask_tail=mask_tail, notice=t(f"done.{done}") if done in ("resent", "retried") else "")


@bp.post("/orders/<reference>/resend")
@signed_in
def resend(reference: str) -> Response:
    if not services().orders.resend_receipt(reference):
        admin.audit_detail(f"order {reference}: no token to resend")
        return Response(t("orders.cannot_resend"), 409)
    admin.audit_detail(f"order {reference}: token SMS sent again")
    return redirect(url_for("console.order", reference=reference, done="resent"), 303)


@bp.post("/orders/<reference>/retry")
@signed_in
def retry(reference: str) -> Response:
    if not services().orders.retry(reference):
        admin.audit_detail(f"order {reference}: not waiting for its backend")
        return Response(t("orders.cannot_retry"), 409)
    admin.audit_detail(f"order {reference}: fulfilment retried")
    return redirect(url_for("console.order", reference=reference, done="retried"), 303)
