"""Bulk SMS in batches: a producer's chunk (a broadcast's phones, a campaign's fulfilments) is
queued by outbox.send_bulk and goes out from one deliver_bulk job, with every guarantee of a
message sent alone: one message per reference, never sent twice, the bulk share, and a
receipt never waiting more than a slot behind it."""
from __future__ import annotations

import pytest
from flask import Flask

from sms import outbox
from sms.client import OutgoingSms, SendResult
from state import keys, worker
from state.store import get_redis
from tests.sms.fixtures import Clock
from tests.sms.test_bulk import RATE, Provider, bulk_app, fields, release, run

BULK = worker.BULK_QUEUE_NAME


class Killed(BaseException):
    """The worker dies (SIGKILL): nothing after this runs, not even rq's failure handling."""


class DiesMidSend(Provider):
    """A provider that takes the ``fatal``-th message, and its worker dies before hearing back."""

    def __init__(self, fatal: int) -> None:
        super().__init__()
        self.fatal = fatal

    def try_send(self, sms: OutgoingSms) -> SendResult:
        result = super().try_send(sms)
        if len(self.sent) == self.fatal:
            self.fatal = 0  # one death
            raise Killed()
        return result


def notices(n: int, prefix: str = "Coupure") -> list[outbox.NewSms]:
    return [outbox.NewSms(f"+2376990{k:05d}", f"{prefix} {k}", f"incident:1:created:{k}", "broadcast")
            for k in range(n)]


def send_bulk(app: Flask, messages: list[outbox.NewSms]) -> list[str]:
    with app.app_context():
        return outbox.send_bulk(None, messages)


def the_batch_job(app: Flask):
    """The one job a send_bulk queued, taken off the queue (to run by hand, as a worker would)."""
    queue = worker.queue(app, BULK)
    [job] = queue.jobs
    queue.remove(job)
    return job


def test_a_chunk_of_30_notices_is_one_job_that_sends_each_at_the_bulk_share(redis_client, fake_time):
    provider = Provider()
    app = bulk_app(redis_client, provider)
    ids = send_bulk(app, notices(30))

    bulk = worker.queue(app, BULK)
    assert bulk.count == 1 and worker.queue(app, worker.QUEUE_NAME).count == 0
    assert bulk.jobs[0].func_name == "sms.outbox.deliver_bulk" and bulk.jobs[0].args[0] == ids
    run(app, BULK, max_jobs=1)  # that one job, nothing else
    assert provider.bodies() == [f"Coupure {k}" for k in range(30)]
    assert [fields(app, i)["state"] for i in ids] == ["sent"] * 30
    assert bulk.count == 0 and len(bulk.scheduled_job_registry) == 0
    times = [at for at, _body in provider.sent]
    assert 29 / (times[-1] - times[0]) == pytest.approx(0.5 * RATE, rel=0.01)  # the bulk share, not the rate


def test_a_batch_is_queued_once_per_reference(redis_client, fake_time):
    provider = Provider()
    app = bulk_app(redis_client, provider)
    with app.app_context():  # one of them was texted alone earlier
        earlier = outbox.send(None, "+237699000003", "Coupure 3", "incident:1:created:3", "broadcast")
    worker.queue(app, BULK).empty()
    ids = send_bulk(app, notices(5))
    again = send_bulk(app, notices(5))  # the producer's chunk run twice

    assert ids == again and ids[3] == earlier and len(set(ids)) == 5
    [job] = worker.queue(app, BULK).jobs  # the second call queued nothing
    assert job.args[0] == [ids[k] for k in (0, 1, 2, 4)]
    assert len(list(get_redis(app).scan_iter(match=keys.sms_message("*")))) == 5  # the losers' copies deleted


def test_a_batch_that_outlasts_its_time_goes_back_to_the_queue_as_one_job(redis_client, fake_time):
    provider = Provider()
    app = bulk_app(redis_client, provider)
    ids = send_bulk(app, notices(80))  # 16 s at the bulk share: more than one run's time
    run(app, BULK, max_jobs=1)
    sent_first = len(provider.sent)
    assert 0 < sent_first < 80
    [rest] = worker.queue(app, BULK).jobs
    assert rest.func_name == "sms.outbox.deliver_bulk" and rest.args[0] == ids[sent_first:]
    run(app, BULK, max_jobs=1)
    assert provider.bodies() == [f"Coupure {k}" for k in range(80)]


