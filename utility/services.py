"""The domain services of one app, built once: what the USSD menu, SMS keywords and the
admin API all call, so every domain action is reachable from each of them alike.

This is where the parts are wired together: the customer base, the vending backend
(built-in or XMLVend), billing, the payment provider, and the order pipeline with its
SMS messages and background retries.
"""
from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app

from state import keys, limits, worker
from state.store import get_redis
from utility import calls, payments, vending
from utility.billing import BillingBackend, BillRules, BuiltinBilling
from utility.billing import call_policy as billing_policy
from utility.campaigns.service import Campaigns, CampaignSettings
from utility.customers import RedisCustomerBase
from utility.incidents.service import Incidents, IncidentSettings
from utility.orders import OrderLimits, Orders, ReplicaWait
from utility.payments.base import PaymentProvider, PaymentResult
from utility.vending.base import VendingBackend

EXTENSION = "guichet.services"


@dataclass(frozen=True)
class Services:
    customers: RedisCustomerBase
    vending: VendingBackend
    billing: BillingBackend
    payments: PaymentProvider
    orders: Orders
    bill_rules: BillRules = field(default_factory=BillRules)
    tz: datetime.tzinfo = datetime.UTC  # the utility's time zone: dates customers read, "overdue"
    campaigns: Campaigns = field(kw_only=True)  # free-credit campaigns (utility.campaigns)
    incidents: Incidents = field(kw_only=True)  # incident notices and their broadcasts (utility.incidents)
    # Whether calls to a system fail now without being made (utility.calls.out): a breaker
    # open, a built-in backend switched off. What menus ask to change what they offer.
    is_out: Callable[[str], bool] = field(default=lambda system: False, kw_only=True)

    def payments_out(self) -> bool:
        return self.is_out(f"payments:{self.payments.name}")

    def billing_out(self) -> bool:
        return self.is_out("billing")

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(self.tz)


def services(app: Flask | None = None) -> Services:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    built: Services | None = app.extensions.get(EXTENSION)
    if built is None:
        built = app.extensions[EXTENSION] = _build(app)
    return built


def _build(app: Flask) -> Services:
    from sms import outbox
    from sms.customer_messages import SmsMessages

    client = get_redis(app)
    customers = RedisCustomerBase(client)
    # Every call to an outside system goes through the seam (utility.calls: switch, breaker,
    # timeout, metric), wrapped here where the backend is built; the payment provider is
    # wrapped where it is built (payments.provider), the SMS client in sms.outbox.get_client.
    settings = vending.settings_of(app)
    vending_backend = calls.guard(app, vending.from_settings(settings, client, customers), vending.call_policy(settings))
    billing = calls.guard(app, BuiltinBilling(client, customers), billing_policy())
    provider = payments.provider(app)

    def later(reference: str, delay: float) -> None:
        queue = worker.queue(app)
        if delay > 0:
            queue.enqueue_in(datetime.timedelta(seconds=delay), fulfil_job, reference)
        else:
            queue.enqueue(fulfil_job, reference)

    order_limits = OrderLimits(
        orders=limits.parse(app.config.get("ORDER_LIMITS")),
        payer_prompts=limits.parse(app.config.get("PAYER_PROMPT_LIMITS")),
        resends=limits.parse(app.config.get("RESEND_LIMITS")),
    )
    rules = BillRules(overpayment=str(app.config["BILL_OVERPAYMENT"]).strip().lower())
    tz = zoneinfo.ZoneInfo(str(app.config["TIMEZONE"]))
    campaigns = Campaigns(client, customers, tz, CampaignSettings.from_config(app.config))
    incidents = Incidents(client, customers, tz, IncidentSettings.from_config(app.config, outbox.settings_of(app)))
    orders = Orders(client, vending_backend, billing, provider, SmsMessages(app), later, customers=customers,
                    limits=order_limits, penalties_waived=incidents.penalties_waived,
                    replica_wait=ReplicaWait.from_config(app.config))
    # A backend back (its breaker closed): the orders paid while it was down are fulfilled now,
    # not at their next scheduled retry, which may be up to RETRY_CAP away.
    calls.seam(app).when_closed(lambda system: _retry_soon(app, system))
    return Services(customers, vending_backend, billing, provider, orders, rules, tz, campaigns=campaigns,
                    incidents=incidents, is_out=lambda system: calls.out(system, app))


def sweep_orders(app: Flask) -> dict[str, int]:
    """Periodic task: finish orders a crash or a lost job left half done (Orders.sweep)."""
    return services(app).orders.sweep()


WAITING_RETRY_LEASE = 30  # seconds: every process notices a breaker closing, one queues the retries


def _retry_soon(app: Flask, system: str) -> None:
    if system in ("vending", "billing"):  # queued: the call that closed it may be a customer's hop
        worker.queue(app).enqueue(retry_waiting_job, result_ttl=0)


def retry_waiting_job() -> int:
    """Background job: fulfil now every order waiting for its backend (a breaker closed); once
    for every process that noticed it."""
    if not get_redis().set(keys.waiting_retry_lease(), "1", nx=True, ex=WAITING_RETRY_LEASE):
        return 0
    return services().orders.retry_waiting()


def fulfil_job(reference: str) -> str:
    """Background job: deliver what an order paid for (retried with backoff by Orders)."""
    order = services().orders.fulfil(reference)
    return order.state if order else "unknown"


ORDER_SWEEP_EVERY = 10.0  # seconds between two looks for orders a crash left half done


def init_app(app: Flask) -> None:
    # The payment callback endpoint hands final results to the order pipeline.
    def on_payment_result(result: PaymentResult) -> str:
        return services(app).orders.on_payment_result(result)

    app.extensions[payments.RESULTS_HANDLER] = on_payment_result

    # Beside every background worker (`guichet serve`, `guichet worker`), one process a round:
    # the poller settles payments whose callback never came (poll_round takes its own
    # lease), the sweep finishes orders a crash or a lost job left half done.
    from utility.payments import poller

    every = poller.poll_every(app.config)
    worker.register_periodic(app, "payment-poller", every, lambda app: poller.poll_round(app, lease=every * 0.9),
                             lease=False)
    worker.register_periodic(app, "order-sweep", ORDER_SWEEP_EVERY, sweep_orders)
    # Campaigns: the pump claims registrations to fulfil at the bulk share of the SMS rate
    # and queues them on the bulk queue (one process a round); by SMS, a campaign's code is
    # a keyword ("GRATUIT 01400000012").
    from sms import keywords
    from utility.campaigns import by_sms
    from utility.campaigns import jobs as campaign_jobs

    worker.register_periodic(app, "campaign-pump", campaign_jobs.PUMP_EVERY, campaign_jobs.pump)
    keywords.register_resolver(by_sms.resolve, words=by_sms.words, usage=by_sms.USAGE)
    from utility import by_sms as self_service  # by SMS too: SOLDE / BAL, JETON / TOKEN
    self_service.register_keywords()
