"""XMLVend 2.1 on the wire: the SOAP 1.1 requests Guichet sends and what it reads back.

Building is strict: every element goes in the namespace the NRS 009-6-7 schema gives it
(base or revenue), with explicit ``xsi:type`` where the schema has abstract types.
Reading is lenient about namespaces: public servers disagree on them (one puts the
repeated response's children in the base namespace, another the credit transaction's
in revenue), so answers are read by local element names.

Where each shape was confirmed (public code, read 2026):
- Types, element order and namespaces: the JAXB classes generated from the XMLVend 2.1
  schema in github.com/wsws0521/IDEA-Vincent-MyJavaTools, HexWebserviceTest/src/cn/vincent/
  xmlvend/client/ (BaseReq, BaseResp, AdviceReq, LastRespAdviceReq/Resp, CreditVendReq,
  FreeIssueReq, ConfirmCustResult, CustVendConfig, CreditVendTx, KCToken, Fault,
  LastResponseEx, ObjectFactory for the global element names and their namespaces).
- Requests as servers accept them: github.com/mahmoodshehob/GecolPro (GecolSystem/
  XmlServices.cs: confirmCustomerReq, creditVendReq), a Curaçao integration
  (PagafasilImporters::PagatinuClient: creditVendReq, adviceReq) and an Angolan one
  (Ende: trialCreditVendReq, reprintReq, adviceReq).
- Answers as servers send them: the recorded Conlog responses in PagatinuClient
  (creditVendResp, adviceResp/lastResponse, soap:Fault with XMLVendFaultResp) and the
  GecolPro parser (kcTokenIssue/token/set1stMeterKey|set2ndMeterKey/stsCipher,
  DebtRecoveryTx accDesc/amt/balance, ServiceChrgTx, confirmCustResult/meterDetail).
"""
from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
BASE = "http://www.nrs.eskom.co.za/xmlvend/base/2.1/schema"
REVENUE = "http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/schema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI}}}type"

# The resource types of BaseVendReq/resource (base namespace).
RESOURCE_TYPES = {"electricity": "base:Electricity", "water": "base:Water"}

# The Body element each operation answers with (ObjectFactory: revenue namespace, except
# the advice answer which is base:adviceResp, xsi:type LastRespAdviceResp).
ANSWERS = {
    "confirmCustomer": "confirmCustomerResp",
    "trialCreditVend": "trialCreditVendResp",
    "creditVend": "creditVendResp",
    "freeIssue": "freeIssueResp",
    "reprint": "reprintResp",
    "lastRespAdvice": "adviceResp",
}

_TOKEN = re.compile(r"\d{20}")


class MalformedResponse(Exception):
    """The answer is not the XMLVend message asked for (HTML page, cut XML, other element)."""


# -- identifiers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MsgID:
    """base:MsgID: the request's identity. A server treats a repeated MsgID as the same request."""

    date_time: str  # yyyyMMddHHmmss
    unique_number: int

    @classmethod
    def at(cls, when: datetime.datetime, unique_number: int) -> MsgID:
        return cls(f"{when:%Y%m%d%H%M%S}", unique_number)

    def __str__(self) -> str:
        return f"{self.date_time}/{self.unique_number}"


@dataclass(frozen=True)
class Credentials:
    client_id: str  # the client's EAN (clientID xsi:type EANDeviceID)
    terminal_id: str  # terminalID xsi:type GenericDeviceID
    operator: str
    password: str


