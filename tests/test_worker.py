"""The background worker runs queued jobs inside the app, on the same Redis as the web."""
from __future__ import annotations

import json
import os
import time

import pytest
from flask import current_app

from state import worker
from state.store import get_redis, get_store


def remember(value: str) -> str:
    """A job that needs the app context: it writes through the app's own client."""
    get_redis().set("guichet:{test}:job", f"{value}/{current_app.config['UTILITY_NAME']}")
    return value


def test_a_queued_job_runs_in_the_app_context(app):
    job = worker.queue(app).enqueue(remember, "hello")
    worker.make_worker(app).work(burst=True)
    assert job.get_status() == "finished"
    assert get_redis(app).get("guichet:{test}:job") == "hello/Eneo"


def test_the_in_process_worker_thread_picks_up_jobs(app):
    background = worker.start_in_thread(app)
    try:
        worker.queue(app).enqueue(remember, "from-thread")
        deadline = time.monotonic() + 10
        while get_redis(app).get("guichet:{test}:job") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_redis(app).get("guichet:{test}:job") == "from-thread/Eneo"
        assert background.is_alive()
    finally:
        background.stop()
    assert not background.is_alive()


def test_worker_command_refuses_the_embedded_store(monkeypatch):
    from app import create_app

    monkeypatch.delenv("REDIS_URL", raising=False)
    result = create_app({"TESTING": True}).test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.output


def test_delayed_jobs_run_through_the_in_process_scheduler(app):
    import datetime

    background = worker.start_in_thread(app)
    try:
        worker.queue(app).enqueue_in(datetime.timedelta(seconds=1), remember, "later")
        deadline = time.monotonic() + 15
        while get_redis(app).get("guichet:{test}:job") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get_redis(app).get("guichet:{test}:job") == "later/Eneo"
    finally:
        background.stop()


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.mark.parametrize("queue_name", [worker.QUEUE_NAME, worker.BULK_QUEUE_NAME])
@pytest.mark.parametrize("job_function", ["fail_on_redis_the_first_time", "find_the_lock_held_the_first_time"])
def test_a_job_that_failed_because_redis_was_away_or_a_lock_held_runs_again(app, job_function, queue_name):
    from tests.faults import jobs

    job = worker.queue(app, queue_name).enqueue(getattr(jobs, job_function), "guichet:{test}:runs")
    background = worker.start_in_thread(app)
    try:
        wait_until(lambda: job.get_status(refresh=True) == "finished")
    finally:
        background.stop()
    assert get_redis(app).get("guichet:{test}:runs") == "2"
    assert job.get_meta(refresh=True)["redis_retries"] == 1


def test_a_job_that_failed_in_an_outage_runs_as_soon_as_redis_answers_not_after_its_delay(app):
    """A job that failed several times while Redis was frozen has its retry booked 5 s or
    more ahead; once Redis answers again it runs at once."""
    from tests.faults import jobs

    job = worker.queue(app).enqueue(jobs.fail_on_redis_the_first_time, "guichet:{test}:runs")
    job.meta["redis_retries"] = 3  # the delays grew during the outage: the next is 10 s
    job.save_meta()
    worker.make_worker(app).work(burst=True)
    assert job.get_status(refresh=True) == "scheduled"
    assert worker.promote_outage_retries(get_store(app).jobs) == [job.id]
    assert job.get_status(refresh=True) == "queued"
    worker.make_worker(app).work(burst=True)
    assert job.get_status(refresh=True) == "finished"
    assert get_redis(app).get("guichet:{test}:runs") == "2"
    assert worker.promote_outage_retries(get_store(app).jobs) == []  # done: nothing left to promote


def test_a_retry_after_a_lock_held_keeps_its_delay(app):
    """Only a Redis outage is over when Redis answers; a held lock is over when it expires."""
    from tests.faults import jobs

    job = worker.queue(app).enqueue(jobs.find_the_lock_held_the_first_time, "guichet:{test}:runs")
    worker.make_worker(app).work(burst=True)
    assert worker.promote_outage_retries(get_store(app).jobs) == []
    assert job.get_status(refresh=True) == "scheduled"


def test_a_periodic_task_does_its_next_round_early_when_an_outage_ends(app):
    runs: list[float] = []
    worker.register_periodic(app, "slow", 60, lambda _app: runs.append(time.monotonic()), lease=False)
    background = worker.start_in_thread(app)
    try:
        wait_until(lambda: len(runs) == 1)
        worker.note_recovery(app)
        wait_until(lambda: len(runs) == 2, seconds=3)  # not 60 s later
    finally:
        background.stop()


