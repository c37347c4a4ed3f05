"""What an operator does, one plain function each: the admin API (utility.admin) and the console
(utility.console) call the same ones, so a click and a curl cannot drift apart."""
from __future__ import annotations

from flask import current_app

from state import switches
from state.store import get_redis
from utility import calls, payments, vending


def builtin_backends() -> set[str]:
    """The backends Guichet itself plays (demonstrations, drills), which an operator may switch:
    never the utility's real systems (XMLVend vending, MTN MoMo)."""
    config = current_app.config
    builtin = {"billing"}  # billing has no external adapter yet
    if vending.backend_name(config) == "builtin":
        builtin.add("vending")
    if payments.configured_name(current_app) == payments.demo.NAME:
        builtin.add("payments")
    return builtin


def switch_backend(backend: str, down: bool) -> int:
    """Switch a built-in backend down or up; back up, the paid orders waiting for it are
    retried now. Returns how many were."""
    switches.set_down(get_redis(), backend, down)  # every copy of the switches in this process reads again
    if down or backend not in ("vending", "billing"):
        return 0
    from utility.services import services

    return services().orders.retry_waiting()


def seam() -> calls.Seam:
    """The breakers, built with the backends if nothing has built them yet."""
    from utility.services import services

    services()
    return calls.seam()


def reset_breaker(system: str) -> calls.BreakerState | None:
    """Close a system's breaker (the operator says it is back); None: no such breaker."""
    built = seam()
    if system not in built.systems():
        return None
    built.reset(system)
    (breaker,) = [b for b in built.read() if b.system == system]
    return breaker


# What an operator may do to one order: (the Orders method, what it did, why it could not).
ORDER_ACTIONS = {
    "resend": ("resend_receipt", "token SMS sent again", "no token to send again"),
    "retry": ("retry", "fulfilment retried", "not waiting for its backend"),
}


def act_on_order(reference: str, action: str) -> tuple[bool, str]:
    """Resend an order's token or retry its fulfilment (ORDER_ACTIONS): whether it was done,
    and what was done or why not, as the audit says it."""
    from utility.services import services

    method, did, could_not = ORDER_ACTIONS[action]
    done: bool = getattr(services().orders, method)(reference)
    return done, f"order {reference}: {did if done else could_not}"
