"""Fulfilment: every accepted registration gets its credit and one SMS, at the SMS provider's
pace, and a job run twice or killed half way never gives or texts anything twice."""
from __future__ import annotations

import datetime
import time
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from sms import outbox
from state import journal, keys, switches, worker
from state.store import get_redis
from tests.campaigns.conftest import AMINA, JEAN, JEAN_METER, ODILE, OPEN, SYLVIE, definition
from utility.campaigns import jobs
from utility.campaigns.service import Campaigns
from utility.customers import Account, RedisCustomerBase
from utility.meters import with_check_digit
from utility.services import services

XAF = {"kind": "xaf", "amount": 5000}


def fulfilment_round(app: Flask, now: float | None = None) -> list[dict[str, int]]:
    """What the background does in a second: the pump's round, then the bulk worker runs the
    fulfilment jobs it queued (the SMS deliveries stay queued: the outbox's business)."""
    now = time.time() if now is None else now
    jobs.pump(app, now=now)
    bulk = worker.queue(app, worker.BULK_QUEUE_NAME)
    results = []
    for job in bulk.jobs:
        if job.func_name == "utility.campaigns.jobs.fulfil":
            bulk.remove(job)
            with app.app_context():
                results.append(job.func(*job.args))
    return results


def sms_for(app: Flask, reference: str) -> list[outbox.Message]:
    """Every SMS queued for a reference (the outbox keeps one per reference: at most one)."""
    queued = [e for e in journal.read(get_redis(app), 10_000) if e["kind"] == "sms.queued" and e["reference"] == reference]
    found = outbox.find(get_redis(app), reference)
    assert len(queued) == (1 if found else 0)
    return [found] if found else []


def vends_of(app: Flask, meter: str) -> list[str]:
    return get_redis(app).lrange(keys.meter_vends(meter), 0, -1)


def register(campaigns: Campaigns, account: Account, code: str = "GRATUIT") -> str:
    verdict = campaigns.register(code, account.meter_number or account.account_number, account.phone, "ussd", "fr",
                                 now=OPEN)
    assert verdict.accepted, verdict
    return verdict.reference


def test_a_prepaid_meter_gets_its_token_by_sms_once_even_if_the_job_runs_twice(
    app: Flask, campaigns: Campaigns
) -> None:
    campaigns.create(definition())
    reference = register(campaigns, JEAN)
    assert fulfilment_round(app) == [{"fulfilled": 1}]

    key = f"campaign:GRATUIT:{reference}"
    assert vends_of(app, JEAN_METER) == [key]
    [sms] = sms_for(app, key)
    assert (sms.to, sms.kind) == (JEAN.phone, "campaign")
    assert sms.body.startswith("Code: ")
    assert f"Compteur {JEAN_METER}\nCrédit gratuit: 50 kWh" in sms.body and f"réf {reference}" in sms.body

    with app.app_context():  # the same job again: a duplicate delivery, a retry
        assert jobs.fulfil("GRATUIT", [reference]) == {"fulfilled": 1}  # found fulfilled already
    assert vends_of(app, JEAN_METER) == [key] and len(sms_for(app, key)) == 1
    stats = campaigns.stats("GRATUIT")
    assert (stats["fulfilled"], stats["failed"], stats["fulfilment"]["to_do"]) == (1, 0, 0)
    assert campaigns.registration("GRATUIT", reference).state == "fulfilled"  # type: ignore[union-attr]


class Killed(BaseException):
    """SIGKILL: nothing after it runs, no except clause sees it."""


