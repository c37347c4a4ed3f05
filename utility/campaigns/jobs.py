"""Fulfilment: each accepted registration's benefit delivered once, at the SMS provider's
pace, whatever crashes on the way.

    pump (periodic, one process a round)  claims registrations from the campaign's pending
        list, at most the bulk share of the SMS rate per second (SMS_BULK_SHARE), and queues them
        in small chunks on the bulk queue (state.worker.BULK_QUEUE_NAME): 200,000 pending
        registrations are 200,000 entries of a Redis list, never 200,000 jobs, and a
        customer's receipt (on the main queue) never waits behind them.
    fulfil(code, references)  the job: for each registration still pending,
        a prepaid meter: a free-issue token (vending.free_issue) and its SMS
        (sms.receipts.free_issue_receipt);
        an account without a meter: a credit against its balance due (billing.pay) and an SMS;
        then pending -> fulfilled, or -> failed with the backend's reason (and an SMS saying
        so). A backend that cannot answer now (switched off, down) gets it again later. The
        chunk's SMS are queued together once its credits are made (outbox.send_bulk: one
        outbox job delivers them), and the registrations finished after.

Nothing twice: one idempotency key per registration, ``campaign:<CODE>:<reference>``, for
the free issue (the vending backend returns the same token when asked again), the bill
credit (billing.pay is idempotent by reference) and the SMS (the outbox sends one message
per reference); the state moves from pending once, in a script, and is counted then.

A paused or closed campaign takes no registration, but those it accepted are still
fulfilled (to hold the credits back, switch the vending or billing backend off).

Resumable: a claimed registration is due again HOLD seconds later unless finished, so the
work of a job killed half way (a worker SIGKILLed, a lost job) is claimed again by the
pump and done by another job, which skips what was finished and repeats nothing else.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from flask import Flask, current_app

from sms import customer_messages, outbox
from sms.receipts import free_issue_receipt
from state import worker
from utility.billing import BillingError
from utility.campaigns.model import UNIT_OF, UTILITY_OF, Campaign, Registration
from utility.campaigns.service import UnknownCampaign
from utility.campaigns.texts import credit_sms, failed_sms
from utility.customers import mask_tail
from utility.vending.base import VendingError

log = logging.getLogger(__name__)

PUMP_EVERY = 1.0  # seconds between two rounds of the pump
CHUNK = 10  # registrations per job: a job is cheap to repeat, and few jobs stand in the queue
HOLD = 300.0  # seconds a claimed registration waits for its job before another takes it
# A registration whose backend could not serve it is tried again after RETRY_AFTER seconds,
# doubling with each retry, at most RETRY_CAP apart (utility.calls.backoff).
RETRY_AFTER, RETRY_CAP = 60.0, 3600.0
UNTHROTTLED_PER_SECOND = 50  # fulfilments a second when SMS_RATE_PER_SECOND is 0 (no limit)
BOOKED_AHEAD_MAX = 10.0  # seconds of bulk SMS booked ahead past which the pump waits a round
IN_FLIGHT_ROUNDS = 30  # claimed and not finished at most: this many rounds' worth
JOB_TIMEOUT = CHUNK * 60  # seconds: a slow vending server (XMLVend: 10 s, retried) for each


class WrongUtility(VendingError):
    """A kWh benefit for a water meter, or m3 for an electricity meter."""

    code = "wrong_utility"


def per_round(app: Flask) -> int:
    """Fulfilments the pump hands out per round: the bulk share of the SMS rate (each
    fulfilment is one bulk SMS, sms.outbox SMS_BULK_SHARE)."""
    sms = outbox.settings_of(app)
    per_second = sms.rate_per_second * sms.bulk_share if sms.rate_per_second > 0 else UNTHROTTLED_PER_SECOND
    return max(1, int(per_second * PUMP_EVERY))


def pump(app: Flask, now: float | None = None) -> int:
    """One round: claim what may be fulfilled now across every campaign and queue it on the
    bulk queue; how many were queued. Campaigns take turns at the head of the round, so
    one campaign's backlog does not starve another's."""
    from utility.services import services

    now = time.time() if now is None else now
    if outbox.bulk_booked_ahead(app) > BOOKED_AHEAD_MAX:
        return 0  # the bulk line is long already (a broadcast, a slow provider): let it drain
    campaigns = services(app).campaigns
    budget = per_round(app)
    in_flight = budget * IN_FLIGHT_ROUNDS
    known = campaigns.cached()
    if not known:
        return 0
    turn = int(now / PUMP_EVERY) % len(known)
    queue = worker.queue(app, worker.BULK_QUEUE_NAME)
    queued = 0
    for campaign in known[turn:] + known[:turn]:
        if queued >= budget:
            break
        references = campaigns.claim(campaign.code, budget - queued, in_flight, HOLD, now=now)
        for start in range(0, len(references), CHUNK):
            # Claimed before queued: if queueing fails, the claims fall due and come back.
            queue.enqueue(fulfil, campaign.code, references[start : start + CHUNK], job_timeout=JOB_TIMEOUT)
        queued += len(references)
    if queued:
        log.info("campaign pump: %d fulfilment(s) queued", queued)
    return queued


@dataclass(frozen=True)
class Credited:
    """A registration whose benefit is made (or refused for good): its SMS is to be queued,
    then the registration finished."""

    reference: str
    sms: outbox.NewSms
    reason: str = ""  # why it failed; "" when fulfilled


def fulfil(code: str, references: list[str]) -> dict[str, int]:
    """The job: fulfil these registrations of campaign ``code``; what came of them. The
    credits one by one, then their SMS together (one outbox batch, delivered by one job)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    outcomes: collections.Counter[str] = collections.Counter()
    credited: list[Credited] = []
    for reference in references:
        result = credit_one(app, code, reference)
        if isinstance(result, Credited):
            credited.append(result)
        else:
            outcomes[result] += 1
    outcomes.update(finish_credited(app, code, credited))
    return dict(outcomes)


