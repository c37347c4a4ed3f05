"""The XMLVend 2.1 adapter: Guichet's vending interface on the utility's vending server.

The messages themselves (and where their shapes were confirmed) are in xmlvend_messages.
This module decides what may be sent twice:

- confirm, quote and reprint change nothing on the server: a timeout, a dropped
  connection or an HTTP 5xx is retried (``retries`` times, short backoff: utility.calls),
  with the same msgID.
- a credit vend or a free issue makes a token, and is never blindly sent again. From the
  moment it is sent its outcome is unknown until the server says otherwise. When the
  answer does not come (timeout, dropped connection, 5xx, garbage), the adapter asks with
  a last-response advice for the original msgID (the advice is idempotent, so it is
  retried): the advice returns the vend -> done; the server answers LastResponseEx ("no
  transaction for this msgID") -> the vend was not made and is sent again once, with the
  same msgID; no answer -> BackendUnavailable, and the reference stays *pending*.
- the msgID of a vend comes from its reference (``MessageIds.for_reference``), so the
  caller's retry with the same reference is the same request to the server. A pending
  reference starts with the advice, not with a new vend.

What a process restart loses: the pending set and the msgID dateTime are kept in memory.
After a restart, the uniqueNumber is the same (it is derived from the reference) but the
dateTime is the new attempt's, so a server that deduplicates on uniqueNumber per client
still recognises the retry, and one that keys on the whole msgID does not. Pass a durable
``message_ids`` (same interface, backed by the order store) to close that gap.

Nothing logged here shows a full meter number, a token or a password.
"""
from __future__ import annotations

import datetime
import hashlib
import http.client
import logging
import re
import secrets
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import ParamSpec, Protocol, TypeVar

from utility.calls import backoff
from utility.customers import mask_tail
from utility.vending import DEFAULTS
from utility.vending import xmlvend_messages as msg
from utility.vending.base import (
    AmountTooHigh,
    AmountTooLow,
    BackendUnavailable,
    Charge,
    MeterBlocked,
    MeterInfo,
    Quote,
    ReferenceConflict,
    UnknownMeter,
    Vend,
    VendingError,
)
from utility.vending.xmlvend_messages import MalformedResponse, MsgID

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

REPRINT_COUNT = 3
MAX_ANSWER_BYTES = 2 * 1024 * 1024  # a receipt is a few kB; more is not an XMLVend answer
UNIQUE_DIGITS = 9  # public servers answer 5- to 8-digit uniqueNumbers; 9 digits fit an int32
KEPT_REFERENCES = 4096  # completed vends and msgIDs remembered per process
NO_MAXIMUM = 10**9  # when confirmCustomer gives no maxVendAmt (the server still checks the vend)
BACKOFF_CAP = 4.0  # seconds at most between two tries of an exchange: a customer's hop may be waiting

# The deductions a receipt shows, in the order they are applied (energy is last).
CHARGE_ORDER = ("fixed_fee", "service_charge", "debt_recovery", "municipal_tax", "vat")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# -- msgIDs -------------------------------------------------------------------------------------
class MessageIds(Protocol):
    def fresh(self) -> MsgID:
        """A new msgID for a request that may be repeated freely (confirm, quote, advice...)."""
        ...

    def for_reference(self, reference: str) -> MsgID:
        """The msgID of the vend made for ``reference``: the same one every time it is asked."""
        ...


def unique_number(reference: str, digits: int = UNIQUE_DIGITS) -> int:
    """The uniqueNumber of a reference's vend: the same in every process."""
    digest = hashlib.sha256(reference.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10**digits


class LocalMessageIds:
    """msgIDs kept in this process. A reference's uniqueNumber is derived from it; its
    dateTime is the first attempt's, remembered here only (see the module docstring)."""

    def __init__(self, clock: Callable[[], datetime.datetime] = _now, digits: int = UNIQUE_DIGITS) -> None:
        self.clock = clock
        self.digits = digits
        self._by_reference: OrderedDict[str, MsgID] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self) -> MsgID:
        return MsgID.at(self.clock(), secrets.randbelow(10**self.digits))

    def for_reference(self, reference: str) -> MsgID:
        with self._lock:
            known = self._by_reference.get(reference)
            if known is None:
                known = MsgID.at(self.clock(), unique_number(reference, self.digits))
                self._by_reference[reference] = known
                if len(self._by_reference) > KEPT_REFERENCES:
                    self._by_reference.popitem(last=False)
            return known


