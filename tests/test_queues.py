"""Two queues, workers of their own: receipts ("guichet") and bulk work ("guichet-bulk").
Each worker takes one queue (BLMOVE, and the reclaimer's recovery of a job taken by a worker
that died); the scheduler, the reclaimer and the recovery after an outage cover both."""
from __future__ import annotations

import time

import pytest
from rq.executions import Execution
from rq.job import Job, JobStatus

from state import worker
from state.store import get_redis, get_store
from tests.faults import jobs

BULK = worker.BULK_QUEUE_NAME


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_the_queues_receipts_first():
    assert worker.QUEUES == (worker.QUEUE_NAME, BULK)
    assert BULK == "guichet-bulk"


def test_each_worker_takes_one_queue(app):
    assert worker.make_worker(app).queue_names() == [worker.QUEUE_NAME]
    assert worker.make_worker(app, queue_name=BULK).queue_names() == [BULK]
    with pytest.raises(ValueError, match="no such queue"):
        worker.make_worker(app, queue_name="other")


def test_the_bulk_worker_runs_bulk_jobs_while_the_receipts_worker_runs_receipts(app):
    """Both in-process: a bulk job that takes its time never holds up a receipt, and the
    receipts worker never takes bulk work (bulk waits for its own worker)."""
    background = worker.start_in_thread(app)
    try:
        assert [name for name in background.loops if "worker" in name] == ["worker", "bulk-worker"]
        slow = worker.queue(app, BULK).enqueue(jobs.slow_the_first_time, "guichet:{test}:slow", 3.0)
        wait_until(lambda: get_redis(app).get("guichet:{test}:slow") == "1")  # the bulk worker is busy
        next_bulk = worker.queue(app, BULK).enqueue(jobs.remember, "guichet:{test}:bulk")
        receipt = worker.queue(app).enqueue(jobs.remember, "guichet:{test}:receipt")
        wait_until(lambda: receipt.get_status(refresh=True) == "finished", seconds=2)
        assert next_bulk.get_status(refresh=True) == "queued"  # behind the slow one, on its own worker
        runs_on = {rq_worker.name: rq_worker.queue_names() for rq_worker in background.workers.values()}
        wait_until(lambda: next_bulk.get_status(refresh=True) == "finished")
    finally:
        background.stop()
    for job in (slow, next_bulk, receipt):
        job.refresh()
    assert runs_on[receipt.worker_name] == [worker.QUEUE_NAME]
    assert runs_on[slow.worker_name] == runs_on[next_bulk.worker_name] == [BULK]


def test_how_many_workers_on_each_queue(app):
    app.config["BULK_WORKERS"] = 2
    background = worker.start_in_thread(app, job_workers=2)
    try:
        assert {"worker", "worker-2", "bulk-worker", "bulk-worker-2"} <= set(background.loops)
        wait_until(lambda: len(background.workers) == 4)
        assert sorted(w.queue_names()[0] for w in background.workers.values()) == [
            worker.QUEUE_NAME, worker.QUEUE_NAME, BULK, BULK]
    finally:
        background.stop()
    app.config["BULK_WORKERS"] = 0  # bulk work runs elsewhere (`guichet worker --queue guichet-bulk`)
    background = worker.start_in_thread(app)
    try:
        assert "bulk-worker" not in background.loops and "worker" in background.loops
    finally:
        background.stop()
    app.config["BULK_WORKERS"] = None
    background = worker.start_in_thread(app, queues=[BULK])  # a machine for bulk work
    try:
        assert "worker" not in background.loops and "bulk-worker" in background.loops
        assert {"scheduler", "reclaimer"} <= set(background.loops)  # they cover every queue anywhere
    finally:
        background.stop()
    with pytest.raises(ValueError, match="no such queue"):
        worker.start_in_thread(app, queues=["guichet-other"])


def test_the_worker_command_takes_only_known_queues(app):
    result = app.test_cli_runner().invoke(args=["worker", "--queue", "guichet-other"])
    assert result.exit_code == 2 and "guichet-bulk" in result.output


def test_delayed_bulk_jobs_run_through_the_one_scheduler(app):
    import datetime

    background = worker.start_in_thread(app)
    try:
        worker.queue(app, BULK).enqueue_in(datetime.timedelta(seconds=1), jobs.remember, "guichet:{test}:later")
        wait_until(lambda: get_redis(app).get("guichet:{test}:later") == "done", seconds=15)
    finally:
        background.stop()


