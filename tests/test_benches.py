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