def test_a_batch_whose_turn_is_far_ahead_waits_as_one_job_its_place_kept(redis_client, fake_time: Clock):
    """Another bulk worker booked 3 s of the share: the batch is booked for then, as one job,
    the first notice's slot kept, and goes out when released."""
    provider = Provider()
    app = bulk_app(redis_client, provider)
    ids = send_bulk(app, notices(10))
    with app.app_context():
        for _ in range(15):
            outbox.reserve_slot(get_redis(app), "console", RATE * 0.5, fake_time.now, bulk=True)
    run(app, BULK)
    assert provider.sent == []
    queue = worker.queue(app, BULK)
    [booked] = [queue.fetch_job(job_id) for job_id in queue.scheduled_job_registry.get_job_ids()]
    assert booked.func_name == "sms.outbox.deliver_bulk" and booked.args == (ids, True)
    waits = [float(fields(app, i)["next_attempt_at"]) - fake_time.now for i in ids]
    assert waits == pytest.approx([3.0] * 10)  # none of them a lost message for the sweep meanwhile

    fake_time.advance(3.0)
    release(app, BULK)
    run(app, BULK)
    assert provider.bodies() == [f"Coupure {k}" for k in range(10)]
    assert provider.sent[0][0] == pytest.approx(fake_time.now - 9 * 0.2)  # its kept slot, then the share's pace


def test_a_batch_killed_mid_send_then_run_again_sends_each_message_once(redis_client, fake_time: Clock):
    """The worker dies while the 5th notice is at the provider. rq's job is reclaimed and run
    again (twice, say): the other 19 are sent, the 5th never again; the sweep marks it
    unconfirmed and the outbox never resends it."""
    provider = DiesMidSend(fatal=5)
    app = bulk_app(redis_client, provider)
    ids = send_bulk(app, notices(20))
    job = the_batch_job(app)
    with app.app_context():
        with pytest.raises(Killed):
            job.perform()
        assert fields(app, ids[4])["state"] == "sending"
        job.perform()  # reclaimed from the dead worker: the same job again
        job.perform()  # and once more, for nothing
        assert provider.bodies() == [f"Coupure {k}" for k in range(20)]  # each once, the 5th included

        fake_time.advance(outbox.settings_of(app).claim_timeout + 1)
        swept = outbox.sweep_stale(app)
    assert swept.unconfirmed == (ids[4],) and swept.requeued == ()
    run(app, BULK)
    assert len(provider.sent) == 20
    assert [fields(app, i)["state"] for i in ids] == ["sent"] * 4 + ["unconfirmed"] + ["sent"] * 15


def test_a_batch_rerun_takes_back_a_claim_it_never_confirmed(redis_client, fake_time):
    """Its claim of the first notice reached Redis but the answer was lost (a timeout), so the
    run failed before calling the provider: the rerun sends it, once."""
    provider = Provider()
    app = bulk_app(redis_client, provider)
    ids = send_bulk(app, notices(3))
    job = the_batch_job(app)
    with app.app_context():
        get_redis(app).hset(keys.sms_message(ids[0]),
                            mapping={"state": "sending", "claim": job.id, "claimed_at": "1", "attempts": 1})
        job.perform()
    assert provider.bodies() == ["Coupure 0", "Coupure 1", "Coupure 2"]


def test_a_receipt_queued_during_a_bulk_batch_waits_at_most_one_slot(redis_client, fake_time: Clock):
    """Bulk takes the whole rate here (share 1), so every provider slot is contended. A customer
    pays while the 10th notice of the batch is at the provider, and the receipts worker takes
    the receipt at once: it goes out in the very next slot, and the batch after it."""
    receipts: list[tuple[float, str]] = []

    class PaysMidBatch(Provider):
        def try_send(self, sms: OutgoingSms) -> SendResult:
            result = super().try_send(sms)
            if sms.body == "Coupure 9":
                queued_at = outbox.clock()
                receipt = outbox.send(None, "+237699111111", "Code 0", "order:PAY1:receipt", "receipt")
                receipts.append((queued_at, receipt))
                assert outbox.deliver(receipt) == "sent"  # the receipts worker, meanwhile
            return result

    provider = PaysMidBatch()
    app = bulk_app(redis_client, provider, SMS_BULK_SHARE=1)
    send_bulk(app, notices(20))
    run(app, BULK, max_jobs=1)

    [(queued_at, _receipt)] = receipts
    bodies = provider.bodies()
    assert bodies.index("Code 0") == 10  # right after the notice at the provider, before the 10 left
    sent_at = provider.sent[10][0]
    assert sent_at - queued_at <= 1 / RATE + 1e-6, f"the receipt waited {sent_at - queued_at:.2f} s"
    assert len(bodies) == 21
    times = [at for at, _body in provider.sent]
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 1 / RATE - 1e-6  # the provider's rate


def test_only_bulk_kinds_go_in_a_batch(redis_client):
    app = bulk_app(redis_client, Provider())
    with pytest.raises(ValueError, match="bulk kind"):
        send_bulk(app, [outbox.NewSms("+237699000001", "Code 1", "order:A:receipt", "receipt")])
    with pytest.raises(ValueError, match="E.164"):
        send_bulk(app, [outbox.NewSms("699000001", "Coupure", "incident:1:created:x", "broadcast")])
    assert send_bulk(app, []) == [] and worker.queue(app, BULK).count == 0
