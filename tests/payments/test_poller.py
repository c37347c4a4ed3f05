"""The poller settles what callbacks miss: a success nobody called back about, a payment
nobody ever answers (given up as expired), a handler that failed, MTN errors on the way.
Time is the test's own: ``now`` and the provider's clock move by hand."""
from __future__ import annotations

import pytest

from state import journal, keys
from tests.payments.conftest import Clock, Recorder
from tests.payments.standin_momo import StandinMomo
from utility.payments.base import PaymentRequest, PaymentResult
from utility.payments.mtn_momo import MtnMomo
from utility.payments.poller import PollSettings, poll_pending

PAYER = "+46733123450"
SETTINGS = PollSettings(after=30, first_interval=15, max_interval=120, expiry=600)


@pytest.fixture
def poll(momo_app, mtn: MtnMomo, recorder: Recorder):
    def run(at: float, on_result=recorder) -> list[PaymentResult]:
        return poll_pending(momo_app, on_result, provider=mtn, settings=SETTINGS, now=at)

    return run


def ask(mtn: MtnMomo, order: str = "ORDER001") -> str:
    return mtn.request(PaymentRequest(order, PAYER, 1500)).provider_ref


def test_when_the_callback_never_comes_the_poller_finds_the_success(poll, mtn, momo: StandinMomo, recorder, clock: Clock):
    momo.script(PAYER, "SUCCESSFUL")
    ref = ask(mtn)
    t0 = clock()
    assert poll(t0 + 10) == [] and momo.count("status") == 0  # too early: the callback usually comes first
    expected = PaymentResult("mtn_momo", ref, "ORDER001", "successful", "")
    assert poll(t0 + 31) == [expected]
    assert recorder.results == [expected]
    assert poll(t0 + 500) == [] and recorder.results == [expected]  # handed over once
    assert momo.count("status") == 1


def test_a_payment_that_stays_pending_is_given_up_as_expired(poll, mtn, momo: StandinMomo, recorder, clock, redis_client):
    momo.script(PAYER, "PENDING")
    ref = ask(mtn)
    t0 = clock()
    assert poll(t0 + 31) == [] and momo.count("status") == 1
    assert poll(t0 + 40) == [] and momo.count("status") == 1  # backed off: not due yet
    assert poll(t0 + 31 + 15) == [] and momo.count("status") == 2
    assert poll(t0 + 31 + 15 + 29) == [] and momo.count("status") == 2  # the interval doubled
    assert poll(t0 + 31 + 15 + 30) == [] and momo.count("status") == 3

    expired = PaymentResult("mtn_momo", ref, "ORDER001", "failed", "expired")
    assert poll(t0 + 600) == [expired]
    assert recorder.results == [expired]
    stored = redis_client.hgetall(keys.payment("mtn_momo", ref))
    assert (stored["state"], stored["reason"], stored["via"]) == ("failed", "expired", "poller")
    assert poll(t0 + 5000) == [] and len(recorder.results) == 1


def test_the_backoff_never_passes_the_expiry(poll, mtn, momo: StandinMomo, clock, redis_client):
    momo.script(PAYER, "PENDING")
    ref = ask(mtn)
    t0 = clock()
    at = t0 + 31
    while poll(at) == []:
        at = redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref)
        assert at <= t0 + 600
    assert at == t0 + 600


def test_a_success_after_our_expiry_still_wins_and_is_handed_over(poll, mtn, momo: StandinMomo, recorder, clock, redis_client):
    momo.script(PAYER, "PENDING")
    ref = ask(mtn)
    t0 = clock()
    poll(t0 + 600)
    assert [r.state for r in recorder.results] == ["failed"]
    momo.decide(ref, "SUCCESSFUL")  # the payer approved at the last second
    assert mtn.status(ref).state == "successful"
    assert poll(t0 + 700) == [PaymentResult("mtn_momo", ref, "ORDER001", "successful", "")]
    assert [r.state for r in recorder.results] == ["failed", "successful"]
    late = [e for e in journal.read(redis_client) if e["kind"] == "payment.late"]
    assert [(e["previous"], e["state"]) for e in late] == [("failed", "successful")]


