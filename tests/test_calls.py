"""The seam every call to an outside system goes through (utility.calls): the one backoff,
the breaker (its state in Redis, shared by every process), the operator switch, repeats of
what is safe to repeat, and the metric."""
from __future__ import annotations

import random
import time

import fakeredis
import pytest
import redis

from state import keys, switches
from state.store import Store, cluster_from_url, get_redis
from tests.conftest import ADMIN_KEY
from tests.seam import seam_on
from tests.ussd.test_round_trips import wire  # noqa: F401 (fixture: the commands sent to Redis)
from utility import calls
from utility.billing import BillingUnavailable
from utility.errors import OutsideError
from utility.payments.base import PaymentError, ProviderUnavailable
from utility.vending.base import BackendUnavailable, UnknownMeter


# -- the one backoff -----------------------------------------------------------------------
def test_backoff_doubles_from_its_base_up_to_its_cap(monkeypatch) -> None:
    # The conftest pins the jitter to its top: the schedule itself.
    assert [calls.backoff(attempt, 15, 3600) for attempt in range(1, 11)] == [
        15, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert calls.backoff(10_000, 0.5, 4.0) == 4.0  # no overflow however long it lasts
    monkeypatch.setattr(calls, "jitter", lambda: 0.0)
    assert [calls.backoff(attempt, 10, 900) for attempt in (1, 2, 8)] == [5, 10, 450]  # at least half
    with pytest.raises(ValueError):
        calls.backoff(0, 10, 900)


def test_backoff_jitter_spreads_retries_over_the_upper_half(monkeypatch) -> None:
    monkeypatch.setattr(calls, "jitter", random.Random(11).random)
    for attempt, ceiling in ((1, 10.0), (3, 40.0), (9, 900.0)):
        waits = [calls.backoff(attempt, 10, 900) for _ in range(500)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        # Spread over the whole half, not bunched: calls that failed together come back apart.
        assert min(waits) < 0.55 * ceiling and max(waits) > 0.95 * ceiling
        assert len(set(waits)) > 400


# -- a scripted outside system ---------------------------------------------------------------
class Vending:
    """Stands in for a vending backend: each call does what the test put in ``script``
    (an exception to raise, seconds to take), else answers."""

    def __init__(self) -> None:
        self.called: list[str] = []
        self.script: list[BaseException | float] = []

    def confirm(self, meter: str) -> str:
        return self._call("confirm", meter)

    def reprint(self, meter: str) -> str:
        return self._call("reprint", meter)

    def _call(self, name: str, meter: str) -> str:
        self.called.append(name)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, float):
            time.sleep(step)
            raise BackendUnavailable("took too long")
        if step is not None:
            raise step
        return f"{name} {meter}"


POLICY = calls.CallPolicy("vending", ("confirm", "reprint"), BackendUnavailable, timeout=0.05, switch="vending",
                          switched=frozenset({"confirm"}))
FAILURES = 3


def counted(system: str, outcome: str) -> int:
    tally = calls.tallies().get(system, {}).get(outcome)
    return tally.calls if tally else 0


@pytest.fixture
def redis_client(any_redis):
    return any_redis


@pytest.fixture
def seam(redis_client) -> calls.Seam:
    return seam_on(redis_client, failures=FAILURES, reset=30.0)


@pytest.fixture
def vending(seam) -> Vending:
    return seam.guard(Vending(), POLICY)


def another_process(client: redis.Redis) -> redis.Redis:
    """A client of the same Redis with a connection of its own, as another process has."""
    if isinstance(client, redis.RedisCluster):
        node = client.get_default_node()
        return cluster_from_url(f"redis://{node.host}:{node.port}")
    settings = client.connection_pool.connection_kwargs
    if isinstance(client, fakeredis.FakeRedis):
        return fakeredis.FakeRedis(server=settings["server"], decode_responses=True)
    return redis.Redis(host=settings["host"], port=settings["port"], db=settings.get("db", 0), decode_responses=True)


def time_passes(client: redis.Redis, system: str, seconds: float) -> None:
    """Move the breaker's opening back in time (pybreaker stores it in whole seconds)."""
    key = f"{keys.breaker(system)}:pybreaker:opened_at"
    if isinstance(client, redis.RedisCluster):
        client = Store.from_client(client).jobs  # on a cluster, the breakers live with the jobs
    client.set(key, int(client.get(key)) - int(seconds))


def state_of(seam: calls.Seam, system: str) -> calls.BreakerState:
    (found,) = [breaker for breaker in seam.read() if breaker.system == system]
    return found


# -- the breaker ---------------------------------------------------------------------------
def test_repeated_retryable_failures_open_the_breaker_and_the_system_is_then_left_alone(seam, vending) -> None:
    vending.script = [BackendUnavailable("server down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable, match="server down"):  # each keeps its own reason
            vending.confirm("014")
    assert state_of(seam, "vending").state == "open"
    before = counted("vending", "open")
    for _ in range(5):
        with pytest.raises(BackendUnavailable, match="breaker is open") as refused:
            vending.confirm("014")
        assert refused.value.retryable  # the callers' usual "try later" (orders wait, menus go offline)
        assert refused.value.system == "vending"
    assert vending.called == ["confirm"] * FAILURES  # not called while open
    assert counted("vending", "open") - before == 5


def test_timeouts_count_even_when_the_error_says_nothing_of_them(seam, vending) -> None:
    lost = OutsideError("answer lost")  # not retryable...
    lost.__cause__ = TimeoutError("timed out")  # ...but what it was raised from is a timeout
    vending.script = [0.06, lost, 0.06]  # two calls that took their whole time bound, and the lost answer
    for _ in range(3):
        with pytest.raises(OutsideError) as failed:
            vending.confirm("014")
        assert failed.value.timed_out and failed.value.system == "vending"
    assert state_of(seam, "vending").state == "open"


def test_a_refusal_never_opens_the_breaker_and_proves_the_system_is_up(seam, vending) -> None:
    vending.script = [UnknownMeter("no such meter")] * 10
    for _ in range(10):
        with pytest.raises(UnknownMeter):
            vending.confirm("999")
    assert state_of(seam, "vending").state == "closed" and len(vending.called) == 10
    # Failures in a row only: an answer in between (even a no) starts the count again.
    vending.script = [BackendUnavailable("blip")] * (FAILURES - 1) + [UnknownMeter("no")] + [
        BackendUnavailable("blip")] * (FAILURES - 1)
    for _ in range(2 * FAILURES - 1):
        with pytest.raises(OutsideError):
            vending.confirm("014")
    breaker = state_of(seam, "vending")
    assert (breaker.state, breaker.failures) == ("closed", FAILURES - 1)


def test_after_the_delay_one_call_probes_a_success_closes_and_a_failure_opens_again(
    seam, vending, redis_client
) -> None:
    vending.script = [BackendUnavailable("down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable):
            vending.confirm("014")
    opened = state_of(seam, "vending")
    assert opened.next_probe is not None and opened.opened_at is not None
    assert (opened.next_probe - opened.opened_at).total_seconds() == 30

    time_passes(redis_client, "vending", 31)
    assert state_of(seam, "vending").state == "half_open"  # its probe is due
    vending.script = [BackendUnavailable("still down")]
    with pytest.raises(BackendUnavailable, match="still down"):  # the probe went through...
        vending.confirm("014")
    assert len(vending.called) == FAILURES + 1
    with pytest.raises(BackendUnavailable, match="breaker is open"):  # ...failed, and it is open again
        vending.confirm("014")
    assert state_of(seam, "vending").state == "open"

    time_passes(redis_client, "vending", 31)
    assert vending.confirm("014") == "confirm 014"  # the probe succeeds
    closed = state_of(seam, "vending")
    assert (closed.state, closed.failures, closed.next_probe) == ("closed", 0, None)
    assert vending.confirm("015") == "confirm 015"


def test_every_process_sees_one_breaker(redis_client, monkeypatch) -> None:
    """Two processes (two seams, two connections, two backends) on one Redis; each reads the
    breaker at most once a second, so the other sees it open within a second."""
    now = [1000.0]
    monkeypatch.setattr(calls._SharedStorage, "clock", staticmethod(lambda: now[0]))
    here = seam_on(redis_client, failures=FAILURES)
    there = seam_on(another_process(redis_client), failures=FAILURES)
    ours, theirs = here.guard(Vending(), POLICY), there.guard(Vending(), POLICY)
    assert theirs.confirm("014") == "confirm 014"  # its breaker made (closed) before ours opens
    ours.script = [BackendUnavailable("down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable):
            ours.confirm("014")
    now[0] += 0.5
    assert theirs.confirm("014") == "confirm 014"  # its copy, read half a second ago, is closed
    now[0] += calls._SharedStorage.READ_EVERY
    with pytest.raises(BackendUnavailable, match="breaker is open"):
        theirs.confirm("014")
    assert theirs.called == ["confirm", "confirm"]  # then the other process did not call it either
    assert there.states() == {"vending": "open"}

    assert there.reset("vending")  # an operator's reset, served by the other process
    assert ours.confirm("014") == "confirm 014"
    assert here.read()[0].state == "closed"


def test_our_own_redis_blinking_does_not_count_against_the_system(seam, vending) -> None:
    outage = BackendUnavailable("vending storage unavailable")
    outage.__cause__ = redis.ConnectionError("Connection refused")  # as redis_failure_means raises it
    vending.script = [outage] * (FAILURES + 2)
    for _ in range(FAILURES + 2):
        with pytest.raises(BackendUnavailable):
            vending.confirm("014")
    assert state_of(seam, "vending").state == "closed" and not vending.script


def test_a_bug_does_not_open_it_either(seam, vending) -> None:
    vending.script = [KeyError("oops")] * (FAILURES + 1)
    before = counted("vending", "error")
    for _ in range(FAILURES + 1):
        with pytest.raises(KeyError):
            vending.confirm("014")
    assert state_of(seam, "vending").state == "closed"
    assert counted("vending", "error") - before == FAILURES + 1


# -- the operator switch -------------------------------------------------------------------------
def test_the_operator_switch_short_circuits_what_it_stops(seam, vending, redis_client) -> None:
    switches.set_down(redis_client, "vending", True)
    before = counted("vending", "off")
    for _ in range(FAILURES + 2):
        with pytest.raises(BackendUnavailable, match="switched off") as off:
            vending.confirm("014")
        assert off.value.retryable
    assert vending.called == []  # not called at all
    assert vending.reprint("014") == "reprint 014"  # what is stored is still read
    assert counted("vending", "off") - before == FAILURES + 2
    # An operator's switch is not the system failing: its breaker is untouched.
    assert state_of(seam, "vending").state == "closed"
    switches.set_down(redis_client, "vending", False)
    assert vending.confirm("014") == "confirm 014"


def test_redis_away_the_switch_cannot_be_read_and_the_builtin_backend_is_unavailable(fake_redis) -> None:
    guarded = seam_on(fake_redis).guard(Vending(), POLICY)
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    with pytest.raises(BackendUnavailable) as away:
        guarded.confirm("014")
    assert isinstance(away.value.__cause__, redis.ConnectionError) and guarded.called == []


# -- the switch of an app's built-in backend: its process copy -------------------------------------
METER_ACCOUNT, BILL_ACCOUNT = "1000000001", "C-3000000001"


@pytest.fixture
def builtin_backends(app, monkeypatch):
    """The app's built-in vending and billing, with a prepaid meter and a bill to pay. The
    switches' copy is not refreshed by its age during a test (a slow machine must not make
    a read that the test would take for the switch's): only a switch set in this process,
    or ``a_second_passes``, makes it read Redis again."""
    from tests.ussd.conftest import postpaid, prepaid
    from utility.customers import RedisCustomerBase
    from utility.services import services

    monkeypatch.setattr(switches, "SERVICES_SECONDS", 3600.0)
    meter = prepaid(METER_ACCOUNT, "+237699000101")
    RedisCustomerBase(get_redis(app)).upsert([meter, postpaid(BILL_ACCOUNT, "+237699000102", 20_000, None)])
    built = services(app)
    return built.vending, built.billing, meter.meter_number


def a_second_passes(app) -> None:
    """As if SERVICES_SECONDS had passed since the app's copy of the switches was read."""
    app.extensions[switches.EXTENSION].copied_at -= switches.SERVICES_SECONDS


def vend_and_pay(vending, billing, meter: str, reference: str) -> None:
    assert vending.vend(meter, 5_000, reference).tokens
    assert billing.pay(BILL_ACCOUNT, 1_000, reference).amount == 1_000


def test_a_vend_and_a_bill_payment_do_not_ask_redis_for_their_switch(app, builtin_backends, wire) -> None:  # noqa: F811
    vending, billing, meter = builtin_backends
    vend_and_pay(vending, billing, meter, "ORD-1")  # the process's copy of the switches is read once
    with wire.hop() as trips:
        vend_and_pay(vending, billing, meter, "ORD-2")
    sent = [command for trip in trips for command in trip]
    assert sent, "the calls talk to Redis (their records): the wire sees them"
    asked = [command for command in sent if command[1] in (keys.switches().upper(), keys.service_switches().upper())]
    assert asked == []


@pytest.mark.parametrize("backend", ["vending", "billing"])
def test_a_switch_set_through_the_admin_api_applies_at_once(app, builtin_backends, backend) -> None:
    vending, billing, meter = builtin_backends
    vend_and_pay(vending, billing, meter, "ORD-1")  # the copy: taken, fresh for an hour here
    admin, auth = app.test_client(), {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert admin.post(f"/admin/backends/{backend}", json={"state": "down"}, headers=auth).status_code == 200
    with pytest.raises((BackendUnavailable, BillingUnavailable), match="switched off"):
        vend_and_pay(vending, billing, meter, "ORD-2")
    assert admin.post(f"/admin/backends/{backend}", json={"state": "up"}, headers=auth).status_code == 200
    vend_and_pay(vending, billing, meter, "ORD-3")


def test_a_switch_set_by_code_in_this_process_applies_at_once(app, builtin_backends) -> None:
    vending, billing, meter = builtin_backends
    vend_and_pay(vending, billing, meter, "ORD-1")
    switches.set_down(get_redis(app), "billing", True)  # as the demo provider's set_available, a drill, a test
    with pytest.raises(BillingUnavailable, match="switched off"):
        billing.pay(BILL_ACCOUNT, 1_000, "ORD-2")
    switches.set_down(get_redis(app), "billing", False)
    assert billing.pay(BILL_ACCOUNT, 1_000, "ORD-2").amount == 1_000


def test_a_switch_another_process_sets_applies_here_once_the_copy_is_read_again(app, builtin_backends, redis_client) -> None:
    vending, billing, meter = builtin_backends
    vend_and_pay(vending, billing, meter, "ORD-1")
    another_process(redis_client).hset(keys.switches(), "vending", "down")  # what its set_down writes
    vend_and_pay(vending, billing, meter, "ORD-2")  # this process's copy still says up...
    a_second_passes(app)
    with pytest.raises(BackendUnavailable, match="switched off"):  # ...for a second at most
        vending.vend(meter, 5_000, "ORD-3")


def test_redis_away_an_app_s_builtin_vending_is_unavailable_all_the_same(fake_redis) -> None:
    from app import create_app
    from utility.services import services

    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis})
    vending = services(app).vending
    switches.backends_down(app)  # the copy: nothing switched off
    before = counted("vending", "unavailable")
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    with pytest.raises(BackendUnavailable) as away:  # the copy lets it through; the engine cannot serve
        vending.confirm("10000000017")
    assert away.value.retryable and counted("vending", "unavailable") == before + 1


# -- repeats, stamps, the metric -------------------------------------------------------------------
class Provider:
    name = "fake"

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.script: list[BaseException] = []

    def request(self, ref: str) -> str:
        return self._call("request", ref)

    def status(self, ref: str) -> str:
        return self._call("status", ref)

    def _call(self, name: str, ref: str) -> str:
        self.asked.append(name)
        if self.script:
            raise self.script.pop(0)
        return "pending"


PAYMENTS = calls.CallPolicy("payments:fake", ("request", "status"), ProviderUnavailable, timeout=1.0, attempts=3,
                            repeatable=frozenset({"status"}), backoff_base=0.5, backoff_cap=4.0)


def test_only_what_is_safe_to_repeat_is_tried_again_after_the_backoff(seam, monkeypatch) -> None:
    waited: list[float] = []
    monkeypatch.setattr(calls, "pause", waited.append)
    provider = seam.guard(Provider(), PAYMENTS)
    provider.script = [ProviderUnavailable("502"), ProviderUnavailable("502")]
    assert provider.status("P-1") == "pending"
    assert provider.asked == ["status"] * 3 and waited == [0.5, 1.0]

    provider.asked.clear()
    provider.script = [ProviderUnavailable("502")]
    with pytest.raises(ProviderUnavailable):
        provider.request("ORDER001")  # a request to pay is never sent again from here
    assert provider.asked == ["request"]

    provider.asked.clear()
    provider.script = [PaymentError("no such payment")]
    with pytest.raises(PaymentError):
        provider.status("P-2")  # a refusal: asking again would be refused again
    late = ProviderUnavailable("no answer")
    late.__context__ = TimeoutError()
    provider.script = [late]
    with pytest.raises(ProviderUnavailable):
        provider.status("P-3")  # a timeout already took the caller's whole time bound
    assert provider.asked == ["status", "status"] and waited == [0.5, 1.0]


def test_errors_are_stamped_with_their_system_and_every_call_is_counted(seam) -> None:
    provider = seam.guard(Provider(), PAYMENTS)
    before = {outcome: counted("payments:fake", outcome) for outcome in calls.OUTCOMES}
    provider.script = [PaymentError("refused")]
    with pytest.raises(PaymentError) as refused:
        provider.request("ORDER001")
    assert (refused.value.system, refused.value.timed_out) == ("payments:fake", False)
    provider.request("ORDER002")
    after = {outcome: counted("payments:fake", outcome) - before[outcome] for outcome in calls.OUTCOMES}
    assert after == {**dict.fromkeys(calls.OUTCOMES, 0), "refused": 1, "ok": 1}
    tally = calls.tallies()["payments:fake"]["ok"]
    assert tally.seconds >= 0 and tally.slowest <= tally.seconds


def test_guarding_keeps_the_object_and_its_other_attributes(seam) -> None:
    provider = Provider()
    assert seam.guard(provider, PAYMENTS) is provider and isinstance(provider, Provider)
    assert provider.name == "fake" and provider.status.guarded_by == "payments:fake"
    with pytest.raises(ValueError, match="guarded already"):
        seam.guard(provider, PAYMENTS)  # twice would count every call twice
    with pytest.raises(ValueError, match="not among its methods"):
        calls.CallPolicy("billing", ("pay",), BillingUnavailable, repeatable=frozenset({"refund"}))


# -- what the menus and the operators read ---------------------------------------------------------
def test_states_come_from_a_copy_at_most_a_second_old(seam, vending, monkeypatch) -> None:
    assert seam.states() == {"vending": "closed"}
    reads: list[int] = []
    real = seam.read
    monkeypatch.setattr(seam, "read", lambda: reads.append(1) or real())
    vending.script = [BackendUnavailable("down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable):
            vending.confirm("014")
    assert seam.states() == {"vending": "closed"} and reads == []  # the copy: no round trip
    seam._copied_at -= calls.STATES_SECONDS
    assert seam.states() == {"vending": "open"} and reads == [1]


def test_every_backend_of_an_app_is_built_through_the_seam(app) -> None:
    from sms import outbox
    from utility.services import services

    built = services(app)
    assert built.vending.confirm.guarded_by == "vending"
    assert built.billing.pay.guarded_by == "billing"
    assert built.payments.request.guarded_by == built.payments.status.guarded_by == "payments:demo"
    with app.app_context():
        assert outbox.get_client(app).send.guarded_by == "sms:console"
    assert calls.seam(app).systems() == ["billing", "payments:demo", "vending"]  # SMS: no breaker
    assert calls.states(app) == {"billing": "closed", "payments:demo": "closed", "vending": "closed"}


def test_a_menu_asking_first_finds_every_breaker(app) -> None:
    # The first hop of a process may ask before anything was built: the backends are built then.
    assert calls.states(app) == {"billing": "closed", "payments:demo": "closed", "vending": "closed"}


def test_a_closing_breaker_calls_back_once_per_closing_and_not_when_it_opens(seam, vending, redis_client) -> None:
    closed: list[str] = []
    seam.when_closed(closed.append)
    vending.script = [BackendUnavailable("down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable):
            vending.confirm("014")
    assert closed == []  # opening is no news of that kind
    time_passes(redis_client, "vending", 31)
    assert vending.confirm("014") == "confirm 014"  # the probe succeeds: back
    assert closed == ["vending"]
    vending.confirm("015")
    assert closed == ["vending"]  # closed already: nothing more


def test_a_callback_that_fails_does_not_fail_the_call_that_closed_the_breaker(seam, vending) -> None:
    seam.when_closed(lambda system: 1 / 0)
    vending.script = [BackendUnavailable("down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable):
            vending.confirm("014")
    assert seam.reset("vending")  # an operator's word that it is back
    assert vending.confirm("016") == "confirm 016"


def test_out_is_an_open_breaker_or_a_switched_off_builtin_not_a_half_open_one(seam, vending, redis_client) -> None:
    assert not seam.out("vending", frozenset())
    assert seam.out("vending", frozenset({"vending"}))  # its operator switch
    assert not seam.out("vending", frozenset({"billing"}))
    vending.script = [BackendUnavailable("down")] * FAILURES
    for _ in range(FAILURES):
        with pytest.raises(BackendUnavailable):
            vending.confirm("014")
    seam._copied_at = -float("inf")
    assert seam.out("vending", frozenset())
    time_passes(redis_client, "vending", 31)
    seam._copied_at = -float("inf")
    assert not seam.out("vending", frozenset())  # due a probe: the next customer's call is it


def test_a_breaker_closing_fulfils_the_orders_waiting_for_it_once(app, redis_client) -> None:
    from state import worker
    from utility.services import retry_waiting_job, services

    built = services(app)
    redis_client.sadd(keys.waiting_orders(), "ORDER001", "ORDER002")
    queue = worker.queue(app)
    queue.empty()
    for _ in range(2):  # two processes notice the closing
        calls.seam(app).breaker("vending").open()
        assert calls.seam(app).reset("vending")
    jobs = queue.get_jobs()
    assert [job.func_name for job in jobs] == ["utility.services.retry_waiting_job"] * 2
    queued: list[tuple[str, float]] = []
    built.orders.later = lambda reference, delay: queued.append((reference, delay))
    with app.app_context():
        assert [retry_waiting_job() for _ in jobs] == [2, 0]  # one of them retries
    assert sorted(queued) == [("ORDER001", 0), ("ORDER002", 0)]
