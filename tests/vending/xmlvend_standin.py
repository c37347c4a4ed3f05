"""A stand-in XMLVend 2.1 server on 127.0.0.1, for the adapter's tests.

It is a strict peer: it parses the SOAP envelope, checks every header element is there
and in the namespace the schema gives it (a wrong namespace or a missing header is a
fault, as on a validating server), and it keeps vends by msgID: a repeated msgID gets the
same answer, which is how vending servers deduplicate. It answers confirmCustomer,
trialCreditVend, creditVend, freeIssue, reprint and the last-response advice.

It shares no code with the adapter on purpose: a misreading of the protocol in one must
not hide in the other. Its answers follow the layout public servers send (each element
declaring its own default namespace, xsi:type values unprefixed or prefixed).

It can be told to misbehave on the next request of an operation: answer an HTTP status
with an HTML page, answer garbage, answer a SOAP fault, record a vend then answer too late
(the response is lost), or hang without recording anything; and it can be stopped and
started again on the same port (the server is down).
"""
from __future__ import annotations

import datetime
import http.server
import io
import itertools
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://www.nrs.eskom.co.za/xmlvend/base/2.1/schema"
REV = "http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/schema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = f"{{{XSI}}}type"

# Request element -> (operation, its namespace, its xsi:type as a Clark name).
REQUESTS = {
    f"{{{REV}}}confirmCustomerReq": ("confirmCustomer", f"{{{REV}}}ConfirmCustomerReq"),
    f"{{{REV}}}trialCreditVendReq": ("trialCreditVend", f"{{{REV}}}TrialCreditVendReq"),
    f"{{{REV}}}creditVendReq": ("creditVend", f"{{{REV}}}CreditVendReq"),
    f"{{{REV}}}freeIssueReq": ("freeIssue", f"{{{REV}}}FreeIssueReq"),
    f"{{{REV}}}reprintReq": ("reprint", f"{{{REV}}}ReprintReq"),
    f"{{{BASE}}}adviceReq": ("advice", f"{{{BASE}}}LastRespAdviceReq"),
}
VEND_OPS = ("trialCreditVend", "creditVend", "freeIssue")


@dataclass
class StandinMeter:
    name: str
    key_change: bool = False  # purchases carry two key-change tokens before the credit token
    blocked: bool = False
    can_vend: bool = True
    debt_percent: int = 0  # arrears recovered on each purchase
    min_amount: int = 500
    max_amount: int = 200_000


@dataclass(frozen=True)
class Received:
    op: str
    request: ET.Element  # the request element inside soap:Body
    nsmap: dict[str, str]  # prefix -> namespace, as declared in the request
    headers: dict[str, str]
    raw: bytes

    def msg_id(self) -> tuple[str, str]:
        element = self.request.find(f"{{{BASE}}}msgID")
        assert element is not None
        return element.get("dateTime", ""), element.get("uniqueNumber", "")

    def advised(self) -> tuple[str, str]:
        element = self.request.find(f"{{{BASE}}}adviceReqMsgID")
        assert element is not None
        return element.get("dateTime", ""), element.get("uniqueNumber", "")

    def resolve(self, qname: str) -> str:
        """An xsi:type value as a Clark name, with the request's own prefix bindings."""
        prefix, _, local = qname.rpartition(":")
        return f"{{{self.nsmap.get(prefix, '')}}}{local}"


@dataclass(frozen=True)
class Recorded:
    op: str
    msg_id: tuple[str, str]
    meter: str
    amount: int
    receipt_no: str
    tokens: tuple[str, ...]
    units: Decimal


@dataclass
class _Action:
    kind: str  # status | garbage | fault | lose | hang
    status: int = 500
    garbage: str = "html"
    fault: tuple[str, str] = ("", "")
    delay: float = 0.0


class _Reply:
    def __init__(self, status: int, body: bytes, content_type: str = "text/xml; charset=utf-8",
                 wait: float = 0.0, drop: bool = False) -> None:
        self.status, self.body, self.content_type, self.wait, self.drop = status, body, content_type, wait, drop


