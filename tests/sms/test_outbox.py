"""The outbox: stored, queued on rq, sent once through the real SDK, at most once on doubt."""
from __future__ import annotations

import pytest
import redis

from sms import outbox
from sms.client import SmsError
from sms.providers import ConfigError
from state import journal, keys, worker
from state.store import get_redis
from tests.sms.fixtures import (
    africastalking_config,
    run_jobs,
    run_scheduled,
    scheduled,
    sms_app_for,
)

PHONE = "+237699000001"


@pytest.fixture
def redis_client(any_redis: redis.Redis) -> redis.Redis:
    """Every outbox test runs on fakeredis and, with REDIS_URL, on a real server."""
    return any_redis


def events(app, message_id: str) -> list[str]:
    return [e["kind"] for e in journal.read(get_redis(app), 1000) if e.get("message") == message_id]


def state(app, message_id: str) -> outbox.Message:
    message = outbox.load(get_redis(app), message_id)
    assert message is not None
    return message


def queue_one(app, reference: str = "order:A:token", body: str = "Code: 1234") -> str:
    with app.app_context():
        return outbox.send(None, PHONE, body, reference, "receipt")


class WorkerDied(BaseException):
    """A worker killed mid-job (SIGKILL, OOM): nothing after it runs, no handler sees it."""


# -- the happy path -----------------------------------------------------------------------------
def test_queued_then_sent_once_by_the_worker(sms_app, africastalking_standin, clock):
    message_id = queue_one(sms_app)
    queued = state(sms_app, message_id)
    assert (queued.state, queued.to, queued.kind, queued.reference, queued.segments) == (
        "queued", PHONE, "receipt", "order:A:token", 1
    )
    run_jobs(sms_app)

    (received,) = africastalking_standin.received
    assert received.message == "Code: 1234"
    sent = state(sms_app, message_id)
    assert (sent.state, sent.attempts, sent.provider, sent.provider_id, sent.cost) == (
        "sent", 1, "africastalking", received.message_id, "XAF 20.0000"
    )
    r = get_redis(sms_app)
    assert r.get(keys.sms_provider_id("africastalking", received.message_id)) == message_id
    assert events(sms_app, message_id) == ["sms.queued", "sms.sending", "sms.sent"]

    # A duplicate job (a re-delivered rq job, an operator's retry) does nothing.
    worker.queue(sms_app).enqueue(outbox.deliver, message_id)
    run_jobs(sms_app)
    assert len(africastalking_standin.received) == 1


def test_same_reference_is_one_message(sms_app, africastalking_standin):
    first = queue_one(sms_app, "order:A:token", "Code: 1234")
    second = queue_one(sms_app, "order:A:token", "Code: 1234 (again)")
    assert first == second
    assert queue_one(sms_app, "order:B:token") != first
    run_jobs(sms_app)
    assert [m.message for m in africastalking_standin.received] == ["Code: 1234", "Code: 1234"]
    assert outbox.find(get_redis(sms_app), "order:A:token").id == first


def test_send_refuses_what_cannot_be_sent(sms_app):
    with sms_app.app_context():
        with pytest.raises(ValueError, match="E.164"):
            outbox.send(None, "699000001", "x", "r1", "receipt")
        with pytest.raises(ValueError, match="empty"):
            outbox.send(None, PHONE, "", "r2", "receipt")
        with pytest.raises(ValueError, match="reference"):
            outbox.send(None, PHONE, "x", "", "receipt")
    assert not any(worker.queue(sms_app, name).count for name in worker.QUEUES)


def test_two_workers_racing_for_one_message_send_it_once(sms_app, africastalking_standin, monkeypatch):
    message_id = queue_one(sms_app)
    real_load = outbox.load
    raced = []

    def load_then_lose_the_race(client, mid):
        snapshot = real_load(client, mid)  # this worker sees "queued"...
        if not raced:
            raced.append(True)
            assert outbox.deliver(mid) == "sent"  # ...and another worker claims and sends it now
        return snapshot

    monkeypatch.setattr(outbox, "load", load_then_lose_the_race)
    with sms_app.app_context():
        assert outbox.deliver(message_id) == "claimed elsewhere"
    assert len(africastalking_standin.received) == 1
    assert state(sms_app, message_id).attempts == 1


