"""A handset in the terminal: `guichet dial` talks to a running Guichet over HTTP the
way Africa's Talking does (form POSTs, `text` accumulating every input joined by `*`).

`Phone` is the client; the CLI and bench/hops.py both drive it, so what the benchmark
measures is exactly what a developer sees when dialling by hand.
"""
from __future__ import annotations

import http.client
import secrets
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import urlencode, urlsplit

import click

if TYPE_CHECKING:
    from flask import Flask

DEFAULT_URL = "http://127.0.0.1:8000/ussd/africastalking"
DEFAULT_PHONE = "+237699000001"
DEFAULT_CODE = "*384#"
DEFAULT_NETWORK = "62401"  # MTN Cameroon
# Africa's Talking gives up on an answer after about 15 s: a slower one is a dead session.
DEFAULT_TIMEOUT = 15.0
# Handsets wrap long lines; wrapping here keeps the drawn display inside a terminal.
DISPLAY_WIDTH = 40

Kind = Literal["CON", "END"]


@dataclass(frozen=True)
class Screen:
    """One answer as the handset sees it: CON waits for input, END closes the session."""

    kind: Kind
    text: str

    @property
    def ended(self) -> bool:
        return self.kind == "END"


class DialError(Exception):
    """The session cannot go on; the message says why in one line."""


class Unreachable(DialError):
    """Nothing accepts a connection at the URL (no server, wrong port or host)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(f"no server answers at {url} ({cause})")
        self.url = url
        self.cause = cause


class Refused(DialError):
    """HTTP 400: the server refused the callback and said why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused (HTTP 400): {reason}")
        self.reason = reason


class BadAnswer(DialError):
    """Anything but HTTP 200 `CON ...`/`END ...`: a real handset would drop the session."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"not a USSD answer (HTTP {status}): {body.strip()[:200]!r}")
        self.status = status
        self.body = body


class _StaleConnection(DialError):
    """A kept-alive connection was closed by the server before this hop: send it again."""


_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}


def new_session_id() -> str:
    # Shaped like Africa's Talking's ids, random so that runs never collide on a server
    # that still holds sessions from a previous run.
    return "ATUid_" + secrets.token_hex(16)


class Transport:
    """One keep-alive HTTP connection to one URL; not thread-safe (one per thread)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.timeout = timeout
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn: http.client.HTTPConnection | None = None

    def post(self, fields: Mapping[str, str]) -> tuple[int, str]:
        """POST ``fields`` form-encoded; the status and the body decoded as UTF-8."""
        body = urlencode(fields)
        try:
            return self._exchange(body)
        except _StaleConnection:
            # The server closed an idle keep-alive connection. Re-sending the hop on a
            # fresh one is safe: a hop is idempotent by the protocol (gateways retry).
            return self._exchange(body)

    def _exchange(self, body: str) -> tuple[int, str]:
        conn, reused = self._connected()
        try:
            conn.request("POST", self._path, body, _HEADERS)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError as exc:
            self.close()
            raise DialError(f"no answer from {self.url} within {self.timeout:g} s") from exc
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if reused:
                raise _StaleConnection(str(exc)) from exc
            raise DialError(f"{self.url} dropped the connection ({exc})") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise DialError(f"HTTP exchange with {self.url} failed ({exc})") from exc
        return response.status, data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connected(self) -> tuple[http.client.HTTPConnection, bool]:
        """The connection, opened if needed, and whether it had already served a hop."""
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        # http.client drops the socket after a `Connection: close` answer; connecting
        # here, not inside request(), tells "no server" apart from a failed exchange.
        if self._conn.sock is not None:
            return self._conn, True
        try:
            self._conn.connect()
        except OSError as exc:
            self.close()
            raise Unreachable(self.url, exc) from exc
        return self._conn, False


def parse_answer(status: int, body: str) -> Screen:
    if status == 400:
        reason = body.strip().splitlines()[0] if body.strip() else "(no reason given)"
        raise Refused(reason)
    if status != 200:
        raise BadAnswer(status, body)
    kind = body[:3]
    if kind not in ("CON", "END") or body[3:4] not in ("", " "):
        raise BadAnswer(status, body)
    return Screen(cast(Kind, kind), body[4:])