def test_the_scheduler_moves_the_receipts_due_jobs_first(app):
    for order in (list(worker.QUEUES), list(reversed(worker.QUEUES))):
        scheduler = worker.ThreadScheduler(order, connection=get_store(app).jobs, name="s-" + order[0])
        assert scheduler.acquire_locks() == set(worker.QUEUES)
        scheduler.prepare_registries()
        assert [registry.name for registry in scheduler._scheduled_job_registries] == order  # not a set's order
        scheduler.stop()


# -- the reclaimer covers the bulk queue ----------------------------------------------------------------
def started_on_bulk(app, worker_name: str):
    """A bulk job left started by ``worker_name``, as a bulk worker killed mid-job leaves it."""
    # Created, not enqueued: a live bulk worker would take it first.
    job = Job.create(jobs.remember, args=("guichet:{test}:again",), connection=get_store(app).jobs, origin=BULK)
    job.save()
    with get_store(app).jobs.pipeline() as pipe:
        Execution.create(job, 240, pipeline=pipe, worker_name=worker_name)
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    return job


def test_a_bulk_job_whose_worker_died_mid_job_is_requeued_on_the_bulk_queue_and_runs_again(app):
    connection = get_store(app).jobs
    job = started_on_bulk(app, "killed-bulk-worker")  # no alive key: the worker is gone
    assert worker.Reclaimer(connection).round() == [job.id]
    assert worker.queue(app, BULK).job_ids == [job.id] and worker.queue(app).job_ids == []
    worker.make_worker(app, queue_name=BULK).work(burst=True)
    assert get_redis(app).get("guichet:{test}:again") == "done"


def test_a_bulk_job_taken_but_never_started_goes_back_to_the_bulk_queue(app):
    job = worker.queue(app, BULK).enqueue(jobs.remember, "guichet:{test}:taken")
    queue = worker.queue(app, BULK)
    connection = get_store(app).jobs
    connection.lmove(queue.key, queue.intermediate_queue_key)  # what BLMOVE does, then the worker died
    reclaimer = worker.Reclaimer(connection, intermediate_grace=10)
    assert reclaimer.round(now=1000.0) == []
    assert reclaimer.round(now=1010.5) == [job.id]
    assert queue.job_ids == [job.id]


def test_a_killed_bulk_worker_s_job_runs_again_in_process(app):
    """The in-process path: a bulk worker's loop dies mid-job (its thread ends, as a kill
    leaves it), the reclaimer requeues the job and the restarted bulk worker runs it."""
    background = worker.start_in_thread(app)
    try:
        wait_until(lambda: any(w.queue_names() == [BULK] for w in background.workers.values()))
        doomed = next(w for w in background.workers.values() if w.queue_names() == [BULK])
        job = started_on_bulk(app, doomed.name)
        worker._live_workers.pop(doomed.name)  # it runs no more: what the reclaimer asks first
        get_store(app).jobs.delete(worker.alive_key(doomed.name))
        wait_until(lambda: job.get_status(refresh=True) == "finished", seconds=10)
        assert get_redis(app).get("guichet:{test}:again") == "done"
    finally:
        background.stop()


# -- the recovery after an outage covers the bulk queue ---------------------------------------------------
def test_a_bulk_job_that_failed_in_an_outage_runs_again_on_the_bulk_queue_as_soon_as_redis_answers(app):
    job = worker.queue(app, BULK).enqueue(jobs.fail_on_redis_the_first_time, "guichet:{test}:runs")
    job.meta["redis_retries"] = 3  # its next retry is 10 s ahead
    job.save_meta()
    worker.make_worker(app, queue_name=BULK).work(burst=True)
    assert job.get_status(refresh=True) == "scheduled"
    worker.note_recovery(app)  # what the supervisor calls when Redis answers again
    assert job.get_status(refresh=True) == "queued"
    assert worker.queue(app, BULK).job_ids == [job.id] and worker.queue(app).job_ids == []
    worker.make_worker(app, queue_name=BULK).work(burst=True)
    assert job.get_status(refresh=True) == "finished" and get_redis(app).get("guichet:{test}:runs") == "2"
