"""The fault drill (bench/fault_drill.py) in its quick profile, holding it to its targets:
Redis paused, Redis shut down and restarted, the server SIGKILLed and restarted, while
purchases run; every paid order gets exactly one token, each fault's pending tokens
within 10 s of its end; no hop is ever answered 5xx, and after a Redis outage hops get
screens again within 2 s."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.faults.conftest import ROOT, redis_server_binary


@pytest.mark.slow
def test_the_fault_drill_meets_its_targets(tmp_path):
    figures = tmp_path / "drill.json"
    done = subprocess.run(
        [sys.executable, "bench/fault_drill.py", "--quick", "--max-settle", "20", "--json", str(figures),
         "--redis-server", redis_server_binary()],
        cwd=ROOT, capture_output=True, text=True, timeout=150,
    )
    assert figures.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(figures.read_text())
    summary = done.stdout[-2500:]
    assert report["placed"] >= 20 and report["paid"] >= 20, summary
    assert report["paid_without_token"] == [] and report["duplicates"] == [], summary
    assert report["tokens"] == report["paid"], summary
    assert all(wait is not None and wait <= 10 for wait in report["after_fault"].values()), summary
    # The hops themselves: never a 5xx; a polite END while Redis was away; screens again within 2 s.
    assert report["server_errors"] == 0, summary
    assert all(set(kinds) <= {"con", "end"} and kinds.get("end") for kinds in report["during_outage"].values()), summary
    assert all(wait is not None and wait <= 2 for wait in report["hops_back_after"].values()), summary
    assert report["targets_met"] and done.returncode == 0, summary