# -- what went wrong on one exchange (internal) ---------------------------------------------------
class _Unreachable(Exception):
    """No usable answer: timeout, connection refused or dropped, HTTP 5xx without a fault."""


class _Faulted(Exception):
    def __init__(self, fault: msg.Fault) -> None:
        super().__init__(fault.text)
        self.fault = fault


@dataclass(frozen=True)
class _Pending:
    """A vend sent (or about to be) whose outcome the server has not told us yet."""

    op: str  # creditVend | freeIssue
    meter: str
    amount: int
    free_units: Decimal | None
    msg_id: MsgID

    def same_vend(self, other: _Pending) -> bool:
        return (self.op, self.meter, self.amount, self.free_units) == (
            other.op, other.meter, other.amount, other.free_units)


_LONG_NUMBER = re.compile(r"\d{7,}")
_AMOUNT = re.compile(r"\d[\d\s,]*(?:\.\d+)?")


def _masked(text: str) -> str:
    """Server texts sometimes quote the meter number ("Meter 0426... not found")."""
    return _LONG_NUMBER.sub(lambda m: mask_tail(m.group()), text)


def _amount_in(text: str) -> int | None:
    """The limit a fault quotes ("minimum vend amount of 1 000.00"), when it quotes one."""
    found = _AMOUNT.findall(text)
    if not found:
        return None
    return _xaf(Decimal(re.sub(r"[\s,]", "", found[-1])))