def test_a_handler_that_failed_gets_the_result_again(poll, mtn, momo: StandinMomo, clock):
    momo.script(PAYER, "FAILED", "APPROVAL_REJECTED")
    ref = ask(mtn)
    t0 = clock()
    flaky = Recorder(fail_times=1)
    assert poll(t0 + 31, flaky) == [] and flaky.calls == 1
    assert poll(t0 + 31 + 120, flaky) == [PaymentResult("mtn_momo", ref, "ORDER001", "failed", "declined")]
    assert flaky.calls == 2
    assert momo.count("status") == 1  # the state was known: only the hand-over was repeated


def test_status_errors_do_not_stop_the_round(poll, mtn, momo: StandinMomo, recorder, clock):
    first, second = ask(mtn, "ORDER001"), ask(mtn, "ORDER002")
    momo.fail_next("status", "500")
    handed = poll(clock() + 31)
    assert len(handed) == 1 and handed[0].provider_ref in (first, second)
    assert len(poll(clock() + 31 + 15)) == 1  # the other one, on its next turn
    assert {r.provider_ref for r in recorder.results} == {first, second}


def test_a_request_that_never_reached_mtn_is_settled_as_failed(poll, mtn, momo: StandinMomo, recorder, clock):
    from utility.payments.base import ProviderUnavailable

    momo.fail_next("requesttopay", "500")
    with pytest.raises(ProviderUnavailable):
        ask(mtn)
    clock.advance(mtn.settings.not_found_grace + 1)  # the provider's clock: the 404 is now definite
    [result] = poll(clock() + 1)
    assert (result.state, result.reason) == ("failed", "provider_unavailable")


def test_the_demo_provider_is_polled_from_its_records(demo_app, recorder, redis_client):
    from utility.payments import provider

    demo = provider(demo_app)
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    demo.approve(ref)  # its callback to :9 fails: nothing listens
    t0 = float(redis_client.hget(keys.payment("demo", ref), "created_at"))
    [result] = poll_pending(demo_app, recorder, settings=SETTINGS, now=t0 + 31)
    assert (result.provider, result.state) == ("demo", "successful")


def test_the_poller_thread_hands_results_to_the_registered_handler(demo_app, recorder):
    from utility.payments import provider
    from utility.payments.poller import poll_round, start_in_thread

    demo_app.config["PAYMENT_POLL_AFTER"] = 0
    demo = provider(demo_app)
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    demo.approve(ref)  # its callback is lost (nothing on :9): only polling can find it
    background = start_in_thread(demo_app, every=0.05)
    try:
        assert recorder.arrived.wait(10)
    finally:
        background.stop()
    assert not background.thread.is_alive()
    assert [(r.provider_ref, r.state) for r in recorder.results] == [(ref, "successful")]
    # One round per interval across processes: a second round right away is skipped.
    assert poll_round(demo_app, lease=60) in (0, None)
    assert poll_round(demo_app, lease=60) is None



def test_the_first_round_after_an_outage_asks_about_every_pending_payment_at_once(demo_app, recorder):
    """A callback refused while Redis was away (or while the server was down) is not
    waited for: once Redis answers, the poller asks about every pending payment, even
    one younger than GUICHET_PAYMENT_POLL_AFTER, whoever did the last round."""
    from state import worker
    from utility.payments import provider
    from utility.payments.poller import poll_round

    assert poll_round(demo_app, lease=60) == 0  # this process's first round (nothing pending yet)
    demo = provider(demo_app)
    ref = demo.request(PaymentRequest("ORDER001", "+237670000001", 1000)).provider_ref
    demo.approve(ref)  # the payer approved; the callback (to :9) is lost
    assert poll_round(demo_app, lease=60) is None and recorder.results == []  # a round is not due yet
    worker.note_recovery(demo_app)  # Redis answers again after an outage
    assert poll_round(demo_app, lease=60) == 1
    assert [(r.provider_ref, r.state) for r in recorder.results] == [(ref, "successful")]


def test_the_poller_backs_off_with_the_one_backoff_and_its_jitter(poll, mtn, momo: StandinMomo, clock, redis_client,
                                                                  monkeypatch):
    from utility import calls

    monkeypatch.setattr(calls, "jitter", lambda: 0.0)
    momo.script(PAYER, "PENDING")
    ref = ask(mtn)
    t0 = clock()
    poll(t0 + 31)
    due = redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref)
    assert due == t0 + 31 + calls.backoff(1, SETTINGS.first_interval, SETTINGS.max_interval) == t0 + 31 + 7.5
