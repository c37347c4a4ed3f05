"""The benchmarks run and report (what they measure is theirs to say; tests time nothing)."""
from __future__ import annotations

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