# -- building requests ------------------------------------------------------------------------
# Elements are named with literal prefixes declared once on the Envelope, so the xsi:type
# values (QNames in attribute text) refer to prefixes we know are bound.
def _envelope(request: ET.Element) -> bytes:
    envelope = ET.Element(
        "soapenv:Envelope",
        {"xmlns:soapenv": SOAP_ENV, "xmlns:base": BASE, "xmlns:rev": REVENUE, "xmlns:xsi": XSI},
    )
    ET.SubElement(envelope, "soapenv:Body").append(request)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def _request(tag: str, xsi_type: str, creds: Credentials, msg_id: MsgID) -> ET.Element:
    # BaseReq: clientID, terminalID, msgID, authCred, in this order, all in base.
    request = ET.Element(tag, {"xsi:type": xsi_type})
    ET.SubElement(request, "base:clientID", {"xsi:type": "base:EANDeviceID", "ean": creds.client_id})
    ET.SubElement(request, "base:terminalID", {"xsi:type": "base:GenericDeviceID", "id": creds.terminal_id})
    ET.SubElement(
        request, "base:msgID", {"dateTime": msg_id.date_time, "uniqueNumber": str(msg_id.unique_number)}
    )
    auth = ET.SubElement(request, "base:authCred")
    ET.SubElement(auth, "base:opName").text = creds.operator
    ET.SubElement(auth, "base:password").text = creds.password
    return request


def _id_method(parent: ET.Element, tag: str, meter: str) -> None:
    id_method = ET.SubElement(parent, tag, {"xsi:type": "base:VendIDMethod"})
    ET.SubElement(id_method, "base:meterIdentifier", {"xsi:type": "base:MeterNumber", "msno": meter})


def confirm_customer_req(creds: Credentials, msg_id: MsgID, meter: str) -> bytes:
    # ConfirmCustomerReq is a revenue type, so its idMethod is in revenue (as GecolPro sends it).
    request = _request("rev:confirmCustomerReq", "rev:ConfirmCustomerReq", creds, msg_id)
    _id_method(request, "rev:idMethod", meter)
    return _envelope(request)


def reprint_req(creds: Credentials, msg_id: MsgID, meter: str) -> bytes:
    request = _request("rev:reprintReq", "rev:ReprintReq", creds, msg_id)
    _id_method(request, "rev:idMethod", meter)
    return _envelope(request)


def _vend_req(tag: str, xsi_type: str, creds: Credentials, msg_id: MsgID, meter: str, resource: str) -> ET.Element:
    # BaseVendReq (a base type): resource then idMethod, both in base.
    request = _request(tag, xsi_type, creds, msg_id)
    ET.SubElement(request, "base:resource", {"xsi:type": RESOURCE_TYPES[resource]})
    _id_method(request, "base:idMethod", meter)
    return request


def _purchase_value(request: ET.Element, amount: int, currency: str) -> None:
    # AbstractCreditVendReq/purchaseValue xsi:type PurchaseValueCurrency, with amt (revenue).
    value = ET.SubElement(request, "rev:purchaseValue", {"xsi:type": "rev:PurchaseValueCurrency"})
    ET.SubElement(value, "rev:amt", {"value": str(amount), "symbol": currency})


def trial_credit_vend_req(
    creds: Credentials, msg_id: MsgID, meter: str, amount: int, currency: str, resource: str
) -> bytes:
    request = _vend_req("rev:trialCreditVendReq", "rev:TrialCreditVendReq", creds, msg_id, meter, resource)
    _purchase_value(request, amount, currency)
    return _envelope(request)


def credit_vend_req(
    creds: Credentials, msg_id: MsgID, meter: str, amount: int, currency: str, resource: str
) -> bytes:
    request = _vend_req("rev:creditVendReq", "rev:CreditVendReq", creds, msg_id, meter, resource)
    _purchase_value(request, amount, currency)
    return _envelope(request)


def free_issue_req(creds: Credentials, msg_id: MsgID, meter: str, resource: str) -> bytes:
    # FreeIssueReq extends BaseVendReq and adds nothing: the request carries no quantity,
    # the server's free-issue policy decides what is credited.
    return _envelope(_vend_req("rev:freeIssueReq", "rev:FreeIssueReq", creds, msg_id, meter, resource))