def test_with_two_job_workers_a_slow_job_does_not_hold_up_the_next(app):
    """A job waiting on the network (a provider's slow answer) leaves the other worker free."""
    from tests.faults import jobs

    background = worker.start_in_thread(app, job_workers=2)
    try:
        assert {"worker", "worker-2"} <= set(background.loops)
        worker.queue(app).enqueue(jobs.slow_the_first_time, "guichet:{test}:slow", 5.0)
        wait_until(lambda: get_redis(app).get("guichet:{test}:slow") == "1")  # the slow one runs
        quick = worker.queue(app).enqueue(jobs.remember, "guichet:{test}:quick")
        wait_until(lambda: quick.get_status(refresh=True) == "finished", seconds=3)
        assert get_redis(app).get("guichet:{test}:slow:done") is None  # still sleeping meanwhile
    finally:
        background.stop()


def test_a_job_that_fails_on_its_own_is_not_retried(app):
    job = worker.queue(app).enqueue(json.loads, "not json")
    worker.make_worker(app).work(burst=True)
    assert job.get_status(refresh=True) == "failed"


# -- periodic tasks ------------------------------------------------------------------------------
def test_a_periodic_task_runs_in_the_app_context_and_outlives_its_errors(app):
    from flask import current_app

    runs: list[str] = []

    def tick(given):
        runs.append(current_app.name)
        assert given is app
        if len(runs) == 2:
            raise RuntimeError("a bug in one round")

    worker.register_periodic(app, "tick", 0.05, tick, lease=False)  # before start: started with it
    background = worker.start_in_thread(app)
    try:
        wait_until(lambda: len(runs) >= 5)
        assert background.loops["tick"].deaths == 1  # restarted after its backoff, not gone
    finally:
        background.stop()
    assert not background.is_alive()
    assert set(runs) == {app.name}


def test_a_leased_periodic_task_runs_one_round_per_interval_across_processes(fake_redis):
    from app import create_app

    runs: list[str] = []
    # Two serving processes on one Redis: two apps on one server.
    apps = [create_app({"TESTING": True, "REDIS_CLIENT": fake_redis}) for _ in range(2)]
    for n, one in enumerate(apps):
        worker.register_periodic(one, "sweep", 0.2, lambda _app, n=n: runs.append(n))
    backgrounds = [worker.start_in_thread(one) for one in apps]
    try:
        time.sleep(2.0)
        rounds = len(runs)
    finally:
        for background in backgrounds:
            background.stop()
    assert 5 <= rounds <= 14, runs  # one round per 0.2 s, not one per process


def test_registering_while_running_starts_at_once_and_replaces_a_name(app):
    background = worker.start_in_thread(app)
    first: list[int] = []
    second: list[int] = []
    try:
        worker.register_periodic(app, "late", 0.05, lambda _app: first.append(1), lease=False)
        wait_until(lambda: first)
        worker.register_periodic(app, "late", 0.05, lambda _app: second.append(1), lease=False)
        wait_until(lambda: len(second) >= 2)
        before = len(first)
        time.sleep(0.2)
        assert len(first) == before  # the replaced one stopped
    finally:
        background.stop()


# -- the scheduler's lock -------------------------------------------------------------------------
def test_the_scheduler_lock_is_short_refreshed_and_handed_over_on_stop(app):
    from state.store import get_store

    jobs = get_store(app).jobs
    first = worker.ThreadScheduler(worker.QUEUES, connection=jobs, name="first")
    second = worker.ThreadScheduler(worker.QUEUES, connection=jobs, name="second")
    assert first.acquire_locks() == set(worker.QUEUES)
    assert 0 < jobs.ttl(first.get_locking_key(worker.QUEUE_NAME)) <= 5  # rq's own: 61 s
    assert second.acquire_locks() == set() and second.should_reacquire_locks  # tried every loop
    first.register_birth()
    first.stop()  # releases it
    assert second.acquire_locks() == set(worker.QUEUES)