# -- retries ------------------------------------------------------------------------------------------
def test_retryable_error_then_success(sms_app, africastalking_standin, clock):
    africastalking_standin.answer_status(502)
    message_id = queue_one(sms_app)
    run_jobs(sms_app)

    waiting = state(sms_app, message_id)
    assert (waiting.state, waiting.attempts) == ("queued", 1)
    assert "502" in waiting.error
    assert float(waiting.fields["next_attempt_at"]) == pytest.approx(clock.now + outbox.RETRY_FIRST)
    (retry,) = scheduled(sms_app)
    assert retry.func_name == "sms.outbox.deliver" and retry.args == (message_id,)

    africastalking_standin.answer_status(101)
    assert run_scheduled(sms_app) == 1
    sent = state(sms_app, message_id)
    assert (sent.state, sent.attempts, sent.error) == ("sent", 2, "")
    assert len(africastalking_standin.accepted) == 1
    assert events(sms_app, message_id) == [
        "sms.queued", "sms.sending", "sms.retry", "sms.sending", "sms.sent"
    ]


def test_gives_up_after_eight_attempts(sms_app, africastalking_standin, clock):
    africastalking_standin.answer_status(500)
    message_id = queue_one(sms_app)
    run_jobs(sms_app)
    delays = []
    while scheduled(sms_app):
        before = clock.now
        delays.append(float(state(sms_app, message_id).fields["next_attempt_at"]) - before)
        clock.advance(delays[-1])
        run_scheduled(sms_app)
    failed = state(sms_app, message_id)
    assert (failed.state, failed.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert failed.error.startswith("gave up after 8 attempts")
    assert delays == [10, 20, 40, 80, 160, 320, 640]  # utility.calls.backoff (its jitter pinned in tests)
    assert len(africastalking_standin.received) == 8


def test_final_refusal_is_failed_and_never_retried(sms_app, africastalking_standin):
    africastalking_standin.answer_status(406)  # UserInBlacklist
    message_id = queue_one(sms_app)
    run_jobs(sms_app)
    failed = state(sms_app, message_id)
    assert (failed.state, failed.attempts) == ("failed", 1)
    assert "406" in failed.error
    assert not scheduled(sms_app)
    worker.queue(sms_app).enqueue(outbox.deliver, message_id)
    run_jobs(sms_app)
    assert len(africastalking_standin.received) == 1
    assert events(sms_app, message_id)[-1] == "sms.failed"


def test_a_lost_answer_is_unconfirmed_and_not_resent(redis_client, africastalking_standin):
    app = sms_app_for(redis_client, **{**africastalking_config(africastalking_standin), "SMS_TIMEOUT": 0.2},
                      SMS_RATE_PER_SECOND=0)
    africastalking_standin.then("hold")
    message_id = queue_one(app)
    run_jobs(app)
    assert state(app, message_id).state == "unconfirmed"
    assert not scheduled(app)
    worker.queue(app).enqueue(outbox.deliver, message_id)
    run_jobs(app)
    assert len(africastalking_standin.received) == 1


def test_a_configuration_error_leaves_the_message_queued(redis_client):
    app = sms_app_for(redis_client, SMS_PROVIDER="africastalking", SMS_RATE_PER_SECOND=0)  # no credentials
    message_id = queue_one(app)
    with app.app_context(), pytest.raises(ConfigError):
        outbox.deliver(message_id)
    assert state(app, message_id).state == "queued"


# -- the send rate -------------------------------------------------------------------------------------
def test_over_the_rate_is_deferred_not_dropped(redis_client, africastalking_standin, clock):
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=2)
    ids = [queue_one(app, f"order:{n}:token", f"Code {n}") for n in range(3)]
    run_jobs(app)

    assert [m.message for m in africastalking_standin.received] == ["Code 0"]
    assert [state(app, i).state for i in ids] == ["sent", "queued", "queued"]
    waits = [float(state(app, i).fields["next_attempt_at"]) - clock.now for i in ids[1:]]
    assert waits == pytest.approx([0.5, 1.0])  # each keeps its own slot, 1/rate apart
    assert sorted(job.args for job in scheduled(app)) == sorted((i, True) for i in ids[1:])
    assert all(e not in events(app, i) for i in ids for e in ("sms.failed", "sms.sending") if i != ids[0])

    clock.advance(1.0)
    run_scheduled(app)
    assert sorted(m.message for m in africastalking_standin.received) == ["Code 0", "Code 1", "Code 2"]
    assert [state(app, i).state for i in ids] == ["sent", "sent", "sent"]


def test_the_rate_is_shared_by_every_worker_and_recovers(redis_client, clock):
    r = redis_client
    assert outbox.reserve_slot(r, "p", 10, clock.now) == 0
    assert outbox.reserve_slot(r, "p", 10, clock.now) == pytest.approx(0.1)
    assert outbox.reserve_slot(r, "other", 10, clock.now) == 0  # per provider
    clock.advance(5)
    assert outbox.reserve_slot(r, "p", 10, clock.now) == 0  # an idle provider has its full rate
    assert outbox.reserve_slot(r, "p", 0, clock.now) == 0  # 0: no limit
    assert 0 < r.pttl(keys.sms_rate("p")) <= 1100  # the window does not outlive its use


