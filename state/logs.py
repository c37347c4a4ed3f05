"""Logs: one JSON object per line on stderr, personal numbers masked, a request id per request.

Every module logs with the standard library (``logging.getLogger(__name__).info("...%s", x)``);
structlog's ``ProcessorFormatter`` turns each record into one event: ``timestamp`` (ISO 8601,
UTC), ``level``, ``logger``, ``event`` (the formatted message), ``exception`` (the traceback,
one string) when there is one, and what is bound to the context: ``request_id`` while a
request is served, ``session`` during a USSD hop, ``job_id`` while a background job runs, and
a record's ``extra=`` fields. JSON encoding escapes every control character, so no value
from outside (a newline in a form field, an escape sequence) can start a line of its own or
rewrite a terminal. ``console`` (GUICHET_LOG_FORMAT) is the same events as readable lines for
development, escaped likewise.

Masking (``mask``) is the last step before rendering, applied to the event, the traceback and
every string field, whatever the call site already did: a phone number (``+`` and 8-15
digits) keeps its last 3 digits, a meter number (11 or 13 digits, STS) and an account number
(letters, a dash, digits: ``CM-1000004``) their last 4, an STS token (20 digits, grouped in
fours or not) its last 4. A field named for what it holds (``phone``, ``meter``,
``account``, ``token``...) is masked whatever its shape.
"""
from __future__ import annotations

import logging
import re
import secrets
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any

import structlog
from flask import Flask, Response, request
from rq import get_current_job
from structlog.typing import EventDict, Processor, WrappedLogger

from utility.customers import mask_phone, mask_tail

FORMATS = ("json", "console")
REQUEST_ID_HEADER = "X-Request-Id"
# What a proxy's or gateway's request id may look like to be kept (nginx's $request_id, a
# UUID...); anything else is replaced by our own, so the header cannot smuggle junk into logs.
_GIVEN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


# -- masking ------------------------------------------------------------------------------------
# One pass over each string. Token first (20 digits hold 11- and 13-digit runs), then phones
# (the "+" tells them from meters). A run of digits counts only as a whole word: not inside
# a hex id (a message id's uuid4 hex has an 11-digit run in 1 of 50), nor a decimal's
# fraction (a duration), nor an order reference (8 base32 letters and digits). A 13-digit
# receipt number (yymmdd + sequence) is masked like a meter: it cannot be told from one.
_NUMBERS = re.compile(
    r"(?<!\d)(?P<token>\d{4}(?P<sep>[ -]?)\d{4}(?:(?P=sep)\d{4}){3})(?!\d)"
    r"|(?<![\w+])(?P<phone>\+\d{8,15})(?!\d)"
    r"|(?<![\w.+-])(?P<meter>\d{13}|\d{11})(?![\w-]|\.\d)"
    r"|(?<![\w.-])(?P<account>[A-Za-z]{1,4}-\d{5,})(?![\w-])"
)


def _masked_number(match: re.Match[str]) -> str:
    if match["phone"]:
        return mask_phone(match["phone"])
    return mask_tail(match.group(), keep=4)


def mask_text(text: str) -> str:
    """``text`` with every phone, meter, account number and token in it masked."""
    return _NUMBERS.sub(_masked_number, text)


def _mask_value(value: Any, by_shape: Callable[[str], str], keyed: bool) -> Any:
    if isinstance(value, str):
        return by_shape(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(item, by_shape, keyed) for item in value]
    if isinstance(value, Mapping):
        return {key: _mask_field(str(key), item) for key, item in value.items()}
    if keyed and isinstance(value, int) and not isinstance(value, bool):
        return by_shape(str(value))  # a meter number passed as a number
    return value


# Fields that hold such a number whatever it looks like (a payer typed without "+", an
# account number of digits only), and fields that hold none (ours, never masked).
_PHONE_FIELDS = frozenset({"phone", "payer", "to", "msisdn", "phone_number"})
_NUMBER_FIELDS = frozenset({"meter", "meter_number", "account", "account_number", "token", "tokens"})
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", "request_id", "job_id"})


def _mask_field(key: str, value: Any) -> Any:
    if key in _OWN_FIELDS:
        return value
    if key in _PHONE_FIELDS:
        return _mask_value(value, mask_phone, keyed=True)
    if key in _NUMBER_FIELDS:
        return _mask_value(value, mask_tail, keyed=True)
    return _mask_value(value, mask_text, keyed=False)