class Phone:
    """One USSD session seen from the handset: `start()`, then `send(input)` per screen."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        phone: str = DEFAULT_PHONE,
        code: str = DEFAULT_CODE,
        network: str = DEFAULT_NETWORK,
        *,
        session_id: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.url = url
        self.phone = phone
        self.code = code  # sent as-is: a dial string with shortcuts (*384*5#) included
        self.network = network
        self.session_id = session_id or new_session_id()
        self.inputs: list[str] = []
        self.screen: Screen | None = None
        # A borrowed transport (the bench's per-thread connection) is not ours to close.
        self._owns_transport = transport is None
        self.transport = transport or Transport(url)

    @property
    def text(self) -> str:
        """The `text` field of the next hop: every input so far joined by `*`."""
        return "*".join(self.inputs)

    def start(self) -> Screen:
        """The first hop (text ""): the screen shown right after dialling."""
        if self.screen is not None:
            raise DialError("this session has already started")
        return self._hop()

    def send(self, answer: str) -> Screen:
        """Answer the current screen with what the customer typed; the next screen."""
        if self.screen is None:
            raise DialError("dial first: start() sends the opening hop")
        if self.screen.ended:
            raise DialError("the session is over")
        self.inputs.append(answer)
        try:
            return self._hop()
        except DialError:
            # No screen came back, so the handset is still on the previous one: sending
            # the same answer again must repeat this hop's text (a retry), not extend it.
            self.inputs.pop()
            raise

    def close(self) -> None:
        if self._owns_transport:
            self.transport.close()

    def _hop(self) -> Screen:
        status, body = self.transport.post(
            {
                "sessionId": self.session_id,
                "serviceCode": self.code,
                "phoneNumber": self.phone,
                "networkCode": self.network,
                "text": self.text,
            }
        )
        self.screen = parse_answer(status, body)
        return self.screen


def display(screen: Screen) -> str:
    """The screen drawn as a phone display, ASCII only so any terminal shows it."""
    lines: list[str] = []
    for line in screen.text.rstrip().splitlines() or [""]:
        lines.extend(textwrap.wrap(line, DISPLAY_WIDTH) or [""])
    width = max(DISPLAY_WIDTH, *(len(line) for line in lines))
    top = f"+-- {screen.kind} ".ljust(width + 3, "-") + "+"
    body = [f"| {line.ljust(width)} |" for line in lines]
    return "\n".join([top, *body, "+" + "-" * (width + 2) + "+"])


def read_input() -> str | None:
    """A line typed at the prompt; None at end of input (Ctrl-D, or a piped file ran out)."""
    try:
        typed = input("> ").strip()
    except EOFError:
        return None
    if not sys.stdin.isatty():
        click.echo(typed)  # piped answers are not echoed by a terminal: keep the transcript readable
    return typed


def converse(phone: Phone) -> int:
    """Run the dialogue on the terminal; the process exit code."""
    try:
        screen = phone.start()
        while True:
            click.echo(display(screen))
            if screen.ended:
                return 0
            typed = read_input()
            if typed is None:
                click.echo()  # leave the shell prompt on a line of its own
                return 0
            screen = phone.send(typed)
    except KeyboardInterrupt:
        click.echo("\nHung up.", err=True)
        return 130  # the shell's convention for a process stopped by Ctrl-C
    except Unreachable as exc:
        click.echo(f"No server answers at {phone.url} ({exc.cause}). Start it with `make run`.", err=True)
        return 1
    except Refused as exc:
        click.echo(f"Refused (HTTP 400): {exc.reason}", err=True)
        return 1
    except BadAnswer as exc:
        click.echo(f"Not a USSD answer (HTTP {exc.status}):", err=True)
        click.echo(exc.body, err=True)
        return 1
    except DialError as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1


@click.command("dial")
@click.option("--url", default=DEFAULT_URL, show_default=True, help="The USSD endpoint (Africa's Talking protocol).")
@click.option("--phone", default=DEFAULT_PHONE, show_default=True, help="The caller's number (E.164).")
@click.option("--code", default=DEFAULT_CODE, show_default=True, help="The dial string, shortcuts included (*384*5#).")
@click.option("--network", default=DEFAULT_NETWORK, show_default=True, help="The network code (MCC+MNC).")
@click.pass_context
def dial_command(ctx: click.Context, url: str, phone: str, code: str, network: str) -> None:
    """Dial a running Guichet from the terminal, as a handset would.

    Type each answer at the `>` prompt; Ctrl-D or Ctrl-C hangs up.
    """
    try:
        handset = Phone(url, phone, code, network)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from exc
    try:
        status = converse(handset)
    finally:
        handset.close()
    ctx.exit(status)


def init_app(app: Flask) -> None:
    app.cli.add_command(dial_command)