# -- at most once: stale claims --------------------------------------------------------------------------
def _die_during_send(monkeypatch, app, after_provider: bool) -> None:
    """Make the next send kill the worker, after or before the provider got the message."""
    with app.app_context():
        client = outbox.get_client(app)
    real = client.send

    def send(sms):
        if after_provider:
            real(sms)
        raise WorkerDied()

    monkeypatch.setattr(client, "send", send)


@pytest.mark.parametrize("after_provider", [True, False], ids=["died-after-accept", "died-before"])
def test_a_dead_worker_leaves_an_unconfirmed_message_never_sent_twice(
    sms_app, africastalking_standin, clock, monkeypatch, after_provider
):
    message_id = queue_one(sms_app)
    with monkeypatch.context() as dying:  # the next worker is healthy
        _die_during_send(dying, sms_app, after_provider)
        with sms_app.app_context(), pytest.raises(WorkerDied):
            outbox.deliver(message_id)
    assert state(sms_app, message_id).state == "sending"
    assert len(africastalking_standin.received) == (1 if after_provider else 0)

    timeout = outbox.Settings.from_config(sms_app.config).claim_timeout
    clock.advance(timeout - 1)
    assert outbox.sweep_stale(sms_app) == outbox.SweepResult()  # a young claim may still be working
    clock.advance(2)
    assert outbox.sweep_stale(sms_app).unconfirmed == (message_id,)
    assert outbox.sweep_stale(sms_app) == outbox.SweepResult()

    unconfirmed = state(sms_app, message_id)
    assert unconfirmed.state == "unconfirmed" and unconfirmed.attempts == 1
    assert events(sms_app, message_id)[-1] == "sms.unconfirmed"

    # Whatever runs next (a duplicate job, the sweep again) never sends it.
    worker.queue(sms_app).enqueue(outbox.deliver, message_id)
    run_jobs(sms_app)
    run_scheduled(sms_app, include_sweeps=True)
    assert len(africastalking_standin.received) == (1 if after_provider else 0)
    assert state(sms_app, message_id).state == "unconfirmed"


def test_a_slow_worker_that_finishes_after_the_sweep_records_the_truth(
    sms_app, africastalking_standin, clock, monkeypatch
):
    message_id = queue_one(sms_app)
    with sms_app.app_context():
        client = outbox.get_client(sms_app)
    real = client.send

    def slow(sms):
        clock.advance(3600)
        assert outbox.sweep_stale(sms_app).unconfirmed == (message_id,)
        return real(sms)

    monkeypatch.setattr(client, "send", slow)
    run_jobs(sms_app)
    assert state(sms_app, message_id).state == "sent"
    assert events(sms_app, message_id)[-2:] == ["sms.unconfirmed", "sms.sent"]
    assert len(africastalking_standin.received) == 1


def test_a_queued_message_whose_job_was_lost_is_requeued(sms_app, africastalking_standin, clock):
    message_id = queue_one(sms_app)
    for name in worker.QUEUES:
        worker.queue(sms_app, name).empty()  # the process died between storing and queueing
    clock.advance(60)
    assert outbox.sweep_stale(sms_app) == outbox.SweepResult()  # not late enough yet
    clock.advance(outbox.Settings.from_config(sms_app.config).requeue_after)
    assert outbox.sweep_stale(sms_app).requeued == (message_id,)
    assert outbox.sweep_stale(sms_app) == outbox.SweepResult()  # its new job is waiting
    run_jobs(sms_app)
    assert state(sms_app, message_id).state == "sent"
    assert len(africastalking_standin.received) == 1
    assert "sms.requeued" in events(sms_app, message_id)


def test_a_copy_left_by_a_sender_that_lost_the_race_and_crashed_is_deleted_not_sent(
    sms_app, africastalking_standin, clock, monkeypatch
) -> None:
    message_id = queue_one(sms_app)
    r = get_redis(sms_app)
    # Another send() of the same reference wrote its own message, lost the reference to the
    # first, and died before deleting its copy (send writes the two as separate keys).
    with monkeypatch.context() as dying:
        # The delete never happens (send deletes the loser's copy in its second round, a pipeline).
        dying.setattr(type(r.pipeline(transaction=False)), "delete", lambda self, *names: self)
        assert queue_one(sms_app) == message_id  # the same reference: the first message's id back
    copies = [key for key in r.scan_iter(match=keys.sms_message("*")) if key != keys.sms_message(message_id)]
    assert len(copies) == 1  # the dead sender's copy
    for name in worker.QUEUES:
        worker.queue(sms_app, name).empty()
    clock.advance(outbox.Settings.from_config(sms_app.config).requeue_after + 60)
    assert outbox.sweep_stale(sms_app).requeued == (message_id,)  # the message its reference names
    assert not r.exists(copies[0])  # the copy: deleted, never sent
    run_jobs(sms_app)
    assert len(africastalking_standin.received) == 1


