"""`guichet dial` and bench/hops.py against a real HTTP server on 127.0.0.1.

The server is a tiny fake USSD app written here, not Guichet's endpoint: these tests are
about the client (the wire format, the accumulated text, the failures), not the menu.
"""
from __future__ import annotations

import http.server
import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request
from werkzeug.serving import make_server

from ussd.dial import DialError, Phone, Refused, Screen, Transport, Unreachable, dial_command, display

FIELDS = ("sessionId", "serviceCode", "phoneNumber", "networkCode", "text")


def plain(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def fake_ussd(hops: list[dict[str, Any]]) -> Flask:
    """Menu: 1 ends at once; 2 asks for two more inputs then echoes the text it got."""
    app = Flask("fake_ussd")

    @app.post("/ussd/africastalking")
    def hop() -> Response:
        if request.mimetype != "application/x-www-form-urlencoded":
            return plain("expected a form body", 400)
        form = request.form.to_dict()
        missing = [name for name in FIELDS if name not in form]
        if missing:
            return plain(f"missing field: {missing[0]}", 400)
        hops.append(form | {"port": request.environ.get("REMOTE_PORT")})
        text = form["text"]
        first = text.split("*")[0]
        if text == "":
            return plain("CON Menu\n1. Quick\n2. Long")
        if text == "1":
            return plain("END Bye")
        if first == "2":
            depth = len(text.split("*"))
            return plain(f"CON Step {depth}") if depth < 3 else plain(f"END Got {text}")
        if text == "7":
            return plain("Hello there")  # neither CON nor END
        if text == "8":
            return plain("boom", 500)
        return plain(f"unknown choice: {text}\nsecond line is not the reason", 400)

    return app


@pytest.fixture
def hops() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def url(hops: list[dict[str, Any]]) -> Iterator[str]:
    # threaded=True makes werkzeug speak HTTP/1.1 with keep-alive, like a real server.
    server = make_server("127.0.0.1", 0, fake_ussd(hops), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ussd/africastalking"
    server.shutdown()
    thread.join()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A port bound but not listening: connections are refused, and no one can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/ussd/africastalking"
    sock.close()


def dial(url: str, typed: str, *args: str) -> Any:
    return CliRunner().invoke(dial_command, ["--url", url, *args], input=typed)


def texts(hops: list[dict[str, Any]]) -> list[str]:
    return [hop["text"] for hop in hops]


# --- guichet dial ---------------------------------------------------------------------


def test_dialogue_runs_to_end(url: str, hops: list[dict[str, Any]]) -> None:
    result = dial(url, "1\n")
    assert result.exit_code == 0, result.output
    assert "Menu" in result.stdout and "2. Long" in result.stdout
    assert "Bye" in result.stdout
    assert result.stdout.index("Menu") < result.stdout.index("Bye")
    assert texts(hops) == ["", "1"]
    assert result.stderr == ""


def test_text_accumulates_every_input(url: str, hops: list[dict[str, Any]]) -> None:
    result = dial(url, "2\n5\n7\n")
    assert result.exit_code == 0, result.output
    assert texts(hops) == ["", "2", "2*5", "2*5*7"]
    assert "Got 2*5*7" in result.stdout
    assert "> 5\n" in result.stdout  # piped answers are echoed into the transcript
    assert len({hop["sessionId"] for hop in hops}) == 1
    assert {(hop["phoneNumber"], hop["serviceCode"], hop["networkCode"]) for hop in hops} == {
        ("+237699000001", "*384#", "62401")
    }


def test_options_reach_the_server_as_given(url: str, hops: list[dict[str, Any]]) -> None:
    result = dial(url, "1\n", "--code", "*384*5#", "--phone", "+24107000003", "--network", "62801")
    assert result.exit_code == 0, result.output
    assert hops[0]["serviceCode"] == "*384*5#"  # shortcuts included, as-is
    assert hops[0]["phoneNumber"] == "+24107000003"
    assert hops[0]["networkCode"] == "62801"


def test_each_dial_is_a_new_session(url: str, hops: list[dict[str, Any]]) -> None:
    dial(url, "1\n")
    dial(url, "1\n")
    assert hops[0]["sessionId"] != hops[2]["sessionId"]


def test_refusal_prints_the_reason(url: str, hops: list[dict[str, Any]]) -> None:
    result = dial(url, "9\n")
    assert result.exit_code == 1
    assert "Refused (HTTP 400): unknown choice: 9" in result.stderr
    assert "second line" not in result.output


def test_an_answer_that_is_not_con_or_end_is_shown(url: str) -> None:
    result = dial(url, "7\n")
    assert result.exit_code == 1
    assert "Not a USSD answer (HTTP 200)" in result.stderr
    assert "Hello there" in result.stderr


def test_a_server_error_stops_the_dialogue(url: str) -> None:
    result = dial(url, "8\n")
    assert result.exit_code == 1
    assert "HTTP 500" in result.stderr and "boom" in result.stderr


def test_no_server_says_how_to_start_one(dead_url: str) -> None:
    result = dial(dead_url, "1\n")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"No server answers at {dead_url}")
    assert "make run" in lines[0]
    assert "Traceback" not in result.output


def test_end_of_input_hangs_up_quietly(url: str, hops: list[dict[str, Any]]) -> None:
    result = dial(url, "")
    assert result.exit_code == 0
    assert "Menu" in result.stdout
    assert result.stderr == ""
    assert texts(hops) == [""]


def test_ctrl_c_hangs_up(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupted)
    result = dial(url, "")
    assert result.exit_code == 130
    assert "Hung up" in result.stderr


def test_a_bad_url_is_a_usage_error() -> None:
    result = dial("ftp://127.0.0.1/ussd", "")
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.output


def test_display_wraps_long_lines_inside_the_frame() -> None:
    drawn = display(Screen("CON", "word " * 30 + "\n1. Next"))
    lines = drawn.splitlines()
    assert lines[0].startswith("+-- CON ")
    assert len({len(line) for line in lines}) == 1  # a closed rectangle
    assert any("1. Next" in line for line in lines)


# --- the Phone API ----------------------------------------------------------------------


def test_phone_walks_a_session(url: str, hops: list[dict[str, Any]]) -> None:
    phone = Phone(url)
    try:
        assert phone.start() == Screen("CON", "Menu\n1. Quick\n2. Long")
        assert phone.send("2") == Screen("CON", "Step 1")
        assert phone.send("4") == Screen("CON", "Step 2")
        last = phone.send("6")
    finally:
        phone.close()
    assert last == Screen("END", "Got 2*4*6") and last.ended
    assert phone.text == "2*4*6"
    assert len({hop["sessionId"] for hop in hops}) == 1


def test_phone_refuses_to_send_out_of_turn(url: str) -> None:
    phone = Phone(url)
    with pytest.raises(DialError, match="dial first"):
        phone.send("1")
    phone.start()
    phone.send("1")
    with pytest.raises(DialError, match="over"):
        phone.send("2")
    phone.close()


def test_a_refused_input_is_not_kept(url: str, hops: list[dict[str, Any]]) -> None:
    phone = Phone(url)
    phone.start()
    with pytest.raises(Refused) as refused:
        phone.send("9")
    assert refused.value.reason == "unknown choice: 9"
    assert phone.send("1").ended
    assert texts(hops) == ["", "9", "1"]  # not "9*1": the refused input was dropped
    phone.close()


def test_no_server_raises_unreachable(dead_url: str) -> None:
    with pytest.raises(Unreachable):
        Phone(dead_url).start()


class KeepsAlive(http.server.BaseHTTPRequestHandler):
    """A server that keeps connections alive (werkzeug's never does) and notes client ports."""

    protocol_version = "HTTP/1.1"
    ports: list[int]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.ports.append(self.client_address[1])
        body = b"CON ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ClosesSilently(KeepsAlive):
    """Answers as if keeping the connection alive, then closes it, as idle timeouts do."""

    def do_POST(self) -> None:
        super().do_POST()
        self.close_connection = True


@contextmanager
def raw_server(handler: type[KeepsAlive]) -> Iterator[tuple[Transport, list[int]]]:
    ports: list[int] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (handler,), {"ports": ports}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    transport = Transport(f"http://127.0.0.1:{server.server_port}/ussd")
    try:
        yield transport, ports
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
        thread.join()


def test_hops_share_one_kept_alive_connection() -> None:
    with raw_server(KeepsAlive) as (transport, ports):
        for _ in range(3):
            assert transport.post({"text": ""}) == (200, "CON ok")
    assert len(ports) == 3 and len(set(ports)) == 1


def test_a_connection_closed_while_idle_is_reopened() -> None:
    with raw_server(ClosesSilently) as (transport, ports):
        assert transport.post({"text": ""}) == (200, "CON ok")
        assert transport.post({"text": ""}) == (200, "CON ok")  # re-sent on a new connection
    assert len(ports) == 2 and len(set(ports)) == 2


# --- bench/hops.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hops_bench() -> ModuleType:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "hops.py"
    spec = importlib.util.spec_from_file_location("bench_hops", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/ussd/africastalking", True),
        ("http://127.8.9.10/", True),
        ("http://localhost:8000/", True),
        ("http://[::1]:8000/", True),
        ("http://10.0.0.5:8000/", False),
        ("https://api.example.com/ussd", False),
        ("http://127.0.0.1.example.com/", False),
        ("not a url", False),
    ],
)
def test_loopback_guard(hops_bench: ModuleType, url: str, loopback: bool) -> None:
    assert hops_bench.is_loopback(url) is loopback


