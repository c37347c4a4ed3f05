"""Bulk SMS (campaigns, broadcasts): delivered from the bulk queue, within their share of the
provider's rate, never ahead of a receipt."""
from __future__ import annotations

import threading
import time

import pytest
from flask import Flask

from app import create_app
from sms import outbox
from sms.client import OutgoingSms, SendResult, SmsClient
from state import keys, worker
from state.store import get_redis

RATE = 10  # messages per second to the provider


class Provider(SmsClient):
    """A provider that takes everything, noting when (on the outbox's clock) and what."""

    name = "fake"

    def __init__(self, delay: float = 0.0) -> None:
        self.sent: list[tuple[float, str]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def try_send(self, sms: OutgoingSms) -> SendResult:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.sent.append((outbox.clock(), sms.body))
            return SendResult(self.name, f"fake-{len(self.sent)}", "Success")

    def bodies(self) -> list[str]:
        return [body for _at, body in self.sent]


def bulk_app(fake_redis, provider: Provider, **config: object) -> Flask:
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis, "SMS_RATE_PER_SECOND": RATE,
                      "SMS_SWEEP_EVERY": 0, **config})
    app.extensions[outbox.CLIENT_EXTENSION] = provider
    return app


def send(app: Flask, n: int, kind: str, prefix: str) -> list[str]:
    with app.app_context():
        return [outbox.send(None, f"+2376990{k % 100000:05d}", f"{prefix} {k}", f"{prefix}:{k}", kind)
                for k in range(n)]


def run(app: Flask, queue_name: str, max_jobs: int | None = None) -> None:
    worker.make_worker(app, queue_name=queue_name).work(burst=True, max_jobs=max_jobs)


def release(app: Flask, queue_name: str) -> None:
    """Move the jobs booked for later on ``queue_name`` to the queue, as rq's scheduler does when due."""
    queue = worker.queue(app, queue_name)
    for job_id in queue.scheduled_job_registry.get_job_ids():
        job = queue.fetch_job(job_id)
        queue.scheduled_job_registry.remove(job)
        queue.enqueue_job(job)


def fields(app: Flask, message_id: str) -> dict[str, str]:
    message = outbox.load(get_redis(app), message_id)
    assert message is not None
    return message.fields


def test_bulk_kinds_are_delivered_from_the_bulk_queue_and_the_others_from_the_receipts_queue(fake_redis):
    app = bulk_app(fake_redis, Provider())
    send(app, 2, "campaign", "Gratuit")
    send(app, 1, "broadcast", "Coupure")
    send(app, 1, "receipt", "Code")
    send(app, 1, "token_resend", "Resend")
    assert worker.queue(app, worker.BULK_QUEUE_NAME).count == 3
    assert worker.queue(app, worker.QUEUE_NAME).count == 2
    assert outbox.queue_of("campaign") == outbox.queue_of("broadcast") == worker.BULK_QUEUE_NAME
    assert outbox.queue_of("receipt") == outbox.queue_of("keyword_reply") == worker.QUEUE_NAME


def test_a_receipt_queued_after_5000_bulk_messages_goes_out_within_one_slot(fake_redis, fake_time):
    """The issue's promise: a customer's token never waits behind 200,000 campaign messages."""
    provider = Provider()
    app = bulk_app(fake_redis, provider)
    send(app, 5000, "campaign", "Gratuit")
    run(app, worker.BULK_QUEUE_NAME, max_jobs=30)  # the campaign is under way: 30 sent, 4,970 waiting
    assert len(provider.sent) == 30 and worker.queue(app, worker.BULK_QUEUE_NAME).count == 4970

    queued_at = fake_time.now
    (receipt,) = send(app, 1, "receipt", "Code")
    run(app, worker.QUEUE_NAME)  # the receipts worker: nothing of the campaign's is in its way
    if fields(app, receipt)["state"] != "sent":  # its slot is the next one: a bulk send just took this one
        wait = float(fields(app, receipt)["next_attempt_at"]) - queued_at
        assert wait <= 1 / RATE + 1e-6, f"the receipt waits {wait:.2f} s behind the campaign"
        fake_time.advance(wait)
        release(app, worker.QUEUE_NAME)
        run(app, worker.QUEUE_NAME)
    assert provider.bodies()[30] == "Code 0"  # before the 4,970 others
    sent_at = provider.sent[30][0]
    assert sent_at - queued_at <= 1 / RATE + 1e-6

    run(app, worker.BULK_QUEUE_NAME, max_jobs=20)  # and the campaign goes on after it
    assert provider.bodies()[31:] == [f"Gratuit {k}" for k in range(30, 50)]
    times = [at for at, _body in provider.sent]
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 1 / RATE - 1e-6  # the provider's rate


@pytest.mark.parametrize("share", [0.5, 0.2])
def test_bulk_sends_take_their_share_of_the_rate_and_no_more(fake_redis, fake_time, share):
    provider = Provider()
    app = bulk_app(fake_redis, provider, SMS_BULK_SHARE=share)
    send(app, 60, "campaign", "Gratuit")
    started = fake_time.now
    run(app, worker.BULK_QUEUE_NAME)
    assert len(provider.sent) == 60
    seconds = 10
    in_window = [at for at, _body in provider.sent if at < started + seconds]
    assert len(in_window) == pytest.approx(share * RATE * seconds, abs=1)  # 50 / 20, not the 100 of the rate
    span = provider.sent[-1][0] - provider.sent[0][0]
    assert 59 / span == pytest.approx(share * RATE, rel=0.01)


