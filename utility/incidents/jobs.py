"""Broadcasts: an incident's SMS to everyone concerned, once each, at the provider's pace,
whatever crashes on the way (the states are in utility.incidents.service).

    pump (periodic, one process a round)  for each broadcast under way: chooses its recipients
        (a few SSCANs a round, until all are chosen), hands out at most the bulk share of the
        SMS rate per second (SMS_BULK_SHARE) in small chunks to jobs on the bulk queue
        (state.worker.BULK_QUEUE_NAME: a customer's receipt never waits behind 100,000
        notices), and counts what the outbox has sent or given up. It holds back while the
        bulk line is long already (a campaign's fulfilment, a slow provider): 100,000
        recipients are 100,000 entries of a Redis list, never 100,000 jobs at once.
    send_chunk(incident, event, phones)  the job: reads each phone's profile once (notices,
        language, regions), then texts it through the outbox in its language, or leaves it
        out (opted out, or no longer in the incident's regions), and finishes the chunk. The
        chunk's SMS are queued together (outbox.send_bulk) and go out from one outbox job.

Nothing twice: the outbox sends one message per reference, ``incident:<id>:<event>:<phone>``,
and a phone is counted when its claim is released, once. A job killed half way leaves its
phones claimed; HOLD seconds later the pump hands them out again and the next job repeats
nothing (the outbox answers the message already queued).
"""
from __future__ import annotations

import collections
import json
import logging
import time

from flask import Flask, current_app

from sms import outbox
from state import journal, worker
from utility.incidents.service import MOVED, OPTED_OUT, SUPERSEDED

log = logging.getLogger(__name__)

PUMP_EVERY = 1.0  # seconds between two rounds of the pump
CHUNK = 50  # phones per job: one profile read for all, one outbox batch (two rounds, one delivery job)
HOLD = 300.0  # seconds a claimed phone waits for its job before another takes it
UNTHROTTLED_PER_SECOND = 500  # phones a second when SMS_RATE_PER_SECOND is 0 (no limit)
BOOKED_AHEAD_MAX = 10.0  # seconds of bulk SMS booked ahead past which the pump hands out nothing
IN_FLIGHT_ROUNDS = 30  # claimed and not finished at most: this many rounds' worth
SELECT_PER_ROUND = 20_000  # phones chosen per round: 100,000 recipients are all chosen in seconds
SETTLE_ROUNDS = 20  # messages looked at per round to count them: this many rounds' worth
JOB_TIMEOUT = 600  # seconds: a chunk is a few round trips


def per_round(app: Flask) -> int:
    """Phones the pump hands out per round: the bulk share of the SMS rate (each is one bulk
    SMS, sms.outbox SMS_BULK_SHARE)."""
    sms = outbox.settings_of(app)
    per_second = sms.rate_per_second * sms.bulk_share if sms.rate_per_second > 0 else UNTHROTTLED_PER_SECOND
    return max(1, int(per_second * PUMP_EVERY))


def reference(incident_id: str, event: str, phone: str) -> str:
    """The outbox reference of one phone's SMS of one event: one message, ever."""
    return f"incident:{incident_id}:{event}:{phone}"


def pump(app: Flask, now: float | None = None) -> int:
    """One round over every broadcast under way: choose, hand out, count. How many phones were
    handed out. Broadcasts take turns at the head of the round, so an old one's backlog does
    not starve a new one."""
    from utility.services import services

    now = time.time() if now is None else now
    incidents = services(app).incidents
    under_way = incidents.under_way(now)
    if not under_way:
        return 0
    budget = per_round(app)
    held = outbox.bulk_booked_ahead(app) > BOOKED_AHEAD_MAX  # the bulk line is long already: let it drain
    turn = int(now / PUMP_EVERY) % len(under_way)
    queue = worker.queue(app, worker.BULK_QUEUE_NAME)
    queued = 0
    for incident_id, event in under_way[turn:] + under_way[:turn]:
        incidents.select(incident_id, event, SELECT_PER_ROUND)
        if not held and queued < budget:
            phones = incidents.claim(incident_id, event, budget - queued, budget * IN_FLIGHT_ROUNDS, HOLD, now=now)
            for start in range(0, len(phones), CHUNK):
                # Claimed before queued: if queueing fails, the claims fall due and come back.
                queue.enqueue(send_chunk, incident_id, event, phones[start : start + CHUNK], job_timeout=JOB_TIMEOUT)
            queued += len(phones)
        incidents.settle(incident_id, event, max(1_000, budget * SETTLE_ROUNDS), now=now)
    if queued:
        log.info("incident pump: %d phone(s) handed out", queued)
    return queued


def send_chunk(incident_id: str, event: str, phones: list[str]) -> dict[str, int]:
    """The job: text these phones the event's SMS; what came of them."""
    from utility.services import services

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    incidents = services(app).incidents
    record = incidents.broadcast_record(incident_id, event)
    if not record:
        log.warning("incident %s: no broadcast %s", incident_id, event)
        return {}
    outcomes: list[tuple[str, str]] = []
    if record.get("state") == "superseded":
        # Claimed before a newer event came: they get that one instead.
        outcomes = [(phone, SUPERSEDED) for phone in phones]
        incidents.finish(incident_id, event, outcomes)
    else:
        regions = {key for _kind, key in json.loads(record["sources"])}
        bodies = {name.removeprefix("body:"): body for name, body in record.items() if name.startswith("body:")}
        try:
            texted: list[outbox.NewSms] = []
            for phone, verdict in incidents.classify(phones, regions):
                if verdict in (OPTED_OUT, MOVED):
                    outcomes.append((phone, verdict))
                    continue
                body = bodies.get(verdict) or bodies[incidents.language(None)]
                texted.append(outbox.NewSms(phone, body, reference(incident_id, event, phone), "broadcast"))
            # The chunk's SMS queued together, delivered by one outbox job.
            message_ids = outbox.send_bulk(app, texted)
            outcomes.extend((sms.to, message_id) for sms, message_id in zip(texted, message_ids, strict=True))
        finally:
            # What was done is counted even if the rest failed (Redis away, a bug): those
            # phones stay claimed and come back after HOLD, to a job that repeats nothing.
            incidents.finish(incident_id, event, outcomes)
    counts = collections.Counter("queued" if not outcome.startswith("-") else outcome[1:] for _, outcome in outcomes)
    journal.append(incidents.redis, "incident.broadcast_chunk", incident=incident_id, event=event,
                   **{name: counts.get(name, 0) for name in ("queued", "optout", "moved", "superseded")})
    return dict(counts)