def test_bench_refuses_a_remote_url(hops_bench: ModuleType) -> None:
    result = CliRunner().invoke(hops_bench.main, ["--url", "http://10.0.0.5:8000/ussd/africastalking"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_bench_runs_dialogues_and_reports(hops_bench: ModuleType, url: str, hops: list[dict[str, Any]]) -> None:
    args = ["--url", url, "--dialogues", "30", "--concurrency", "4", "--script", "2,5,7", "--warmup", "2"]
    result = CliRunner().invoke(hops_bench.main, args)
    assert result.exit_code == 0, result.output
    assert "dialogues  30 of 30   END 30" in result.stdout
    assert "hops       120 in" in result.stdout and "hops/s" in result.stdout
    assert "median" in result.stdout and "p99" in result.stdout
    assert "errors     0" in result.stdout
    # 3 demo phones, 4 threads asked: one thread per phone, and no phone in two sessions.
    assert "threads 3" in result.stdout
    assert len(hops) == (30 + 2) * 4
    by_session: dict[str, list[str]] = {}
    for hop in hops:
        by_session.setdefault(hop["sessionId"], []).append(hop["text"])
    assert len(by_session) == 32
    assert all(seen == ["", "2", "2*5", "2*5*7"] for seen in by_session.values())
    assert overlapping_sessions(hops, last_text="2*5*7") == []


def overlapping_sessions(hops: list[dict[str, Any]], last_text: str) -> list[str]:
    """Sessions that opened while another session of the same phone was still going."""
    going: dict[str, str] = {}
    overlaps = []
    for hop in hops:  # in the order the server took them
        phone, session = hop["phoneNumber"], hop["sessionId"]
        if hop["text"] == "" and going.get(phone, session) != session:
            overlaps.append(session)
        going[phone] = session
        if hop["text"] == last_text:
            del going[phone]
    return overlaps


def test_bench_counts_errors_and_fails(hops_bench: ModuleType, url: str) -> None:
    args = ["--url", url, "--dialogues", "5", "--concurrency", "1", "--script", "9", "--warmup", "0"]
    result = CliRunner().invoke(hops_bench.main, args)
    assert result.exit_code == 1
    assert "errors     5" in result.stdout
    assert "HTTP 400: unknown choice: 9" in result.stdout


def test_bench_reports_a_script_that_ends_early(hops_bench: ModuleType, url: str) -> None:
    args = ["--url", url, "--dialogues", "4", "--script", "1,2", "--warmup", "0"]
    result = CliRunner().invoke(hops_bench.main, args)
    assert "ended early 4" in result.stdout


def test_bench_without_a_server_says_so(hops_bench: ModuleType, dead_url: str) -> None:
    result = CliRunner().invoke(hops_bench.main, ["--url", dead_url])
    assert result.exit_code == 1
    assert "No server answers" in result.stderr and "make run" in result.stderr