def fulfil_one(app: Flask, code: str, reference: str) -> str:
    """Deliver one registration's benefit if it is still pending: "fulfilled", "failed",
    "retry" (a backend could not serve it now), or the state it was already in."""
    result = credit_one(app, code, reference)
    return finish_credited(app, code, [result])[0] if isinstance(result, Credited) else result


def credit_one(app: Flask, code: str, reference: str) -> Credited | str:
    """Make one registration's credit if it is still pending, and say which SMS tells of it
    (Credited); or what came of it otherwise: "retry" (a backend could not serve it now),
    "missing", or the state it was already in."""
    from utility.services import services

    svc = services(app)
    campaigns = svc.campaigns
    registration = campaigns.registration(code, reference)
    if registration is None:
        log.warning("campaign %s: no registration %s", code, reference)
        return "missing"
    if registration.state != "pending":
        campaigns.finish(code, reference)  # changes nothing but the claim
        return registration.state
    campaign = campaigns.lookup(code) or campaigns.get(code)
    if campaign is None:
        raise UnknownCampaign(code)
    key = f"campaign:{code}:{reference}"  # the idempotency key of everything below
    try:
        try:
            body = _deliver(app, campaign, registration, key)
        except (VendingError, BillingError) as exc:
            if exc.retryable:
                delay = campaigns.retry_later(code, reference, RETRY_AFTER, RETRY_CAP)
                log.warning("campaign %s %s: %s, again in %.0f s", code, reference, exc.code, delay)
                return "retry"
            failed = failed_sms(registration.lang, code, reference, registration.account, registration.meter,
                                customer_messages.settings_of(app).support)
            log.warning("campaign %s %s failed for %s: %s", code, reference,
                        mask_tail(registration.meter or registration.account), exc.code)
            return Credited(reference, outbox.NewSms(registration.phone, failed, f"{key}:failed", "campaign"),
                            reason=exc.code)
        return Credited(reference, outbox.NewSms(registration.phone, body, key, "campaign"))
    except Exception:
        # Anything else (a bug, Redis away): this registration comes back after HOLD; the
        # rest of the chunk goes on. If Redis is away this raises too, and the worker's
        # own retry runs the job again.
        log.exception("campaign %s %s: fulfilment failed unexpectedly, tried again later", code, reference)
        campaigns.retry_later(code, reference, RETRY_AFTER, RETRY_CAP)
        return "retry"


def finish_credited(app: Flask, code: str, credited: list[Credited]) -> list[str]:
    """Queue the SMS of these credited registrations in one batch, then finish each:
    "fulfilled" or "failed", in order ("retry" for those that must come back)."""
    from utility.services import services

    if not credited:
        return []
    campaigns = services(app).campaigns
    try:
        # The SMS before the states: a crash in between repeats the (idempotent) SMS only.
        outbox.send_bulk(app, [done.sms for done in credited])
    except Exception:
        # As for a credit (credit_one): they come back, and their credits and SMS are
        # idempotent. Redis away raises here too, and the worker runs the job again.
        log.exception("campaign %s: %d SMS could not be queued, tried again later", code, len(credited))
        for done in credited:
            campaigns.retry_later(code, done.reference, RETRY_AFTER, RETRY_CAP)
        return ["retry"] * len(credited)
    outcomes = []
    for done in credited:
        campaigns.finish(code, done.reference, reason=done.reason)
        outcomes.append("failed" if done.reason else "fulfilled")
    return outcomes


def _deliver(app: Flask, campaign: Campaign, registration: Registration, key: str) -> str:
    """Make the credit (idempotent by ``key``) and return the SMS that tells of it."""
    from utility.services import services

    svc = services(app)
    benefit = campaign.benefit
    if registration.meter:
        meter = registration.meter
        if benefit.units:
            info = svc.vending.confirm(meter)
            if info.utility != UTILITY_OF[benefit.kind]:
                raise WrongUtility(f"a {UNIT_OF[benefit.kind]} benefit for a {info.utility} meter")
            units = benefit.amount
        else:
            # What the money buys on this meter, decided once: a retry next month (other
            # tariff bands) must ask for the very same free issue.
            def quoted() -> Decimal:
                return svc.vending.quote(meter, int(benefit.amount)).units

            units = svc.campaigns.units_for(campaign.code, registration.reference, quoted)
        vend = svc.vending.free_issue(meter, units, key)
        return free_issue_receipt(registration.lang, registration.reference, vend, customer_messages.settings_of(app))
    payment = svc.billing.pay(registration.account, int(benefit.amount), key)
    return credit_sms(registration.lang, campaign.code, registration.reference, payment)
