"""A real worker process killed (SIGKILL) while its SMS is at the provider: the message is
never sent a second time, by the next worker or by the sweep. Another process shares
state only through a real Redis, so this runs against the redis-server (always in CI)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import create_app
from sms import outbox
from tests.sms.fixtures import africastalking_config

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.real_redis
def test_a_worker_killed_mid_send_never_sends_twice(real_redis, africastalking_standin):
    config = {**africastalking_config(africastalking_standin), "SMS_SWEEP_EVERY": 0, "SMS_TIMEOUT": 2.0}
    app = create_app({"TESTING": True, "REDIS_CLIENT": real_redis, **config})
    env = {
        **os.environ,
        "GUICHET_SMS_PROVIDER": "africastalking",
        "GUICHET_SMS_SWEEP_EVERY": "0",
        "GUICHET_SMS_TIMEOUT": "2.0",
        **{name: str(config[name]) for name in config if name.startswith("AFRICASTALKING_")},
    }
    command = [sys.executable, "-c", "from app import main; main()", "worker"]
    africastalking_standin.behaviour.next_answers.append("hold")  # the provider takes it, answers late
    message_id = outbox.send(app, "+237699000001", "Code 7361 7999 4422 7615 4395", "order:KILL0001:receipt",
                             "receipt")

    doomed = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: africastalking_standin.received)  # at the provider, the worker awaiting its answer
    finally:
        doomed.kill()
        doomed.wait(10)
    africastalking_standin.release.set()
    assert outbox.load(real_redis, message_id).state == "sending"

    # A healthy worker runs whatever is left: rq's own recovery, duplicate jobs, the sweep.
    outbox.send(app, "+237699000002", "another message", "order:OTHER001:receipt", "receipt")
    subprocess.run(command + ["--burst"], cwd=ROOT, env=env, timeout=120, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with app.app_context():
        outbox.sweep_stale(app, now=time.time() + 3600)
    assert [m.to for m in africastalking_standin.received] == ["+237699000001", "+237699000002"]
    assert outbox.load(real_redis, message_id).state == "unconfirmed"


@pytest.mark.real_redis
def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(real_redis, africastalking_standin):
    """A broadcast's batch of six notices, one rq job: the worker is SIGKILLed while the third
    is at the provider. The sweep and a new worker finish the batch: every phone gets its notice
    once, the third included (never resent: unconfirmed)."""
    config = {**africastalking_config(africastalking_standin), "SMS_SWEEP_EVERY": 0, "SMS_TIMEOUT": 2.0,
              "SMS_RATE_PER_SECOND": 100}
    app = create_app({"TESTING": True, "REDIS_CLIENT": real_redis, **config})
    env = {
        **os.environ,
        "GUICHET_SMS_PROVIDER": "africastalking",
        "GUICHET_SMS_SWEEP_EVERY": "0",
        "GUICHET_SMS_TIMEOUT": "2.0",
        "GUICHET_SMS_RATE_PER_SECOND": "100",
        **{name: str(config[name]) for name in config if name.startswith("AFRICASTALKING_")},
    }
    command = [sys.executable, "-c", "from app import main; main()", "worker"]
    africastalking_standin.then("", "", "hold")  # the third notice: the provider takes it, answers late
    phones = [f"+23769900010{k}" for k in range(6)]
    with app.app_context():
        ids = outbox.send_bulk(None, [outbox.NewSms(phone, "Coupure Douala Nord", f"incident:9:created:{phone}",
                                                     "broadcast") for phone in phones])

    doomed = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(africastalking_standin.received) >= 3)  # the third at the provider
    finally:
        doomed.kill()
        doomed.wait(10)
    africastalking_standin.release.set()
    assert outbox.load(real_redis, ids[2]).state == "sending"
    assert [outbox.load(real_redis, i).state for i in ids[3:]] == ["queued"] * 3  # the dead job's

    with app.app_context():
        swept = outbox.sweep_stale(app, now=time.time() + 3600)
    assert swept.unconfirmed == (ids[2],)
    subprocess.run(command + ["--burst"], cwd=ROOT, env=env, timeout=120, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert sorted(m.to for m in africastalking_standin.received) == phones  # each once
    assert [outbox.load(real_redis, i).state for i in ids] == ["sent"] * 2 + ["unconfirmed"] + ["sent"] * 3
