"""GET /metrics, as Prometheus scrapes it: what the service did (hops, sessions, outside
calls, orders, SMS, payments, campaign verdicts) counted by the processes that did it, and
what stands in Redis now (breakers, queues, orders open and waiting, campaign counts) read at
the scrape. Counters are process-wide, so each test reads what changed while it ran."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from state import keys, switches, worker
from tests.ussd.conftest import ONE_METER, POSTPAID_ONLY, customers, dial  # noqa: F401 (fixtures)
from utility import calls
from utility.payments.base import SUCCESSFUL, PaymentResult
from utility.services import services

ROOT = Path(__file__).resolve().parents[1]


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"  # Prometheus' text format (version=0.0.4)
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True)) for sample in family.samples}


def value(figures, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_hops_by_gateway_screen_and_outcome_and_their_latency(client, dial):  # noqa: F811
    before = scrape(client)
    phone = dial(ONE_METER)
    phone.send("3").send("0")  # my account, back
    phone.post("*".join(phone.inputs))  # the gateway retries the last hop: answered again
    after = scrape(client)
    hops = "guichet_ussd_hops_total"
    assert value(after, hops, gateway="africastalking", screen="main", outcome="continue") - value(
        before, hops, gateway="africastalking", screen="main", outcome="continue") == 2
    assert value(after, hops, gateway="africastalking", screen="account_menu", outcome="continue") - value(
        before, hops, gateway="africastalking", screen="account_menu", outcome="continue") == 1
    assert value(after, hops, gateway="africastalking", screen="none", outcome="replayed") - value(
        before, hops, gateway="africastalking", screen="none", outcome="replayed") == 1
    count = "guichet_ussd_hop_seconds_count"
    assert value(after, count, gateway="africastalking") - value(before, count, gateway="africastalking") == 4
    started = "guichet_ussd_sessions_total"
    assert value(after, started, event="started") - value(before, started, event="started") == 1


def test_a_bad_callback_is_counted_as_such(client):
    before = scrape(client)
    assert client.post("/ussd/africastalking", data={"sessionId": "x"}).status_code == 400
    after = scrape(client)
    labels = {"gateway": "africastalking", "screen": "none", "outcome": "bad_callback"}
    assert value(after, "guichet_ussd_hops_total", **labels) - value(before, "guichet_ussd_hops_total", **labels) == 1


def test_sessions_completed_and_abandoned_from_the_session_end_report(client):
    before = scrape(client)
    for status in ("Success", "Incomplete", "Failed"):
        form = {"sessionId": "ATUid_1", "phoneNumber": ONE_METER, "status": status, "serviceCode": "*384#"}
        assert client.post("/ussd/africastalking/events", data=form).status_code == 200
    after = scrape(client)
    sessions = "guichet_ussd_sessions_total"
    assert value(after, sessions, event="completed") - value(before, sessions, event="completed") == 1
    assert value(after, sessions, event="abandoned") - value(before, sessions, event="abandoned") == 2


def test_an_order_its_payment_its_sms_and_the_outside_calls(app, client, dial):  # noqa: F811
    before = scrape(client)
    dial(ONE_METER).send("1").send("5000").send("1").send("1").send("1")  # buy, pay, confirm
    (order,) = services(app).orders.recent(ONE_METER, count=1)
    services(app).orders.on_payment_result(
        PaymentResult(order.provider, order.provider_ref, order.reference, SUCCESSFUL))
    services(app).orders.fulfil(order.reference)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("guichet_order_transitions_total", kind="units", state="payment_pending") == 1
    assert delta("guichet_order_transitions_total", kind="units", state="paid") == 1
    assert delta("guichet_order_transitions_total", kind="units", state="receipt_sent") == 1
    assert delta("guichet_payment_results_total", provider="demo", result="successful") == 1
    assert delta("guichet_sms_total", provider="console", status="queued") >= 1  # the token receipt
    assert delta("guichet_outside_calls_total", system="payments:demo", outcome="ok") == 1  # the request
    assert delta("guichet_outside_calls_total", system="vending", outcome="ok") >= 2  # confirm, quote, vend
    assert delta("guichet_outside_call_seconds_count", system="vending") >= 2


def test_what_stands_in_redis_is_read_at_the_scrape(app, client, fake_redis):
    built = services(app)
    seam = calls.seam(app)
    seam.breaker("vending").open()
    fake_redis.zadd(keys.open_orders(), {"ORDER001": 1.0, "ORDER002": 2.0})
    fake_redis.sadd(keys.waiting_orders(), "ORDER002")
    worker.queue(app).enqueue("utility.services.fulfil_job", "ORDER002")
    figures = scrape(client)
    assert value(figures, "guichet_breaker_state", system="vending") == 2
    assert value(figures, "guichet_breaker_state", system="billing") == 0
    assert value(figures, "guichet_orders_open") == 2 and value(figures, "guichet_orders_waiting") == 1
    assert value(figures, "guichet_queue_jobs", queue=worker.QUEUE_NAME) == 1
    assert value(figures, "guichet_queue_oldest_job_age_seconds", queue=worker.QUEUE_NAME) >= 0
    assert value(figures, "guichet_queue_jobs", queue=worker.BULK_QUEUE_NAME) == 0
    assert built.payments.name == "demo"
    switches.forget_services(app)


def test_campaign_registrations_and_refusals_by_reason(app, client, dial):  # noqa: F811
    campaigns = services(app).campaigns
    campaigns.create({"code": "GRATUIT", "name": {"fr": "Crédit gratuit", "en": "Free credit"},
                      "starts_at": "2020-01-01T00:00", "ends_at": "2099-12-31T00:00",
                      "benefit": {"kind": "kwh", "amount": 20}, "eligibility": {"tariffs": ["prepaid"]}})
    before = scrape(client)
    dial(ONE_METER).send("4").send("1")  # free credits: my meter
    dial(POSTPAID_ONLY).send("4").send("1")  # a postpaid account: not eligible
    after = scrape(client)
    assert value(after, "guichet_campaign_registrations_total", campaign="GRATUIT") == 1
    refused = [(labels, count) for (name, labels), count in after.items()
               if name == "guichet_campaign_refusals_total" and count]
    assert refused == [((("campaign", "GRATUIT"), ("reason", "tariff")), 1.0)], refused
    verdicts = "guichet_campaign_verdicts_total"
    assert value(after, verdicts, campaign="GRATUIT", channel="ussd", verdict="accepted") - value(
        before, verdicts, campaign="GRATUIT", channel="ussd", verdict="accepted") == 1


def test_redis_away_the_scrape_still_answers_with_what_the_processes_counted(app, client, monkeypatch):
    import redis

    def down(*args, **kwargs):
        raise redis.ConnectionError("Redis is away")

    monkeypatch.setattr(calls.Seam, "read", down)
    figures = scrape(client)
    assert not any(name == "guichet_breaker_state" for name, _ in figures)
    assert any(name == "guichet_orders_open" for name, _ in figures)  # the other groups were read


# The process `guichet serve` starts in: the console script imports app (and prometheus-client
# with it), then main() chooses the folder; it counts too (its background worker's jobs).
SUPERVISOR = textwrap.dedent("""
    import app
    app.count_across_processes()
    from state import metrics
    metrics.hop("africastalking", "main", "continue")
""")
# A serving process granian spawns: the folder comes with the environment.
SERVING = textwrap.dedent("""
    import app
    from state import metrics
    metrics.hop("africastalking", "main", "continue")
""")


def test_under_guichet_serve_every_process_counts_into_one_folder(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    (tmp_path / "counter_1.db").write_bytes(b"a previous run's")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for code in (SUPERVISOR, SERVING, SERVING):
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert not (tmp_path / "counter_1.db").exists()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    figures = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for sample in family.samples}
    assert value(figures, "guichet_ussd_hops_total", gateway="africastalking", screen="main",
                 outcome="continue") == 3


def test_only_this_machine_scrapes_without_a_token_and_anyone_with_it(app, client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 403
    app.config["METRICS_TOKEN"] = "s3cret-metrics-token"
    assert client.get("/metrics").status_code == 403  # even here: the token is the rule now
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    answer = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"},
                        environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert answer.status_code == 200 and b"guichet_ussd_hops_total" in answer.data