def test_a_postpaid_account_gets_a_credit_on_its_bill_once(
    app: Flask, campaigns: Campaigns, base: RedisCustomerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaigns.create(definition(benefit=XAF))
    reference = register(campaigns, SYLVIE)

    def die(*args: Any, **kwargs: Any) -> bool:
        raise Killed()

    # Killed after the credit and its SMS, before the state moved: the job runs again.
    monkeypatch.setattr(campaigns, "finish", die)
    with pytest.raises(Killed):
        fulfilment_round(app)
    monkeypatch.undo()
    with app.app_context():
        assert jobs.fulfil("GRATUIT", [reference]) == {"fulfilled": 1}
        assert jobs.fulfil("GRATUIT", [reference]) == {"fulfilled": 1}  # and again: found done
    assert base.account(SYLVIE.account_number).balance_due == 27_300 - 5_000  # type: ignore[union-attr]
    [sms] = sms_for(app, f"campaign:GRATUIT:{reference}")
    assert sms.body == (f"GRATUIT: 5 000 FCFA offerts déduits du compte GA-1000005, réf {reference}. "
                        "Reste à payer: 22 300 FCFA.")
    assert campaigns.stats("GRATUIT")["fulfilled"] == 1  # counted once


def test_money_on_a_prepaid_meter_is_what_it_buys_decided_once(app: Flask, campaigns: Campaigns) -> None:
    campaigns.create(definition(benefit=XAF))
    reference = register(campaigns, JEAN)
    with app.app_context():
        quoted = services(app).vending.quote(JEAN_METER, 5000).units
    fulfilment_round(app)
    assert get_redis(app).hget(keys.campaign_units("GRATUIT"), reference) == str(quoted)
    [sms] = sms_for(app, f"campaign:GRATUIT:{reference}")
    assert f"Crédit gratuit: {str(quoted).replace('.', ',')} kWh" in sms.body


def test_a_job_killed_half_way_resumes_without_doing_anything_twice(
    app: Flask, campaigns: Campaigns, base: RedisCustomerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = [Account(f"CM-30000{i}", with_check_digit(f"030000000{i}"), f"Client {i}", f"+23769930000{i}", "Centre",
                     "prepaid", 0, None) for i in range(3)]
    base.upsert(crowd)
    campaigns.create(definition())
    references = [register(campaigns, account) for account in crowd]

    real_send_bulk = outbox.send_bulk

    def one_then_die(app: Flask | None, messages: list[outbox.NewSms]) -> list[str]:
        # The chunk's tokens are made, then its SMS queued together: the worker is killed once
        # the first of them is.
        real_send_bulk(app, messages[:1])
        raise Killed()

    monkeypatch.setattr(outbox, "send_bulk", one_then_die)
    start = time.time()
    with pytest.raises(Killed):
        fulfilment_round(app, now=start)
    monkeypatch.setattr(outbox, "send_bulk", real_send_bulk)
    states = [campaigns.registration("GRATUIT", r).state for r in references]  # type: ignore[union-attr]
    assert states == ["pending", "pending", "pending"]  # the SMS before the states: none finished
    assert [len(vends_of(app, account.meter_number)) for account in crowd] == [1, 1, 1]  # made before the kill
    assert campaigns.stats("GRATUIT")["fulfilment"]["in_flight"] == 3

    assert fulfilment_round(app, now=start + 10) == []  # still held by the dead job
    assert fulfilment_round(app, now=start + jobs.HOLD + 1) == [{"fulfilled": 3}]  # handed out again
    for account, reference in zip(crowd, references, strict=True):
        key = f"campaign:GRATUIT:{reference}"
        assert vends_of(app, account.meter_number) == [key]  # one token each
        assert len(sms_for(app, key)) == 1  # one SMS each
    stats = campaigns.stats("GRATUIT")
    assert (stats["fulfilled"], stats["fulfilment"]["to_do"], stats["fulfilment"]["in_flight"]) == (3, 0, 0)


def test_a_backend_down_is_tried_again_later(app: Flask, campaigns: Campaigns) -> None:
    campaigns.create(definition())
    reference = register(campaigns, JEAN)
    switches.set_down(get_redis(app), "vending", True)
    start = time.time()
    assert fulfilment_round(app, now=start) == [{"retry": 1}]
    assert campaigns.registration("GRATUIT", reference).state == "pending"  # type: ignore[union-attr]
    switches.set_down(get_redis(app), "vending", False)
    assert fulfilment_round(app, now=start + 10) == []  # not before its time
    assert fulfilment_round(app, now=time.time() + jobs.RETRY_AFTER + 1) == [{"fulfilled": 1}]


def test_each_retry_waits_longer_by_the_one_backoff(app: Flask, campaigns: Campaigns, monkeypatch) -> None:
    from utility import calls

    campaigns.create(definition())
    reference = register(campaigns, JEAN)
    switches.set_down(get_redis(app), "vending", True)
    start = time.time()
    assert fulfilment_round(app, now=start) == [{"retry": 1}]
    monkeypatch.setattr(calls, "jitter", lambda: 0.0)
    delays = [campaigns.retry_later("GRATUIT", reference, jobs.RETRY_AFTER, jobs.RETRY_CAP) for _ in range(8)]
    assert delays == [calls.backoff(attempt, jobs.RETRY_AFTER, jobs.RETRY_CAP) for attempt in range(2, 10)]
    assert delays[0] == jobs.RETRY_AFTER and delays[-1] == jobs.RETRY_CAP / 2
    assert get_redis(app).hget(keys.campaign_retries("GRATUIT"), reference) == "9"


def test_what_cannot_be_served_fails_with_its_reason_and_the_customer_is_told(
    app: Flask, campaigns: Campaigns
) -> None:
    campaigns.create(definition(eligibility={"tariffs": ["prepaid", "social", "water"]}))
    with app.app_context():
        services(app).vending.block(AMINA.meter_number, "tampering")  # type: ignore[attr-defined]
    blocked, water = register(campaigns, AMINA), register(campaigns, ODILE)  # kWh for a water meter
    assert fulfilment_round(app) == [{"failed": 2}]
    assert campaigns.registration("GRATUIT", blocked).reason == "meter_blocked"  # type: ignore[union-attr]
    assert campaigns.registration("GRATUIT", water).reason == "wrong_utility"  # type: ignore[union-attr]
    [sms] = sms_for(app, f"campaign:GRATUIT:{blocked}:failed")
    assert sms.body == (f"GRATUIT réf {blocked}: nous n'avons pas pu créditer le compteur {AMINA.meter_number}. "
                        "Appelez votre agence.")
    assert vends_of(app, ODILE.meter_number) == []
    assert campaigns.stats("GRATUIT")["failed"] == 2


def test_the_pump_keeps_to_the_bulk_share_of_the_sms_rate(app: Flask, campaigns: Campaigns,
                                                          base: RedisCustomerBase) -> None:
    crowd = [Account(f"CM-4{i:05d}", with_check_digit(f"04{i:08d}"), f"Client {i}", f"+2376994{i:05d}", "Centre",
                     "prepaid", 0, None) for i in range(12)]
    base.upsert(crowd)
    campaigns.create(definition())
    for account in crowd:
        register(campaigns, account)
    assert jobs.per_round(app) == 5  # 10 SMS a second, half of them for bulk
    now = time.time()
    assert [jobs.pump(app, now=now + second) for second in range(4)] == [5, 5, 2, 0]
    bulk = worker.queue(app, worker.BULK_QUEUE_NAME)
    assert sorted(len(job.args[1]) for job in bulk.jobs) == [2, 5, 5]


def test_progress_and_expected_end(app: Flask, campaigns: Campaigns, base: RedisCustomerBase) -> None:
    crowd = [Account(f"CM-5{i:05d}", with_check_digit(f"05{i:08d}"), f"Client {i}", f"+2376995{i:05d}", "Centre",
                     "prepaid", 0, None) for i in range(4)]
    base.upsert(crowd)
    campaigns.create(definition())
    references = [register(campaigns, account) for account in crowd]
    for reference in references[:3]:
        assert jobs.fulfil_one(app, "GRATUIT", reference) == "fulfilled"
    now = datetime.datetime.now(datetime.UTC)
    progress = campaigns.stats("GRATUIT", now)["fulfilment"]
    assert (progress["to_do"], progress["progress"]) == (1, 0.75)
    assert progress["per_minute"] > 0
    end = datetime.datetime.fromisoformat(progress["expected_end"])
    assert now < end < now + datetime.timedelta(minutes=5)


def test_nothing_to_do_costs_nothing(app: Flask, campaigns: Campaigns) -> None:
    assert jobs.pump(app) == 0
    campaigns.create(definition())
    assert jobs.pump(app) == 0
    assert Decimal(campaigns.get("GRATUIT").benefit.amount) == 50  # type: ignore[union-attr]