def test_a_message_waiting_for_its_retry_is_not_requeued(sms_app, africastalking_standin, clock):
    africastalking_standin.answer_status(500)
    queue_one(sms_app)
    run_jobs(sms_app)
    clock.advance(outbox.RETRY_FIRST + 1)  # due, but its job is booked: nothing lost
    assert outbox.sweep_stale(sms_app) == outbox.SweepResult()


def test_deliveries_keep_a_periodic_sweep_booked(sms_app, africastalking_standin, clock):
    message_id = queue_one(sms_app)
    run_jobs(sms_app)
    (sweep,) = scheduled(sms_app, include_sweeps=True)
    assert sweep.func_name == "sms.outbox.sweep_job"
    period = sweep.args[0]
    assert period * 60 > clock.now

    # A second delivery books the same sweep, not another one.
    queue_one(sms_app, "order:B:token")
    run_jobs(sms_app)
    assert [j.id for j in scheduled(sms_app, include_sweeps=True)] == [sweep.id]

    # A sweep books the next one.
    clock.advance(60)
    run_scheduled(sms_app, include_sweeps=True)
    (following,) = scheduled(sms_app, include_sweeps=True)
    assert following.args == (period + 1,)
    assert state(sms_app, message_id).state == "sent"


def test_no_periodic_sweep_when_disabled(redis_client, africastalking_standin):
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0,
                      SMS_SWEEP_EVERY=0)
    queue_one(app)
    run_jobs(app)
    assert not scheduled(app, include_sweeps=True)


def test_sms_error_outcomes():
    assert SmsError("x", retryable=True).outcome == "retryable"
    assert SmsError("x", retryable=True, maybe_sent=True).retryable is False
    assert SmsError("x", retryable=False).outcome == "final"


def test_the_cli_sweep(sms_app, clock):
    message_id = queue_one(sms_app)
    get_redis(sms_app).hset(keys.sms_message(message_id), mapping={"state": "sending", "claimed_at": "0"})
    result = sms_app.test_cli_runner().invoke(args=["sms", "sweep"])
    assert result.exit_code == 0, result.output
    assert f"unconfirmed {message_id}" in result.output


def test_the_in_process_worker_and_scheduler_drain_deferred_messages(redis_client, africastalking_standin):
    # The real thing end to end: rq's scheduler thread runs the deferred jobs when due.
    import time

    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=4)
    ids = [queue_one(app, f"order:{n}:token", f"Code {n}") for n in range(3)]
    background = worker.start_in_thread(app)
    try:
        deadline = time.monotonic() + 20
        while len(africastalking_standin.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        background.stop()
    assert sorted(m.message for m in africastalking_standin.received) == ["Code 0", "Code 1", "Code 2"]
    assert [state(app, i).state for i in ids] == ["sent"] * 3


def test_a_flood_of_resends_never_stands_between_a_customer_and_a_paid_token(redis_client, africastalking_standin):
    """The probe: 200 resends in 1.3 s booked 20 s of the 10/s provider rate, and an
    unrelated customer's token took 18.7 s instead of 3.2 s. (The real clock: the rate's
    window lives in Redis with a real TTL.)"""
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=10)
    with app.app_context():
        flood = [outbox.send(None, PHONE, f"Resend {n}", f"resend:{n}", "token_resend") for n in range(200)]
        run_jobs(app)
        token = outbox.send(None, "+237699000002", "Code 5555", "order:B:receipt", "receipt")
        run_jobs(app)
    now = outbox.clock()
    # The resends wait in a line of their own (each wakes when its turn is due): they hold
    # no slot of the provider's ahead of the token, never 20 s of them.
    provider_ahead = float(get_redis(app).get(keys.sms_rate("africastalking")) or 0) - now
    assert provider_ahead <= 0.2
    line_ahead = float(get_redis(app).get(keys.sms_normal_rate("africastalking")) or 0) - now
    assert line_ahead > 10  # 200 resends at 10/s: their line runs about 20 s
    token_wait = float(state(app, token).fields.get("next_attempt_at") or now) - now
    assert state(app, token).state == "sent" or token_wait <= 0.2
    assert all(state(app, i).state in ("sent", "queued") for i in flood)  # deferred, never dropped