def last_resp_advice_req(creds: Credentials, msg_id: MsgID, original: MsgID) -> bytes:
    # LastRespAdviceReq has no global element of its own: it is base:adviceReq with
    # xsi:type LastRespAdviceReq, naming the original request in adviceReqMsgID.
    request = _request("base:adviceReq", "base:LastRespAdviceReq", creds, msg_id)
    ET.SubElement(
        request, "base:adviceReqMsgID", {"dateTime": original.date_time, "uniqueNumber": str(original.unique_number)}
    )
    return _envelope(request)


# -- reading answers --------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _xsi_type(element: ET.Element) -> str:
    return element.get(_XSI_TYPE, "").rpartition(":")[2]


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if element is None else [c for c in element if _local(c.tag) == name]


def _path(element: ET.Element | None, *names: str) -> ET.Element | None:
    for name in names:
        element = _child(element, name)
    return element


def _descendants(element: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in element.iter() if _local(e.tag) == name]


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _decimal(value: str | None, what: str) -> Decimal:
    try:
        return Decimal((value or "").strip())
    except InvalidOperation:
        raise MalformedResponse(f"{what} is not a number: {value!r}") from None


def _value(element: ET.Element | None, what: str) -> Decimal | None:
    """A base:Currency or base:Units element's ``value`` attribute, or None when absent."""
    if element is None or element.get("value") is None:
        return None
    return _decimal(element.get("value"), what)


def _attr(element: ET.Element | None, name: str) -> str:
    return (element.get(name) or "").strip() if element is not None else ""


def _msg_id(element: ET.Element | None) -> MsgID | None:
    if element is None:
        return None
    number = (element.get("uniqueNumber") or "").strip()
    if not number.isdigit():
        return None
    return MsgID((element.get("dateTime") or "").strip(), int(number))


def open_envelope(raw: bytes) -> ET.Element:
    """The element inside soap:Body (an answer or a soap:Fault); MalformedResponse otherwise."""
    try:
        root = ET.fromstring(raw)
    except (ET.ParseError, ValueError, LookupError) as exc:
        raise MalformedResponse(f"the answer is not XML ({exc})") from None
    if _local(root.tag) != "Envelope":
        raise MalformedResponse(f"the answer is <{_local(root.tag)}>, not a SOAP envelope")
    body = _child(root, "Body")
    payload = next(iter(body), None) if body is not None else None
    if payload is None:
        raise MalformedResponse("the SOAP envelope has an empty or missing Body")
    return payload


def local_name(element: ET.Element) -> str:
    return _local(element.tag)


@dataclass(frozen=True)
class Fault:
    """An XMLVend fault: the fault's xsi:type (UnknownMeterEx, BlockedMeterEx, SystemEx,
    LastResponseEx...; "" when the server sent a bare SOAP fault) and its texts."""

    kind: str
    desc: str
    code: str = ""
    operator_msg: str = ""
    soap_string: str = ""

    @property
    def text(self) -> str:
        return self.desc or self.operator_msg or self.soap_string or self.kind or "XMLVend fault"


def xmlvend_fault(response: ET.Element | None) -> Fault | None:
    """The fault carried by an XMLVendFaultResp-shaped element (BaseResp + fault), if any."""
    fault = _child(response, "fault")
    if fault is None:
        return None
    return Fault(
        kind=_xsi_type(fault),
        desc=_text(_child(fault, "desc")),
        code=_text(_child(fault, "faultCode")),
        operator_msg=_text(_child(response, "operatorMsg")),
    )


