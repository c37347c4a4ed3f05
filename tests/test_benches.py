"""The benchmarks run and report (what they measure is theirs to say; tests time nothing)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_orders_bench_pushes_orders_through_the_whole_pipeline():
    done = subprocess.run([sys.executable, "bench/orders.py", "--orders", "3", "--max-seconds", "60"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "receipts sent  3, orders receipt_sent 3\n" in done.stdout
    assert "orders/s end to end" in done.stdout


def test_peer_bench_serves_the_two_floors_and_guichet_and_prints_the_ratios(tmp_path):
    figures = tmp_path / "peers.json"
    done = subprocess.run([sys.executable, "bench/peers.py", "--rounds", "1", "--duration", "1", "--procs", "1",
                           "--threads", "2", "--json", str(figures)], cwd=ROOT, capture_output=True, text=True,
                          timeout=150)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]  # 1: a target missed
    for server in ("bare floor", "redis floor", "guichet"):
        assert f"round 1  {server}" in done.stdout, done.stdout
    assert "vs bare floor" in done.stdout and "vs redis floor" in done.stdout
    [round_one] = [json.loads(line) for line in figures.read_text().splitlines()]
    assert all(round_one[name]["hops"] > 0 and round_one[name]["errors"] == 0
               for name in ("bare floor", "redis floor", "guichet")), round_one


def test_campaign_bench_registers_a_small_population_exactly(tmp_path):
    # 300 registrants arriving at 100/s (the open loop), 30 of them by SMS, for 250 places: every
    # count is checked by the bench itself (exit 1 otherwise); the timing targets are set out of
    # reach of a slow machine.
    figures = tmp_path / "campaign.json"
    done = subprocess.run([sys.executable, "bench/campaign.py", "--customers", "300", "--rate", "100",
                           "--think", "0.05", "--procs", "2", "--quota", "250", "--sms-share", "0.1", "--settle", "60",
                           "--wall-target", "3600", "--p99-target", "60000", "--json", str(figures)],
                          cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "SMS verdicts   30 of 30 SMS registrants answered by SMS" in done.stdout, done.stdout
    assert "admin API      registered 250, refusals {'quota': 50}, remaining quota 0" in done.stdout, done.stdout
    assert "export         250 rows, 250 distinct references, 250 distinct meters" in done.stdout, done.stdout
    assert "targets        met" in done.stdout
    run = json.loads(figures.read_text())
    assert run["verdicts"] == {"accepted": 250, "quota": 50} and run["untold"] == 0, run
    assert (run["registered"], run["distinct_accepted_verdicts"], run["export_distinct_references"]) == (250, 250, 250)
    assert run["refusals"] == {"quota": 50} and run["sms_verdicts"] == 30, run
    assert run["hops"] == 270 * 3 and run["sms_callbacks"] == 30, run  # each USSD registrant: dial, choice, verdict
    assert run["not_200"] == {} and run["failed"] == {} and run["gave_up"] == 0, run
    assert run["mode"] == "open" and run["started"] == 300 and run["in_flight_max"] >= 1, run


def test_broadcast_bench_texts_every_recipient_of_a_small_region_once(tmp_path):
    # 200 customers of the region (a few opted out, some reading English), 2 subscribers and 2
    # customers elsewhere: the bench checks every count itself (exit 1 otherwise).
    figures = tmp_path / "broadcast.json"
    done = subprocess.run([sys.executable, "bench/broadcast.py", "--customers", "200", "--sms-rate", "100",
                           "--bulk-share", "1", "--timeout", "120", "--json", str(figures)],
                          cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "targets        met" in done.stdout
    run = json.loads(figures.read_text())
    assert run["state"] == "done" and 190 <= run["recipients"] <= 202, run
    assert run["exactly_one"] == run["recipients"] == run["sent"] == run["api"]["sent"] == run["api"]["queued"], run
    assert (run["none"], run["more_than_one"], run["wrong_language"], run["to_silent"], run["to_strangers"]) == (
        0, 0, 0, 0, 0), run
    assert run["api"]["opted_out"] == 202 - run["recipients"] and run["sent_per_s"] > 0, run


def test_scale_bench_drives_guichet_and_the_bare_endpoint_without_errors(tmp_path):
    # 20 dialogues in flight for 1 s against each server on one throwaway redis-server: every hop of
    # the six-hop dialogue answered as scripted (the bench exits 1 otherwise); figures are not judged.
    figures = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, "bench/scale.py", "--customers", "200", "--concurrency", "20", "--procs", "1",
                           "--connections", "4", "--warmup", "0.5", "--ramp", "0.2", "--duration", "1",
                           "--json", str(figures)], cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    run = json.loads(figures.read_text())
    assert run["accounts"] == 229 and run["bytes_per_account"] > 0, run
    for name in ("bare", "guichet"):
        server = run["servers"][name]
        assert server["hops"] > 0 and server["not_200"] == {} and server["failed"] == {}, server
    assert run["servers"]["guichet"]["redis_commands_per_hop"] > 0 and "hops_per_s" in run["ratios"], run