def _xaf(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _unit(si_unit: str, resource: str) -> str:
    lowered = si_unit.strip().lower().replace("³", "3").replace("^", "")
    if lowered == "kwh" or (not lowered and resource == "electricity"):
        return "kWh"
    if lowered in ("m3", "kl") or (not lowered and resource == "water"):
        return "m3"
    return si_unit.strip()


def _issued_at(resp_date_time: str) -> datetime.datetime | None:
    try:
        when = datetime.datetime.fromisoformat(resp_date_time)
    except ValueError:
        return None
    # Kept as naive UTC, like the built-in engine's records.
    return when.astimezone(datetime.UTC).replace(tzinfo=None) if when.tzinfo else when


def _charge_code(line: msg.TxLine) -> str:
    if line.kind == "debt_recovery":
        return "debt_recovery"
    desc = line.desc.lower()
    if "vat" in desc or "tva" in desc:
        return "vat"
    if "munic" in desc or "communal" in desc:
        return "municipal_tax"
    if "fixed" in desc or "fixe" in desc:
        return "fixed_fee"
    return "service_charge"


def _charges(answer: msg.VendAnswer, amount: int) -> tuple[Charge, ...]:
    """Every deduction, energy last so they add up to ``amount`` (the VAT the credit
    transaction declares in its ``tax`` elements is taken out of the energy)."""
    totals: dict[str, int] = {}
    for line in answer.lines:
        if line.kind == "credit":
            if line.tax:
                totals["vat"] = totals.get("vat", 0) + _xaf(line.tax)
            continue
        code = _charge_code(line)
        totals[code] = totals.get(code, 0) + _xaf(line.amount)
    charges = [Charge(code, totals[code]) for code in CHARGE_ORDER if totals.get(code)]
    energy = amount - sum(c.amount for c in charges)
    if energy < 0:
        raise MalformedResponse(f"the receipt's charges exceed the {amount} paid")
    return (*charges, Charge("energy", energy))


# -- faults -> the interface's errors -------------------------------------------------------------
_UNKNOWN_METER = ("meter not found", "unknown meter", "meter unknown", "not in the system", "no such meter",
                  "invalid meter", "compteur inconnu", "compteur introuvable")
_BLOCKED = ("blocked", "bloqu", "suspend")
_TOO_LOW = ("minimum", "min vend", "too low", "too small", "below", "inférieur", "insuffisant")
_TOO_HIGH = ("maximum", "max vend", "too high", "too large", "exceed", "supérieur", "dépasse")


def fault_error(fault: msg.Fault) -> VendingError:
    """A server fault as the interface's error. The fault's xsi:type decides when it is one
    the schema names (UnknownMeterEx, MSNOCheckDigitEx, BlockedMeterEx); otherwise its text
    (servers send "Meter Not Found" as a SystemEx); an unrecognised SystemEx is the server
    failing (retryable); anything else is a refusal, with the server's text."""
    text = _masked(fault.text)
    details: dict[str, object] = {"fault": fault.kind or "soap", "fault_code": fault.code}
    lowered = text.lower()
    if fault.kind in ("UnknownMeterEx", "MSNOCheckDigitEx") or any(p in lowered for p in _UNKNOWN_METER):
        return UnknownMeter(text, **details)
    if fault.kind == "BlockedMeterEx" or any(p in lowered for p in _BLOCKED):
        return MeterBlocked(text, **details)
    if any(p in lowered for p in _TOO_LOW):
        return AmountTooLow(text, minimum=_amount_in(fault.text), **details)
    if any(p in lowered for p in _TOO_HIGH):
        return AmountTooHigh(text, maximum=_amount_in(fault.text), **details)
    if fault.kind == "SystemEx":
        return BackendUnavailable(f"the vending server failed: {text}", **details)
    return VendingError(text, **details)


# -- the adapter ----------------------------------------------------------------------------------
class XmlVendBackend:
    def __init__(
        self,
        url: str,
        client_id: str,
        terminal_id: str,
        operator: str,
        password: str,
        timeout: float = DEFAULTS["XMLVEND_TIMEOUT"],
        retries: int = DEFAULTS["XMLVEND_RETRIES"],
        clock: Callable[[], datetime.datetime] = _now,
        message_ids: MessageIds | None = None,
        *,
        backoff: float = 0.5,
        currency: str = DEFAULTS["XMLVEND_CURRENCY"],
        resource: str = DEFAULTS["XMLVEND_RESOURCE"],
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"XMLVend URL must be http(s)://host/path, not {url!r}")
        if resource not in msg.RESOURCE_TYPES:
            raise ValueError(f"resource must be one of {sorted(msg.RESOURCE_TYPES)}")
        self._parts = parts
        self.creds = msg.Credentials(client_id, terminal_id, operator, password)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.clock = clock
        self.message_ids: MessageIds = message_ids or LocalMessageIds(clock)
        self.currency = currency
        self.resource = resource
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._done: OrderedDict[str, tuple[_Pending, Vend]] = OrderedDict()
        self._in_flight: set[str] = set()

    # -- the interface ----------------------------------------------------------------------
    def confirm(self, meter: str) -> MeterInfo:
        answer = self._idempotent("confirmCustomer", meter, lambda m: msg.confirm_customer_req(self.creds, m, meter))
        customer = self._read(msg.read_confirm, answer, meter)
        utility = customer.utility_type.lower()
        return MeterInfo(
            meter=meter,
            name=customer.name,
            can_vend=customer.can_vend,
            min_amount=_xaf(customer.min_amount) if customer.min_amount is not None else 0,
            max_amount=_xaf(customer.max_amount) if customer.max_amount is not None else NO_MAXIMUM,
            utility=utility if utility in msg.RESOURCE_TYPES else self.resource,
            # The server says whether, not why: a meter it will not sell to is stopped.
            reason="" if customer.can_vend else MeterBlocked.code,
        )

    def quote(self, meter: str, amount: int) -> Quote:
        answer = self._idempotent(
            "trialCreditVend",
            meter,
            lambda m: msg.trial_credit_vend_req(self.creds, m, meter, amount, self.currency, self.resource),
        )
        trial = self._read(msg.read_vend, answer, with_tokens=False)
        charges = self._read(_charges, trial, amount)
        return Quote(meter, amount, self._units(trial.units), _unit(trial.si_unit, self.resource), charges, trial.tariff)

    def vend(self, meter: str, amount: int, reference: str) -> Vend:
        return self._issue(reference, "creditVend", meter, amount, None)

    def free_issue(self, meter: str, units: Decimal, reference: str) -> Vend:
        """A freeIssueReq. XMLVend's free issue carries no quantity: the server's free-issue
        policy decides what is credited. The Vend says what was credited; ``units`` (what
        the campaign asked for) is kept in its ``extra``, and a difference is logged."""
        return self._issue(reference, "freeIssue", meter, 0, Decimal(units))

    def reprint(self, meter: str) -> list[Vend]:
        answer = self._idempotent("reprint", meter, lambda m: msg.reprint_req(self.creds, m, meter))
        # The caller's references are not on the server: a reprint's reference is "".
        vends = [self._vend_from(a, reference="", meter=meter, amount=None, free=None)
                 for a in self._read(msg.read_reprint, answer)]
        return sorted(vends, key=lambda v: v.issued_at, reverse=True)[:REPRINT_COUNT]

    def pending_references(self) -> list[str]:
        """References whose vend outcome this process does not know yet (for operators)."""
        with self._lock:
            return sorted(self._pending)

    # -- idempotent operations --------------------------------------------------------------
    def _idempotent(self, op: str, meter: str, build: Callable[[MsgID], bytes]) -> ET.Element:
        msg_id = self.message_ids.fresh()
        body = build(msg_id)  # one msgID for all attempts: it is the same request
        attempts = self.retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff(attempt, self.backoff, BACKOFF_CAP))
            try:
                return self._exchange(op, body)
            except _Unreachable as exc:
                log.warning("xmlvend %s %s meter %s: attempt %d/%d failed: %s",
                            op, msg_id, mask_tail(meter), attempt + 1, attempts, exc)
                last = exc
            except _Faulted as exc:
                raise fault_error(exc.fault) from None
            except MalformedResponse as exc:
                raise BackendUnavailable(f"the vending server's {op} answer is unusable: {exc}") from None
        raise BackendUnavailable(f"the vending server did not answer {op} ({attempts} attempts): {last}")

    @staticmethod
    def _read(reader: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return reader(*args, **kwargs)
        except MalformedResponse as exc:
            raise BackendUnavailable(f"the vending server's answer is unusable: {exc}") from None

    # -- token-making operations ----------------------------------------------------------------
    def _issue(self, reference: str, op: str, meter: str, amount: int, free_units: Decimal | None) -> Vend:
        asked = _Pending(op, meter, amount, free_units, self.message_ids.for_reference(reference))
        with self._lock:
            if reference in self._done:
                made, vend = self._done[reference]
                if not made.same_vend(asked):
                    raise ReferenceConflict("this reference was used for another vend", reference=reference)
                return vend
            if reference in self._in_flight:
                # Two vends of one reference at once would race on the advice: one waits.
                raise BackendUnavailable("a vend for this reference is in progress", reference=reference)
            pending = self._pending.get(reference)
            if pending is not None and not pending.same_vend(asked):
                raise ReferenceConflict("this reference was used for another vend", reference=reference)
            if pending is None:
                # Pending from before it is sent: from then on, only the server knows.
                self._pending[reference] = asked
            self._in_flight.add(reference)
        try:
            if pending is not None:
                log.info("xmlvend %s %s meter %s: outcome unknown, asking the server first",
                         op, pending.msg_id, mask_tail(meter))
                return self._recover(reference, pending)
            return self._send(reference, asked, then_recover=True)
        finally:
            with self._lock:
                self._in_flight.discard(reference)

    def _vend_body(self, pending: _Pending) -> bytes:
        if pending.op == "freeIssue":
            return msg.free_issue_req(self.creds, pending.msg_id, pending.meter, self.resource)
        return msg.credit_vend_req(
            self.creds, pending.msg_id, pending.meter, pending.amount, self.currency, self.resource
        )

    def _send(self, reference: str, pending: _Pending, *, then_recover: bool) -> Vend:
        log.info("xmlvend %s %s meter %s: sending", pending.op, pending.msg_id, mask_tail(pending.meter))
        try:
            answer = self._exchange(pending.op, self._vend_body(pending))
        except _Faulted as exc:
            raise self._refused(reference, exc.fault) from None
        except (_Unreachable, MalformedResponse) as exc:
            log.warning("xmlvend %s %s meter %s: no usable answer (%s)",
                        pending.op, pending.msg_id, mask_tail(pending.meter), exc)
            if then_recover:
                return self._recover(reference, pending)
            raise BackendUnavailable(
                f"the vend's outcome is unknown ({exc}); retry later with the same reference", reference=reference
            ) from None
        return self._completed(reference, pending, answer)

    def _recover(self, reference: str, pending: _Pending) -> Vend:
        """Ask the server what became of ``pending`` (last-response advice), and act on it."""
        body = msg.last_resp_advice_req(self.creds, self.message_ids.fresh(), pending.msg_id)
        attempts = self.retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff(attempt, self.backoff, BACKOFF_CAP))
            try:
                advice = msg.read_advice(self._exchange("lastRespAdvice", body))
            except (_Unreachable, MalformedResponse) as exc:
                log.warning("xmlvend advice on %s meter %s: attempt %d/%d failed: %s",
                            pending.msg_id, mask_tail(pending.meter), attempt + 1, attempts, exc)
                last = exc
                continue
            except _Faulted as exc:
                if exc.fault.kind == "LastResponseEx":
                    # The schema's meaning: no transaction is associated with that msgID.
                    log.info("xmlvend advice on %s: not processed, sending it again once", pending.msg_id)
                    return self._send(reference, pending, then_recover=False)
                raise BackendUnavailable(
                    f"the vending server refused the advice on a vend of unknown outcome: {_masked(exc.fault.text)}",
                    reference=reference,
                ) from None
            if advice.advised is not None and advice.advised != pending.msg_id:
                raise BackendUnavailable("the advice answered about another message", reference=reference)
            refusal = msg.xmlvend_fault(advice.last_response)
            if refusal is not None:
                raise self._refused(reference, refusal)
            return self._completed(reference, pending, advice.last_response)
        raise BackendUnavailable(
            f"the vend's outcome is unknown and the server does not answer ({last}); "
            "retry later with the same reference",
            reference=reference,
        )

    def _refused(self, reference: str, fault: msg.Fault) -> VendingError:
        error = fault_error(fault)
        if not error.retryable:  # the server answered and said no: nothing was made
            with self._lock:
                self._pending.pop(reference, None)
        log.info("xmlvend vend refused (%s): %s", fault.kind or "fault", error.code)
        return error

    def _completed(self, reference: str, pending: _Pending, answer: ET.Element) -> Vend:
        receipt = self._read(msg.read_vend, answer)
        if receipt.req_msg_id is not None and receipt.req_msg_id != pending.msg_id:
            raise BackendUnavailable("the vending server answered about another message", reference=reference)
        if receipt.meter and receipt.meter != pending.meter:
            # Same msgID, another meter: the server took our msgID for someone else's.
            raise ReferenceConflict("the vending server holds another vend under this reference's msgID",
                                    reference=reference)
        if pending.free_units is None and receipt.tender is not None and receipt.tender != pending.amount:
            raise ReferenceConflict("the vending server holds another amount under this reference's msgID",
                                    reference=reference)
        extra = {"msg_id": str(pending.msg_id)}
        if pending.free_units is not None:
            extra["requested_units"] = str(pending.free_units)
        vend = self._vend_from(receipt, reference=reference, meter=pending.meter,
                               amount=pending.amount, free=pending.free_units is not None, extra=extra)
        if pending.free_units is not None and vend.units != pending.free_units:
            log.warning("xmlvend free issue %s: the server credited %s, the campaign asked %s",
                        vend.receipt_no, vend.units, pending.free_units)
        with self._lock:
            self._pending.pop(reference, None)
            self._done[reference] = (pending, vend)
            if len(self._done) > KEPT_REFERENCES:
                self._done.popitem(last=False)
        log.info("xmlvend vend %s meter %s units %s tokens %d",
                 vend.receipt_no, mask_tail(vend.meter), vend.units, len(vend.tokens))
        return vend

    def _vend_from(self, receipt: msg.VendAnswer, *, reference: str, meter: str, amount: int | None,
                   free: bool | None, extra: dict[str, str] | None = None) -> Vend:
        if amount is None:  # a reprint: what was paid is on the receipt
            paid = receipt.tender if receipt.tender is not None else sum(line.amount for line in receipt.lines)
            amount = _xaf(Decimal(paid))
        if free is None:  # a reprint: nothing paid means a free issue
            free = amount == 0
        charges = () if free else self._read(_charges, receipt, amount)
        extra = dict(extra or {"msg_id": str(receipt.req_msg_id or "")})
        if receipt.account_no:
            extra["account_no"] = receipt.account_no
        return Vend(
            reference=reference,
            receipt_no=receipt.receipt_no,
            meter=meter,
            name=receipt.name,
            amount=amount,
            units=self._units(receipt.units),
            unit=_unit(receipt.si_unit, self.resource),
            charges=charges,
            tokens=receipt.tokens,
            tariff=receipt.tariff,
            issued_at=_issued_at(receipt.resp_date_time) or self.clock(),
            free=free,
            extra=extra,
        )

    @staticmethod
    def _units(units: Decimal) -> Decimal:
        # STS resolution is 0.1; never promise more than the token carries.
        return units.quantize(Decimal("0.1"), rounding=ROUND_DOWN)

    # -- HTTP -------------------------------------------------------------------------------------
    def _exchange(self, op: str, body: bytes) -> ET.Element:
        """POST one SOAP request; the answer element, or _Unreachable / _Faulted / MalformedResponse."""
        status, raw = self._post(body)
        try:
            payload = msg.open_envelope(raw)
        except MalformedResponse as exc:
            # SOAP 1.1 sends faults with HTTP 500, so a 5xx is "unreachable" only once it is
            # known not to be a fault (a proxy's error page, an empty body).
            if status >= 500:
                raise _Unreachable(f"HTTP {status} ({exc})") from None
            raise MalformedResponse(f"HTTP {status}: {exc}") from None
        fault = msg.read_fault(payload)
        if fault is not None:
            raise _Faulted(fault)
        if status >= 500:
            raise _Unreachable(f"HTTP {status}")
        if status != 200:
            raise MalformedResponse(f"HTTP {status}")
        expected = msg.ANSWERS[op]
        if msg.local_name(payload) != expected:
            raise MalformedResponse(f"expected <{expected}>, got <{msg.local_name(payload)}>")
        return payload

    def _post(self, body: bytes) -> tuple[int, bytes]:
        parts = self._parts
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        # The timeout bounds the connect and every read: a silent server costs at most that.
        connection = kind(parts.hostname or "", parts.port, timeout=self.timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("POST", path, body=body, headers={
                "Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": '""',
                "Accept": "text/xml",
            })
            response = connection.getresponse()
            raw = response.read(MAX_ANSWER_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:  # timeouts are OSErrors
            raise _Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        finally:
            connection.close()
        if len(raw) > MAX_ANSWER_BYTES:
            raise MalformedResponse(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        return response.status, raw