def mask(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """The processor: every field masked (see the module's docstring)."""
    return {key: _mask_field(key, value) for key, value in event_dict.items()}


# -- context ------------------------------------------------------------------------------------
def add_job_id(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """``job_id`` on every line logged while a background (rq) job runs: rq keeps the job it
    is performing in a context variable of the thread running it."""
    job = get_current_job()
    if job is not None:
        event_dict.setdefault("job_id", job.id)
    return event_dict


def bind(**values: Any) -> None:
    """Add ``values`` to every line logged from here until the request ends (what is bound
    outside a request stays with the thread: bind there only what the thread keeps)."""
    structlog.contextvars.bind_contextvars(**values)


def request_id() -> str | None:
    """The id of the request being served (None outside one)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return None if value is None else str(value)


def _begin_request() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    structlog.contextvars.clear_contextvars()
    bind(request_id=given if _GIVEN_REQUEST_ID.fullmatch(given) else secrets.token_hex(8))


def _answer_request(response: Response) -> Response:
    rid = request_id()
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid  # what an operator asks a complaint's lines by
    return response


def _end_request(_exc: BaseException | None) -> None:
    structlog.contextvars.clear_contextvars()  # a thread's next request starts clean


def init_app(app: Flask) -> None:
    """A request id on every line logged while serving a request, and in the response's
    ``X-Request-Id``: the caller's (a proxy's ``$request_id``) when it gives a sane one, else
    16 random hex digits. Register before the blueprints, so their hooks' lines carry it."""
    configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    app.before_request_funcs.setdefault(None, []).insert(0, _begin_request)
    app.after_request(_answer_request)
    app.teardown_request(_end_request)


# -- rendering ----------------------------------------------------------------------------------
# Control characters (a newline, an escape sequence) in console lines: JSON escapes them itself.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def _one_line_values(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """For the console: every value on the line escaped; the traceback below it indented,
    so none of its lines (which may quote outside data too) reads as a record of its own."""
    for key, value in event_dict.items():
        if key == "exception" and isinstance(value, str):
            event_dict[key] = "\n".join("    " + _escaped(line) for line in value.splitlines())
        elif isinstance(value, str):
            event_dict[key] = _escaped(value)
    return event_dict


_FIRST = ("timestamp", "level", "logger", "event", "request_id", "session", "job_id")


def _ordered(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """The fields every line has first, in one order: a person reads them left to right."""
    first = {key: event_dict[key] for key in _FIRST if key in event_dict}
    return {**first, **{key: value for key, value in event_dict.items() if key not in first}}


# What every record goes through before rendering: a stdlib record (the ProcessorFormatter's
# foreign_pre_chain) and a structlog logger's event alike.
_PRE_CHAIN: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    add_job_id,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatter(renderer: str = "json") -> logging.Formatter:
    """The formatter of every log line: ``json`` (production) or ``console`` (development)."""
    if renderer not in FORMATS:
        raise ValueError(f"GUICHET_LOG_FORMAT is {renderer!r}: it is one of {', '.join(FORMATS)}")
    render: list[Processor] = (
        [structlog.processors.JSONRenderer()]
        if renderer == "json"
        else [_one_line_values, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_PRE_CHAIN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,  # the traceback as one string field
            mask,
            _ordered,
            *render,
        ],
    )


def level_number(level: str | int) -> int:
    """GUICHET_LOG_LEVEL: a name (``info``, ``DEBUG``) or a number."""
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(str(level).strip().upper())
    if number is None:
        raise ValueError(f"GUICHET_LOG_LEVEL is {level!r}: it is one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return number


def configure(level: str | int = "INFO", renderer: str = "json", stream: IO[str] | None = None) -> bool:
    """``level`` and up to stderr (or ``stream``), one line per record; once per process.
    Returns whether it did: a root logger with handlers already (ours, or a host's: pytest's
    caplog, an embedding app) is left to its owner."""
    handler_formatter = formatter(renderer)  # a bad setting fails here, even when handled by another
    number = level_number(level)
    root = logging.getLogger()
    if root.handlers:
        return False
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(handler_formatter)
    root.addHandler(handler)
    root.setLevel(number)
    # structlog's own loggers (structlog.get_logger) go the same way, through the stdlib.
    structlog.configure(
        processors=[*_PRE_CHAIN, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return True
