"""`guichet serve` (what `make run` starts) as a newcomer gets it: no Redis server,
embedded store, demo customers seeded, worker beside the web app."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_runs_on_the_embedded_store_with_demo_customers(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["GUICHET_DEMO_CUSTOMERS"] = "50"
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-c", "from app import main; main()", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(base + "/readyz", timeout=1).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        form = {"sessionId": "smoke", "serviceCode": "*384#", "phoneNumber": "+237699000002",
                "networkCode": "62401", "text": "5*1"}
        answer = urllib.request.urlopen(base + "/ussd/africastalking", data=urllib.parse.urlencode(form).encode(), timeout=5)
        body = answer.read().decode()
        assert body.startswith("CON ") and "Compteur ****" in body  # a seeded demo customer
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    log.seek(0)
    output = log.read()
    assert "EMBEDDED in-process store" in output
    assert "seeded with 50 demo customers" in output
    assert "background worker and scheduler running in-process" in output