def test_bulk_messages_booked_far_ahead_keep_their_place_and_come_back_when_due(fake_redis, fake_time):
    """Several bulk workers, or a backlog, book the share beyond a nap: those jobs are
    booked for later with their slot kept, instead of all retrying at once."""
    provider = Provider()
    app = bulk_app(fake_redis, provider)
    ids = send(app, 10, "campaign", "Gratuit")
    with app.app_context():
        # Another bulk worker booked 3 s of the share meanwhile.
        for _ in range(15):
            outbox.reserve_slot(get_redis(app), "console", RATE * 0.5, fake_time.now, bulk=True)
        assert outbox.bulk_booked_ahead(app) == pytest.approx(3.0)
    run(app, worker.BULK_QUEUE_NAME)
    assert provider.sent == []
    booked = [float(fields(app, i)["next_attempt_at"]) - fake_time.now for i in ids]
    assert booked == pytest.approx([3.0 + 0.2 * k for k in range(10)])  # each its own slot, 1/share apart
    deferred = worker.queue(app, worker.BULK_QUEUE_NAME).scheduled_job_registry
    assert len(deferred) == 10 and all(  # booked on the bulk queue, their share's slot kept
        worker.queue(app, worker.BULK_QUEUE_NAME).fetch_job(job_id).args[1] is True
        for job_id in deferred.get_job_ids())


def test_bulk_never_books_a_provider_slot_ahead_of_a_receipt(fake_redis, fake_time):
    """Receipts book the provider however far ahead; a bulk message due meanwhile waits
    until the provider is free at that instant, keeping its place in the bulk share."""
    provider = Provider()
    app = bulk_app(fake_redis, provider)
    with app.app_context():
        r = get_redis(app)
        for _ in range(30):  # a burst of receipts: 3 s of the provider booked
            outbox.reserve_slot(r, "console", RATE, fake_time.now)
    (bulk,) = send(app, 1, "campaign", "Gratuit")
    run(app, worker.BULK_QUEUE_NAME)
    assert fields(app, bulk)["state"] == "queued" and provider.sent == []
    assert float(fields(app, bulk)["next_attempt_at"]) - fake_time.now == pytest.approx(3.0)
    with app.app_context():
        assert outbox.reserve_slot(get_redis(app), "console", RATE, fake_time.now) == pytest.approx(3.0)


def test_the_bulk_share_must_be_a_share():
    for share in (-0.5, 1.5):
        with pytest.raises(ValueError, match="SMS_BULK_SHARE"):
            outbox.Settings.from_config({"SMS_BULK_SHARE": share})
    assert outbox.Settings.from_config({}).bulk_share == 0.5
    assert outbox.Settings.from_config({"SMS_BULK_SHARE": 1}).bulk_share == 1.0


def test_the_sweep_requeues_a_lost_receipt_while_a_campaign_is_queued(fake_redis, fake_time):
    app = bulk_app(fake_redis, Provider())
    send(app, 50, "campaign", "Gratuit")
    (receipt,) = send(app, 1, "receipt", "Code")
    worker.queue(app, worker.QUEUE_NAME).empty()  # its job was lost (a crash between storing and queueing)
    fake_time.advance(outbox.settings_of(app).requeue_after + 1)
    result = outbox.sweep_stale(app)
    assert result.requeued == (receipt,)  # the campaign's backlog is no reason to leave it
    assert worker.queue(app, worker.QUEUE_NAME).job_ids and worker.queue(app, worker.BULK_QUEUE_NAME).count == 50


@pytest.mark.parametrize(("bulk_workers", "share"), [(1, 0.5), (3, 1.0)])
def test_both_workers_in_process_a_receipt_goes_out_at_once_while_a_campaign_drains(fake_redis, bulk_workers, share):
    """The real thing, real clock: start_in_thread runs a receipts worker and bulk workers;
    a campaign of 200 is under way when a receipt is queued. (Three bulk workers at the
    whole rate: several bulk sends in flight at once, none booked ahead of the receipt.)"""
    provider = Provider(delay=0.01)
    app = bulk_app(fake_redis, provider, SMS_BULK_SHARE=share, BULK_WORKERS=bulk_workers)
    send(app, 200, "campaign", "Gratuit")
    background = worker.start_in_thread(app)
    try:
        assert sum(name.startswith("bulk-worker") for name in background.loops) == bulk_workers
        deadline = time.monotonic() + 10
        while len(provider.sent) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        queued_at, before = time.time(), len(provider.sent)
        (receipt,) = send(app, 1, "receipt", "Code")
        while "Code 0" not in provider.bodies():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        waited = next(at for at, body in provider.sent if body == "Code 0") - queued_at
        time.sleep(1.0)
        sent = list(provider.sent)
    finally:
        background.stop()
    assert waited < 0.5, f"the receipt took {waited:.2f} s"
    assert sent.index(next(one for one in sent if one[1] == "Code 0")) <= before + 2  # not after the 200
    bulk = [at for at, body in sent if body != "Code 0"]
    assert len(bulk) <= share * RATE * (bulk[-1] - bulk[0]) + 2  # the campaign at its share, far from done
    times = [at for at, _body in sent]
    busiest = max(sum(start <= at < start + 1 for at in times) for start in times)
    assert busiest <= RATE + 1  # and the provider's rate, in any second
    assert fields(app, receipt)["state"] == "sent"


def test_the_bulk_rate_window_is_tagged_like_the_provider_window():
    assert keys.sms_bulk_rate("p").split("}")[0] == keys.sms_rate("p").split("}")[0]
    assert keys.sms_bulk_rate("p") != keys.sms_rate("p")