# -- jobs of dead workers --------------------------------------------------------------------------
def started_by(app, worker_name: str):
    """A job left started by ``worker_name``, as a worker killed mid-job leaves it."""
    from rq.executions import Execution
    from rq.job import JobStatus

    from state.store import get_store

    job = worker.queue(app).enqueue(remember, "again")
    queue = worker.queue(app)
    assert queue.pop_job_id() == job.id
    with get_store(app).jobs.pipeline() as pipe:
        Execution.create(job, 240, pipeline=pipe, worker_name=worker_name)
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    return job


def dead_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_started_job_whose_worker_is_gone_is_requeued_at_once(app):
    from state.store import get_store

    jobs = get_store(app).jobs
    job = started_by(app, "ghost")  # no alive key: expired, or deleted when it stopped
    assert worker.Reclaimer(jobs).round() == [job.id]
    assert job.get_status(refresh=True) == "queued" and worker.queue(app).job_ids == [job.id]
    assert worker.Reclaimer(jobs).round() == []  # once


def test_a_job_a_live_worker_does_not_show_is_requeued_after_a_grace(app, monkeypatch):
    from types import SimpleNamespace

    from state.store import get_store

    job = started_by(app, "forgetful")
    monkeypatch.setitem(worker._live_workers, "forgetful", SimpleNamespace(executions={}))
    reclaimer = worker.Reclaimer(get_store(app).jobs, grace=2)
    assert reclaimer.round(now=1000.0) == []  # it may be recording or clearing it right now
    assert reclaimer.round(now=1002.5) == [job.id]


def test_jobs_of_workers_that_are_not_guichets_are_left_to_rq(app):
    from state.store import get_store

    jobs = get_store(app).jobs
    jobs.hset("rq:worker:plain", mapping={"birth": "2026-01-01T00:00:00.000000Z"})  # a plain `rq worker`
    job = started_by(app, "plain")
    assert worker.Reclaimer(jobs).round() == []
    assert job.get_status(refresh=True) == "started"


def test_which_workers_are_gone(app):
    from state.store import get_store

    jobs = get_store(app).jobs
    here = f"{worker.HOST}|{worker.PID_NAMESPACE}"
    jobs.set(worker.alive_key("elsewhere"), "another-host|pid:[1]|42")
    jobs.set(worker.alive_key("killed"), f"{here}|{dead_pid()}")
    jobs.set(worker.alive_key("running"), f"{here}|{os.getppid()}")
    on_another_host = started_by(app, "elsewhere")
    killed = started_by(app, "killed")
    on_this_host = started_by(app, "running")
    assert worker.reclaim_abandoned(jobs) == [killed.id]
    assert {on_another_host.get_status(refresh=True), on_this_host.get_status(refresh=True)} == {"started"}


def test_a_job_taken_but_never_started_goes_back_to_the_queue(app):
    from state.store import get_store

    job = worker.queue(app).enqueue(remember, "taken")
    queue = worker.queue(app)
    jobs = get_store(app).jobs
    jobs.lmove(queue.key, queue.intermediate_queue_key)  # what BLMOVE does, then the worker died
    reclaimer = worker.Reclaimer(jobs, intermediate_grace=10)
    assert reclaimer.round(now=1000.0) == [] and reclaimer.round(now=1005.0) == []
    assert reclaimer.round(now=1010.5) == [job.id]
    worker.make_worker(app).work(burst=True)
    assert get_redis(app).get("guichet:{test}:job") == "taken/Eneo"


def test_a_live_worker_of_this_process_keeps_its_job(app):
    """The reclaimer asks this process's workers what they run: a job running for longer
    than any grace is theirs, not abandoned."""
    from state.store import get_store
    from tests.faults.jobs import slow_the_first_time

    worker.queue(app).enqueue(slow_the_first_time, "guichet:{test}:slow", 1.5)
    background = worker.start_in_thread(app)
    try:
        wait_until(lambda: get_redis(app).get("guichet:{test}:slow") == "1")
        assert worker.Reclaimer(get_store(app).jobs, grace=0).round() == []
        wait_until(lambda: get_redis(app).get("guichet:{test}:slow:done") == "1")
    finally:
        background.stop()


@pytest.mark.real_redis
def test_a_worker_on_a_machine_of_its_own_serves_its_metrics(real_redis, monkeypatch):
    import urllib.request

    from app import create_app
    from tests.test_end_to_end import free_port

    port = free_port()
    result = create_app({"TESTING": True}).test_cli_runner().invoke(
        args=["worker", "--burst", "--metrics-port", str(port)])
    assert result.exit_code == 0, result.output
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert b"guichet_outside_calls_total" in answer.read()