def test_a_deferred_resend_is_sent_once_the_rate_allows(redis_client, africastalking_standin, clock):
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=10)
    with app.app_context():
        ids = [outbox.send(None, PHONE, f"Resend {n}", f"resend:{n}", "token_resend") for n in range(30)]
        run_jobs(app)
        for _ in range(40):
            clock.advance(0.5)
            run_scheduled(app)
    assert [state(app, i).state for i in ids] == ["sent"] * 30
    assert len(africastalking_standin.received) == 30


def _rerun_after_a_claim(app, claimed_by: str, confirmed: bool, job_id: str) -> str:
    """A message that a run of job ``claimed_by`` left "sending" (its claim confirmed or
    not), and job ``job_id`` queued to deliver it again; the message id."""
    message_id = queue_one(app)
    for name in worker.QUEUES:
        worker.queue(app, name).empty()
    worker.queue(app).enqueue(outbox.deliver, message_id, True, job_id=job_id)
    fields = {"state": "sending", "claim": claimed_by, "claimed_at": "1", "attempts": 1}
    if confirmed:
        fields["claim_confirmed"] = claimed_by
    get_redis(app).hset(keys.sms_message(message_id), mapping=fields)
    return message_id


def test_a_job_whose_claim_answer_was_lost_takes_its_own_claim_back_and_sends(sms_app, africastalking_standin):
    """The drill: the claim (queued -> sending) timed out on our side but Redis applied it;
    the job's rerun found "sending" and did nothing, and the token was never sent."""
    message_id = _rerun_after_a_claim(sms_app, "deliver-rerun", confirmed=False, job_id="deliver-rerun")
    run_jobs(sms_app)
    assert state(sms_app, message_id).state == "sent"
    assert len(africastalking_standin.received) == 1


def test_a_rerun_after_the_send_may_have_started_never_sends_again(sms_app, africastalking_standin):
    # Claimed and confirmed, then the worker died mid-send: the rerun must not send.
    message_id = _rerun_after_a_claim(sms_app, "deliver-killed", confirmed=True, job_id="deliver-killed")
    run_jobs(sms_app)
    assert state(sms_app, message_id).state == "sending"  # left to the sweep: unconfirmed, never resent
    assert africastalking_standin.received == []


def test_a_claim_mark_lost_in_a_redis_timeout_gives_the_message_back_and_the_rerun_sends(
    sms_app, africastalking_standin, monkeypatch
):
    """The drill: Redis froze just after the claim; the "claim confirmed" mark timed out on
    our side, yet Redis applied it when it woke, and the job's rerun found a confirmed claim
    and never sent the token."""
    message_id = queue_one(sms_app)
    r = get_redis(sms_app)
    hset = r.hset

    def mark_applied_but_answer_lost(name, key=None, value=None, mapping=None, **kwargs):
        written = hset(name, key, value, mapping=mapping, **kwargs)
        if key == "claim_confirmed":
            monkeypatch.setattr(r, "hset", hset)  # Redis answers again from now on
            raise redis.TimeoutError("Timeout reading from socket")
        return written

    monkeypatch.setattr(r, "hset", mark_applied_but_answer_lost)
    run_jobs(sms_app)
    assert state(sms_app, message_id).state == "queued" and africastalking_standin.received == []
    run_scheduled(sms_app)  # the job's retry
    assert state(sms_app, message_id).state == "sent"
    assert len(africastalking_standin.received) == 1
    assert "sms.given_back" in events(sms_app, message_id)


def test_another_jobs_unconfirmed_claim_is_not_taken(sms_app, africastalking_standin):
    message_id = _rerun_after_a_claim(sms_app, "deliver-first", confirmed=False, job_id="deliver-other")
    run_jobs(sms_app)
    assert state(sms_app, message_id).state == "sending" and africastalking_standin.received == []


def test_retries_follow_the_one_backoff_with_its_jitter(sms_app, africastalking_standin, clock, monkeypatch):
    from utility import calls

    monkeypatch.setattr(calls, "jitter", lambda: 0.5)
    africastalking_standin.answer_status(502)
    message_id = queue_one(sms_app)
    run_jobs(sms_app)
    waited = float(state(sms_app, message_id).fields["next_attempt_at"]) - clock.now
    assert waited == pytest.approx(calls.backoff(1, outbox.RETRY_FIRST, outbox.RETRY_CAP)) == 7.5
