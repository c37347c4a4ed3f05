"""Orders: find by reference, phone, meter or account; an order's journal; resend its token;
retry it. Numbers are shown masked as in the logs: the operator typed the full one."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sms import outbox
from state.store import get_redis
from utility import admin, operations
from utility.console import bp, t
from utility.console.auth import signed_in
from utility.customers import mask_phone, mask_tail
from utility.services import services

SMS_KINDS = ("payment_received", "receipt", "receipt_details", "payment_failed", "fulfilment_failed")
# An action's notice once done, its refusal otherwise (the console's catalogue).
SAID = {"resend": ("resent", "orders.cannot_resend"), "retry": ("retried", "orders.cannot_retry")}
NOTICES = frozenset(notice for notice, _refusal in SAID.values())


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
                           mask_tail=mask_tail, notice=t(f"done.{done}") if done in NOTICES else "")


@bp.post("/orders/<reference>/<action>")
@signed_in
def act(reference: str, action: str) -> Response:
    """Resend the order's token, or retry it (operations.act_on_order, as POST /admin/orders/...)."""
    if action not in operations.ORDER_ACTIONS:
        return Response(t("problem.bad_request"), 404)
    done, said = operations.act_on_order(reference, action)
    admin.audit_detail(said)
    notice, refusal = SAID[action]
    if not done:
        return Response(t(refusal), 409)
    return redirect(url_for("console.order", reference=reference, done=notice), 303)