def read_fault(payload: ET.Element) -> Fault | None:
    """A soap:Fault (SOAP 1.1, or 1.2 which some servers answer with), with the
    XMLVendFaultResp from its detail when present; None when ``payload`` is no fault."""
    name = _local(payload.tag)
    if name in ("xmlvendFaultResp", "XMLVendFaultResp"):
        return xmlvend_fault(payload)
    if name != "Fault":
        return None
    soap_string = _text(_child(payload, "faultstring")) or _text(_path(payload, "Reason", "Text"))
    soap_code = _text(_child(payload, "faultcode")) or _text(_path(payload, "Code", "Value"))
    detail = _child(payload, "detail")
    if detail is None:
        detail = _child(payload, "Detail")
    for candidate in [] if detail is None else list(detail.iter()):
        found = xmlvend_fault(candidate)
        if found is not None:
            return Fault(found.kind, found.desc, found.code or soap_code, found.operator_msg, soap_string)
    return Fault(kind="", desc="", code=soap_code, soap_string=soap_string)


@dataclass(frozen=True)
class Customer:
    """One confirmCustResult: custVendDetail + custVendConfig + meterDetail."""

    meter: str
    name: str
    account_no: str
    can_vend: bool
    min_amount: Decimal | None
    max_amount: Decimal | None
    utility_type: str  # a Conlog extension attribute (custVendDetail@utilityType), often absent


def read_confirm(answer: ET.Element, meter: str) -> Customer:
    results = _children(answer, "confirmCustResult")
    if not results:
        raise MalformedResponse("confirmCustomerResp has no confirmCustResult")
    # A meter may be known to several suppliers: prefer the result naming our meter.
    result = next((r for r in results if _attr(_child(r, "meterDetail"), "msno") == meter), results[0])
    detail, config = _child(result, "custVendDetail"), _child(result, "custVendConfig")
    if detail is None or config is None:
        raise MalformedResponse("confirmCustResult lacks custVendDetail or custVendConfig")
    can_vend = _text(_child(config, "canVend")).lower()
    if can_vend not in ("true", "false", "1", "0"):
        raise MalformedResponse(f"custVendConfig/canVend is {can_vend!r}")
    return Customer(
        meter=_attr(_child(result, "meterDetail"), "msno"),
        name=_attr(detail, "name"),
        account_no=_attr(detail, "accNo"),
        can_vend=can_vend in ("true", "1"),
        min_amount=_value(_child(config, "minVendAmt"), "minVendAmt"),
        max_amount=_value(_child(config, "maxVendAmt"), "maxVendAmt"),
        utility_type=_attr(detail, "utilityType"),
    )


@dataclass(frozen=True)
class TxLine:
    """One receipt transaction: the credit (with the VAT its ``tax`` elements declare
    inside its amount), a debt recovery, or a service charge (accDesc says which)."""

    kind: str  # credit | debt_recovery | service_charge
    amount: Decimal
    desc: str = ""
    tax: Decimal = Decimal(0)


@dataclass(frozen=True)
class VendAnswer:
    """What a creditVendResp (or trial/free issue/reprint/last response) says."""

    req_msg_id: MsgID | None
    resp_date_time: str
    receipt_no: str
    meter: str  # creditTokenIssue/meterDetail@msno, "" when absent
    name: str
    account_no: str
    tokens: tuple[str, ...]  # key-change tokens first, then the credit token(s)
    units: Decimal
    si_unit: str
    tariff: str
    lines: tuple[TxLine, ...]
    tender: Decimal | None


def _sts(element: ET.Element | None, what: str) -> str:
    cipher = re.sub(r"[\s-]", "", _text(_child(element, "stsCipher")))
    if not _TOKEN.fullmatch(cipher):
        raise MalformedResponse(f"{what} is not a 20-digit STS token")
    return cipher


