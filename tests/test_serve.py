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
                "networkCode": "62401", "text": "3*1"}
        answer = urllib.request.urlopen(base + "/ussd/africastalking", data=urllib.parse.urlencode(form).encode(), timeout=5)
        body = answer.read().decode()
        assert body.startswith("CON ") and "1. Compteur 014" in body  # a seeded demo customer's meter, in full
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    log.seek(0)
    output = log.read()
    assert "EMBEDDED in-process store" in output
    assert "seeded with 50 demo customers" in output
    assert "background worker and scheduler running in-process" in output
    assert "periodic tasks: payment-poller, order-sweep" in output
    assert "USSD callbacks of africastalking, hubtel are OPEN to anyone" in output  # and says so


def test_serve_refuses_a_live_provider_without_a_public_url():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "GUICHET_PUBLIC_URL")}
    env.update(GUICHET_SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t",
               TWILIO_FROM="+15005550006")
    for command in (["serve", "--port", str(free_port())], ["worker"]):
        if command == ["worker"]:
            env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # the check comes before any connection
        done = subprocess.run([sys.executable, "-c", "from app import main; main()", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "refusing to start" in done.stderr and "GUICHET_PUBLIC_URL is not set" in done.stderr