class _Fault(Exception):
    def __init__(self, kind: str, desc: str, code: str = "soap:Client") -> None:
        super().__init__(desc)
        self.kind, self.desc, self.code = kind, desc, code


# -- building answers ------------------------------------------------------------------------------
def _el(tag: str, ns: str | None = None, text: str | None = None, children: tuple[ET.Element, ...] = (),
        xsi_type: str | None = None, **attrs: str) -> ET.Element:
    element = ET.Element(tag)
    if ns:
        element.set("xmlns", ns)
    if xsi_type:
        element.set("xsi:type", xsi_type)
    for name, value in attrs.items():
        element.set(name, value)
    element.text = text
    element.extend(children)
    return element


def _envelope(payload: ET.Element) -> bytes:
    envelope = _el("soap:Envelope", children=(_el("soap:Body", children=(payload,)),),
                   **{"xmlns:soap": SOAP_ENV, "xmlns:xsi": XSI})
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(envelope, encoding="unicode").encode()


class XmlVendStandin:
    PRICE = 100  # XAF per kWh before VAT
    VAT_PERCENT = 18
    SERVICE_FEE = 100
    FREE_ISSUE_UNITS = Decimal("25.0")
    CURRENCY = "XAF"

    def __init__(self, meters: dict[str, StandinMeter], *, client_id: str = "6004000000017",
                 terminal_id: str = "GUICHET-USSD-01", operator: str = "guichet", password: str = "s3cret<&>") -> None:
        self.meters = dict(meters)
        self.client_id, self.terminal_id, self.operator, self.password = client_id, terminal_id, operator, password
        self.received: list[Received] = []
        self.vends: list[Recorded] = []
        self._answers: dict[tuple[str, str], ET.Element] = {}  # vend answers by msgID
        self._history: dict[str, list[ET.Element]] = {}  # meter -> its vend answers, newest first
        self._actions: dict[str, list[_Action]] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = 0

    # -- running ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/xmlvend/2.1"

    def start(self) -> str:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server interface)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = standin.handle(raw, {k.lower(): v for k, v in self.headers.items()})
                if reply.wait:
                    time.sleep(reply.wait)
                if reply.drop:  # hang up without a word
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up waiting: the answer is lost, as in the field

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.url

    def stop(self) -> None:
        """Down: the port refuses connections until ``start`` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- misbehaving on the next request of an operation ---------------------------------------
    def fail_next(self, op: str, status: int = 500, times: int = 1) -> None:
        self._queue(op, _Action("status", status=status), times)

    def garbage_next(self, op: str, kind: str = "html", times: int = 1) -> None:
        """kind: html (a 200 HTML page), truncated (cut XML), not_envelope, empty, wrong_answer."""
        self._queue(op, _Action("garbage", garbage=kind), times)

    def fault_next(self, op: str, kind: str, desc: str, times: int = 1) -> None:
        self._queue(op, _Action("fault", fault=(kind, desc)), times)

    def lose_next_response(self, op: str = "creditVend", delay: float = 1.0) -> None:
        """Make and record the vend, then answer only after ``delay`` (past the client's timeout)."""
        self._queue(op, _Action("lose", delay=delay), 1)

    def hang_next(self, op: str = "creditVend", delay: float = 1.0) -> None:
        """Wait ``delay`` then hang up, having recorded nothing."""
        self._queue(op, _Action("hang", delay=delay), 1)

    def _queue(self, op: str, action: _Action, times: int) -> None:
        with self._lock:
            self._actions.setdefault(op, []).extend([action] * times)

    def ops(self) -> list[str]:
        with self._lock:
            return [r.op for r in self.received]

    def requests(self, op: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.op == op]

    def credit_vends(self) -> list[Recorded]:
        with self._lock:
            return [v for v in self.vends if v.op == "creditVend"]

    # -- handling -------------------------------------------------------------------------------
    def handle(self, raw: bytes, headers: dict[str, str]) -> _Reply:
        try:
            request, nsmap = self._parse(raw)
            op, xsi_type = REQUESTS.get(request.tag, ("", ""))
            if not op:
                raise _Fault("UseCaseSupportEx", f"unsupported request {request.tag}")
            received = Received(op, request, nsmap, headers, raw)
            with self._lock:
                self.received.append(received)
                action = self._actions.get(op, []).pop(0) if self._actions.get(op) else None
            if not headers.get("content-type", "").startswith("text/xml"):
                raise _Fault("XMLVendSchemaEx", "Content-Type must be text/xml")
            if received.resolve(request.get(XSI_TYPE, "")) != xsi_type:
                raise _Fault("XMLVendSchemaEx", f"{op} request must have xsi:type {xsi_type}")
            self._check_header(received)
            if action is not None and action.kind in ("status", "garbage", "fault"):
                return self._misbehave(action)
            if action is not None and action.kind == "hang":
                return _Reply(200, b"", wait=action.delay, drop=True)
            answer = getattr(self, f"_{op}")(received)
            return _Reply(200, _envelope(answer), wait=action.delay if action is not None else 0.0)
        except _Fault as fault:
            return _Reply(500, self._fault_envelope(fault))

    def _parse(self, raw: bytes) -> tuple[ET.Element, dict[str, str]]:
        nsmap: dict[str, str] = {}
        try:
            root = None
            for event, item in ET.iterparse(io.BytesIO(raw), events=("start-ns", "start")):
                if event == "start-ns":
                    prefix, uri = item  # type: ignore[misc]
                    nsmap.setdefault(prefix, uri)
                elif root is None:
                    root = item
        except ET.ParseError as exc:
            raise _Fault("XMLVendSchemaEx", f"not XML: {exc}") from None
        assert root is not None
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise _Fault("XMLVendSchemaEx", "not a SOAP 1.1 envelope")
        body = root.find(f"{{{SOAP_ENV}}}Body")
        if body is None or len(body) != 1:
            raise _Fault("XMLVendSchemaEx", "the SOAP Body must hold one request")
        return body[0], nsmap

    def _check_header(self, received: Received) -> None:
        request = received.request
        names = [child.tag for child in request][:4]
        expected = [f"{{{BASE}}}{n}" for n in ("clientID", "terminalID", "msgID", "authCred")]
        if names != expected:
            raise _Fault("XMLVendSchemaEx", f"the header must be {expected}, not {names}")
        client, terminal, msg_id, auth = list(request)[:4]
        if received.resolve(client.get(XSI_TYPE, "")) != f"{{{BASE}}}EANDeviceID" or not client.get("ean"):
            raise _Fault("XMLVendSchemaEx", "clientID must be an EANDeviceID with an ean")
        if received.resolve(terminal.get(XSI_TYPE, "")) != f"{{{BASE}}}GenericDeviceID" or not terminal.get("id"):
            raise _Fault("XMLVendSchemaEx", "terminalID must be a GenericDeviceID with an id")
        stamp, number = msg_id.get("dateTime", ""), msg_id.get("uniqueNumber", "")
        try:
            datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError:
            stamp = ""
        if not re.fullmatch(r"\d{14}", stamp) or not number.isdigit():
            raise _Fault("XMLVendSchemaEx", "msgID needs dateTime yyyyMMddHHmmss and a numeric uniqueNumber")
        op_name, password = auth.find(f"{{{BASE}}}opName"), auth.find(f"{{{BASE}}}password")
        if op_name is None or password is None:
            raise _Fault("XMLVendSchemaEx", "authCred needs opName and password")
        if (client.get("ean"), terminal.get("id")) != (self.client_id, self.terminal_id):
            raise _Fault("ClientIDAuthorisationEx", "unknown client or terminal")
        if (op_name.text, password.text) != (self.operator, self.password):
            raise _Fault("RequestAuthorisationEx", "operator credentials refused")

    def _misbehave(self, action: _Action) -> _Reply:
        if action.kind == "status":
            page = f"<html><body><h1>{action.status} Server Error</h1></body></html>".encode()
            return _Reply(action.status, page, "text/html")
        if action.kind == "fault":
            return _Reply(500, self._fault_envelope(_Fault(*action.fault, code="soap:Server")))
        garbage = {
            "html": (b"<!DOCTYPE html><html><body>Maintenance</body></html>", "text/html"),
            "truncated": (b'<?xml version="1.0"?><soap:Envelope xmlns:soap="' + SOAP_ENV.encode()
                          + b'"><soap:Body><creditVendResp xmlns="' + REV.encode() + b'"><clientID', "text/xml"),
            "not_envelope": (b"<creditVendResp/>", "text/xml"),
            "empty": (b"", "text/xml"),
            "wrong_answer": (_envelope(_el("loginResp", REV)), "text/xml"),
        }[action.garbage]
        return _Reply(200, garbage[0], garbage[1])

    def _fault_envelope(self, fault: _Fault) -> bytes:
        detail = _el("xmlvendFaultResp", BASE, children=(
            *self._resp_header(None),
            _el("dispHeader", BASE, "Error"),
            _el("operatorMsg", BASE, fault.desc),
            _el("fault", BASE, xsi_type=fault.kind, children=(_el("desc", BASE, fault.desc),)),
        ))
        payload = _el("soap:Fault", children=(
            _el("faultcode", text=fault.code), _el("faultstring", text="XMLVend fault"),
            _el("detail", children=(detail,)),
        ))
        return _envelope(payload)

    # -- the operations ---------------------------------------------------------------------------
    def _resp_header(self, received: Received | None) -> tuple[ET.Element, ...]:
        stamp, number = received.msg_id() if received is not None else ("", "")
        return (
            _el("clientID", BASE, xsi_type="EANDeviceID", ean=self.client_id),
            _el("serverID", BASE, xsi_type="EANDeviceID", ean="6004000000000"),
            _el("terminalID", BASE, xsi_type="GenericDeviceID", id=self.terminal_id),
            *((_el("reqMsgID", BASE, dateTime=stamp, uniqueNumber=number),) if received is not None else ()),
            _el("respDateTime", BASE, datetime.datetime.now(datetime.UTC).isoformat()),
        )

    def _meter(self, received: Received, id_method_ns: str) -> tuple[str, StandinMeter]:
        id_method = received.request.find(f"{{{id_method_ns}}}idMethod")
        if id_method is None or received.resolve(id_method.get(XSI_TYPE, "")) != f"{{{BASE}}}VendIDMethod":
            raise _Fault("XMLVendSchemaEx", f"idMethod (in {id_method_ns}) must be a VendIDMethod")
        identifier = id_method.find(f"{{{BASE}}}meterIdentifier")
        if identifier is None or received.resolve(identifier.get(XSI_TYPE, "")) != f"{{{BASE}}}MeterNumber":
            raise _Fault("XMLVendSchemaEx", "meterIdentifier must be a MeterNumber")
        msno = identifier.get("msno", "")
        meter = self.meters.get(msno)
        if meter is None:
            raise _Fault("UnknownMeterEx", f"Meter {msno} not found")
        return msno, meter

    def _confirmCustomer(self, received: Received) -> ET.Element:  # noqa: N802
        msno, meter = self._meter(received, REV)
        if meter.blocked:
            raise _Fault("BlockedMeterEx", "Meter is blocked")
        result = _el("confirmCustResult", REV, children=(
            _el("custVendDetail", name=meter.name, address="Quartier Bastos", accNo=f"ACC{msno[-5:]}"),
            _el("custVendConfig", children=(
                _el("canVend", text="true" if meter.can_vend else "false"),
                _el("maxVendAmt", value=f"{meter.max_amount}.00", symbol=self.CURRENCY),
                _el("minVendAmt", value=f"{meter.min_amount}.00", symbol=self.CURRENCY),
            )),
            _el("meterDetail", msno=msno, sgc="600727", krn="1", ti="01",
                children=(_el("meterType", BASE, at="07", tt="02"),)),
        ))
        return _el("confirmCustomerResp", REV, children=(*self._resp_header(received), result))

    def _vend_request(self, received: Received) -> tuple[str, StandinMeter, int | None]:
        request = received.request
        resource = request.find(f"{{{BASE}}}resource")
        if resource is None or received.resolve(resource.get(XSI_TYPE, "")) != f"{{{BASE}}}Electricity":
            raise _Fault("XMLVendSchemaEx", "resource must be base:Electricity")
        msno, meter = self._meter(received, BASE)
        if received.op == "freeIssue":
            return msno, meter, None
        value = request.find(f"{{{REV}}}purchaseValue")
        amt = value.find(f"{{{REV}}}amt") if value is not None else None
        if value is None or received.resolve(value.get(XSI_TYPE, "")) != f"{{{REV}}}PurchaseValueCurrency" \
                or amt is None or amt.get("symbol") != self.CURRENCY:
            raise _Fault("XMLVendSchemaEx", "purchaseValue must be a PurchaseValueCurrency with amt")
        amount = int(Decimal(amt.get("value", "0")))
        if amount < meter.min_amount:
            raise _Fault("BusinessRuleEx", f"Amount below the minimum vend amount of {meter.min_amount}")
        if amount > meter.max_amount:
            raise _Fault("BusinessRuleEx", f"Amount exceeds the maximum vend amount of {meter.max_amount}")
        return msno, meter, amount

    def _token(self) -> str:
        return f"{(next(self._numbers) * 7919 + 31415926535) % 10**20:020d}"

    def _vend_answer(self, received: Received, msno: str, meter: StandinMeter, amount: int | None) -> ET.Element:
        trial = received.op == "trialCreditVend"
        with self._lock:
            receipt_no = f"SIM/{next(self._numbers):07d}"
            tokens = [self._token(), self._token(), self._token()] if meter.key_change and not trial else [self._token()]
        if trial:
            tokens = ["0000000000000000"]
        txs: list[ET.Element] = []
        if amount is None:  # a free issue: the policy decides the units, no money
            units, energy, vat, paid = self.FREE_ISSUE_UNITS, Decimal(0), Decimal(0), Decimal(0)
        else:
            debt = amount * meter.debt_percent // 100
            rest = amount - debt - self.SERVICE_FEE
            vat = (Decimal(rest) * self.VAT_PERCENT / (100 + self.VAT_PERCENT)).quantize(Decimal(1))
            energy, paid = Decimal(rest), Decimal(amount)
            units = ((energy - vat) / self.PRICE).quantize(Decimal("0.1"), rounding=ROUND_DOWN)
            if debt:
                txs.append(_el("tx", xsi_type="DebtRecoveryTx", children=(
                    _el("amt", value=f"{debt}.00", symbol=self.CURRENCY), _el("accDesc", text="Arrears recovery"),
                    _el("balance", value="15000.00", symbol=self.CURRENCY))))
            txs.append(_el("tx", xsi_type="ServiceChrgTx", children=(
                _el("amt", value=f"{self.SERVICE_FEE}.00", symbol=self.CURRENCY), _el("accDesc", text="Service fee"))))
        meter_detail = _el("q1:meterDetail", msno=msno, sgc="600727", krn="1", ti="01",
                           children=(_el("q1:meterType", at="07", tt="02"),))
        credit = _el("tx", xsi_type="CreditVendTx", receiptNo=receipt_no, children=(
            _el("amt", value=f"{energy}", symbol=self.CURRENCY),
            *((_el("tax", xsi_type="q0:VAT", children=(_el("amt", value=f"{vat}", symbol=self.CURRENCY),),
                   **{"xmlns:q0": BASE}),) if vat else ()),
            _el("creditTokenIssue", xsi_type="q1:SaleCredTokenIssue", children=(
                _el("q1:desc", text="Credit Token"), meter_detail,
                _el("q1:token", xsi_type="q1:STS1Token", children=(_el("q1:stsCipher", text=tokens[-1]),)),
                _el("q1:units", value=f"{units}", siUnit="kWh"), _el("q1:resource", xsi_type="q1:Electricity"),
            ), **{"xmlns:q1": BASE}),
            *((_el("kcTokenIssue", xsi_type="q1:KCTokenIssue", children=(
                _el("q1:desc", text="Key Change Token"),
                _el("q1:meterDetail", msno=msno, sgc="600727", krn="2", ti="01",
                    children=(_el("q1:meterType", at="07", tt="02"),)),
                _el("q1:token", xsi_type="q1:KCToken", children=(
                    _el("q1:set1stMeterKey", children=(_el("q1:stsCipher", text=tokens[0]),)),
                    _el("q1:set2ndMeterKey", children=(_el("q1:stsCipher", text=tokens[1]),)),
                )),
                _el("q1:kctData", fromSGC="600727", fromKRN="1", fromTI="01", toSGC="600727", toKRN="2", toTI="01"),
            ), **{"xmlns:q1": BASE}),) if len(tokens) == 3 else ()),
            _el("tariff", children=(_el("name", BASE, "Domestique"),)),
        ))
        receipt = _el("creditVendReceipt", REV, receiptNo=receipt_no, children=(
            _el("transactions", children=(credit, *txs, _el("tenderAmt", value=f"{paid}", symbol=self.CURRENCY))),
        ))
        tag = {"trialCreditVend": "trialCreditVendResp", "creditVend": "creditVendResp",
               "freeIssue": "freeIssueResp"}[received.op]
        answer = _el(tag, REV, children=(
            *self._resp_header(received),
            _el("dispHeader", BASE, "Credit Vend"),
            _el("clientStatus", BASE, children=(_el("availCredit", value="1000000.00", symbol=self.CURRENCY),)),
            _el("utility", BASE, name="Stand-in Utility", address="Yaounde"),
            _el("custVendDetail", BASE, name=meter.name, address="Quartier Bastos", accNo=f"ACC{msno[-5:]}"),
            receipt,
        ))
        if not trial:
            record = Recorded(received.op, received.msg_id(), msno, amount or 0, receipt_no,
                              tuple(tokens if len(tokens) == 3 else tokens[-1:]), units)
            with self._lock:
                self.vends.append(record)
                self._answers[received.msg_id()] = answer
                self._history.setdefault(msno, []).insert(0, answer)
        return answer

    def _vend(self, received: Received) -> ET.Element:
        with self._lock:
            known = self._answers.get(received.msg_id())
        if known is not None:  # the same msgID again: the same answer, nothing new made
            return known
        msno, meter, amount = self._vend_request(received)
        if meter.blocked:
            raise _Fault("BlockedMeterEx", "Meter is blocked")
        return self._vend_answer(received, msno, meter, amount)

    _creditVend = _vend  # noqa: N815
    _freeIssue = _vend  # noqa: N815
    _trialCreditVend = _vend  # noqa: N815

    def _reprint(self, received: Received) -> ET.Element:
        msno, _ = self._meter(received, REV)
        with self._lock:
            history = self._history.get(msno, [])[:3]
        if not history:
            raise _Fault("ReprintEx", "No transactions to reprint")
        reprints = tuple(_el("reprint", xsi_type="q2:CreditVendResp", children=tuple(answer),
                             **{"xmlns:q2": REV}) for answer in history)
        return _el("reprintResp", REV, children=(*self._resp_header(received), *reprints))

    def _advice(self, received: Received) -> ET.Element:
        advised = received.request.find(f"{{{BASE}}}adviceReqMsgID")
        if advised is None:
            raise _Fault("XMLVendSchemaEx", "adviceReq needs adviceReqMsgID (base)")
        with self._lock:
            answer = self._answers.get(received.advised())
        if answer is None:
            raise _Fault("LastResponseEx", "No transaction is associated with the requested msgID")
        last = _el("lastResponse", xsi_type=f"q3:{answer.tag[0].upper()}{answer.tag[1:]}", children=tuple(answer),
                   **{"xmlns:q3": REV})
        return _el("adviceResp", BASE, xsi_type="LastRespAdviceResp", children=(
            *self._resp_header(received), _el("dispHeader", text="Last Response Advice"),
            _el("adviceReqMsgID", dateTime=advised.get("dateTime", ""),
                uniqueNumber=advised.get("uniqueNumber", "")),
            last,
        ))