def read_vend(answer: ET.Element, *, with_tokens: bool = True) -> VendAnswer:
    """``with_tokens=False`` for a trial vend, whose token is a dummy "0000...".

    The receipt is creditVendReceipt@receiptNo / transactions / tx*; the credit tx is the
    one of xsi:type CreditVendTx (or, for servers that omit the type, the one holding a
    creditTokenIssue)."""
    receipt = _child(answer, "creditVendReceipt")
    if receipt is None:
        raise MalformedResponse(f"<{_local(answer.tag)}> has no creditVendReceipt")
    transactions = _child(receipt, "transactions")
    txs = _children(transactions, "tx") or _descendants(receipt, "tx")
    if not txs:
        raise MalformedResponse("creditVendReceipt has no transactions")

    key_change: list[str] = []
    credit: list[str] = []
    lines: list[TxLine] = []
    units = Decimal(0)
    si_unit = tariff = meter = receipt_tx = ""
    for tx in txs:
        kind = _xsi_type(tx)
        amount = _value(_child(tx, "amt"), "tx/amt")
        if amount is None:
            raise MalformedResponse(f"a {kind or 'tx'} has no amt")
        issue = _child(tx, "creditTokenIssue")
        if kind == "CreditVendTx" or (not kind and issue is not None):
            if issue is None:
                raise MalformedResponse("CreditVendTx has no creditTokenIssue")
            tax = sum((_value(_child(t, "amt"), "tax/amt") or Decimal(0) for t in _children(tx, "tax")), Decimal(0))
            lines.append(TxLine("credit", amount, _text(_child(issue, "desc")), tax))
            got = _child(issue, "units")
            credited = _value(got, "units")
            if credited is None:
                raise MalformedResponse("creditTokenIssue has no units")
            units += credited
            si_unit = si_unit or _attr(got, "siUnit")
            meter = meter or _attr(_child(issue, "meterDetail"), "msno")
            tariff = tariff or _text(_path(tx, "tariff", "name"))
            receipt_tx = receipt_tx or _attr(tx, "receiptNo")
            if with_tokens:
                kc_token = _path(tx, "kcTokenIssue", "token")
                if kc_token is not None:
                    key_change.append(_sts(_child(kc_token, "set1stMeterKey"), "set1stMeterKey"))
                    key_change.append(_sts(_child(kc_token, "set2ndMeterKey"), "set2ndMeterKey"))
                credit.append(_sts(_child(issue, "token"), "the credit token"))
        elif kind == "DebtRecoveryTx":
            lines.append(TxLine("debt_recovery", amount, _text(_child(tx, "accDesc"))))
        else:  # ServiceChrgTx, PayAccTx, or a server's own kind of charge
            lines.append(TxLine("service_charge", amount, _text(_child(tx, "accDesc")) or kind))
    if not any(line.kind == "credit" for line in lines):
        raise MalformedResponse("the receipt has no CreditVendTx")
    receipt_no = _attr(receipt, "receiptNo") or receipt_tx
    if not receipt_no:
        raise MalformedResponse("the receipt has no receiptNo")
    customer = _child(answer, "custVendDetail")
    return VendAnswer(
        req_msg_id=_msg_id(_child(answer, "reqMsgID")),
        resp_date_time=_text(_child(answer, "respDateTime")),
        receipt_no=receipt_no,
        meter=meter,
        name=_attr(customer, "name"),
        account_no=_attr(customer, "accNo"),
        tokens=tuple(key_change + credit),
        units=units,
        si_unit=si_unit,
        tariff=tariff,
        lines=tuple(lines),
        tender=_value(_child(transactions, "tenderAmt"), "tenderAmt"),
    )


@dataclass(frozen=True)
class Advice:
    """A LastRespAdviceResp: which request it is about, and that request's answer repeated."""

    advised: MsgID | None  # adviceReqMsgID, echoed
    last_response: ET.Element  # a CreditVendResp-shaped element, or an XMLVendFaultResp


def read_advice(answer: ET.Element) -> Advice:
    last = _child(answer, "lastResponse")
    if last is None:
        raise MalformedResponse("adviceResp has no lastResponse")
    return Advice(_msg_id(_child(answer, "adviceReqMsgID")), last)


def read_reprint(answer: ET.Element) -> list[VendAnswer]:
    """ReprintResp: one ``reprint`` (a BaseVendResp, in practice a CreditVendResp) per vend."""
    return [read_vend(r) for r in _children(answer, "reprint") if _child(r, "creditVendReceipt") is not None]
