"""The XMLVend 2.1 adapter against a stand-in vending server (tests/vending/xmlvend_standin).

What matters most: a credit vend whose answer is lost is recovered with the last-response
advice, never by selling again, and the server ends up with exactly one vend.
"""
from __future__ import annotations

import datetime
import logging
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from tests.vending.xmlvend_standin import BASE, REV, SOAP_ENV, XSI_TYPE, Received, StandinMeter, XmlVendStandin
from utility.vending import xmlvend_messages as messages
from utility.vending.base import (
    AmountTooHigh,
    AmountTooLow,
    BackendUnavailable,
    MeterBlocked,
    ReferenceConflict,
    UnknownMeter,
    VendingError,
)
from utility.vending.xmlvend import LocalMessageIds, XmlVendBackend, unique_number

PLAIN = "01234567890"  # one credit token, arrears recovered
KEY_CHANGE = "04040404041"  # two key-change tokens then the credit token
STOPPED = "07070707070"  # the server will not sell to it (canVend false)
BLOCKED = "05050505050"  # BlockedMeterEx
UNKNOWN = "09999999999"
NOW = datetime.datetime(2026, 3, 14, 9, 26, 53)
TIMEOUT = 0.3
LATE = 0.7  # past the client's timeout


@pytest.fixture
def standin() -> Iterator[XmlVendStandin]:
    server = XmlVendStandin({
        PLAIN: StandinMeter("Awa Ndiaye", debt_percent=10),
        KEY_CHANGE: StandinMeter("Jean Mballa", key_change=True),
        STOPPED: StandinMeter("Paul Essomba", can_vend=False),
        BLOCKED: StandinMeter("Marie Owona", blocked=True),
    })
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_backend(standin: XmlVendStandin) -> Callable[..., XmlVendBackend]:
    def make(**overrides: object) -> XmlVendBackend:
        settings: dict[str, object] = dict(
            url=standin.url, client_id=standin.client_id, terminal_id=standin.terminal_id,
            operator=standin.operator, password=standin.password,
            timeout=TIMEOUT, retries=2, clock=lambda: NOW, backoff=0.01,
        )
        settings.update(overrides)
        return XmlVendBackend(**settings)  # type: ignore[arg-type]

    return make


@pytest.fixture
def backend(make_backend: Callable[..., XmlVendBackend]) -> XmlVendBackend:
    return make_backend()


# -- each operation ------------------------------------------------------------------------------
def test_confirm_reads_the_customer_and_the_limits(backend: XmlVendBackend) -> None:
    info = backend.confirm(PLAIN)
    assert (info.meter, info.name, info.can_vend) == (PLAIN, "Awa Ndiaye", True)
    assert (info.min_amount, info.max_amount, info.utility, info.reason) == (500, 200_000, "electricity", "")


def test_confirm_of_a_meter_the_server_will_not_sell_to(backend: XmlVendBackend) -> None:
    info = backend.confirm(STOPPED)
    assert (info.name, info.can_vend, info.reason) == ("Paul Essomba", False, MeterBlocked.code)


def test_quote_is_a_trial_vend_whose_charges_add_up_energy_last(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    quote = backend.quote(PLAIN, 5000)
    assert [c.code for c in quote.charges] == ["service_charge", "debt_recovery", "vat", "energy"]
    assert sum(c.amount for c in quote.charges) == 5000
    # 5000 - 500 arrears - 100 fee = 4400, of which 671 VAT: 3729 XAF at 100 XAF/kWh.
    assert (quote.charge("debt_recovery"), quote.charge("vat"), quote.charge("energy")) == (500, 671, 3729)
    assert (quote.units, quote.unit, quote.tariff) == (Decimal("37.2"), "kWh", "Domestique")
    assert standin.ops() == ["trialCreditVend"] and standin.vends == []


def test_vend_returns_the_token_the_server_made(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    vend = backend.vend(PLAIN, 5000, "order-1")
    [made] = standin.credit_vends()
    assert (vend.reference, vend.receipt_no, vend.tokens) == ("order-1", made.receipt_no, made.tokens)
    assert (vend.meter, vend.name, vend.amount, vend.units, vend.free) == (PLAIN, "Awa Ndiaye", 5000, made.units, False)
    assert sum(c.amount for c in vend.charges) == 5000 and vend.charges[-1].code == "energy"
    assert len(vend.tokens) == 1 and len(vend.tokens[0]) == 20


def test_vend_with_key_change_gives_three_tokens_key_change_first(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    vend = backend.vend(KEY_CHANGE, 2000, "order-kc")
    [made] = standin.credit_vends()
    assert len(vend.tokens) == 3
    assert vend.tokens == made.tokens  # set1stMeterKey, set2ndMeterKey, then the credit token


def test_reprint_gives_the_last_three_newest_first(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    for n in range(4):
        backend.vend(KEY_CHANGE, 1000 + n * 100, f"order-{n}")
    reprints = backend.reprint(KEY_CHANGE)
    made = standin.credit_vends()
    assert [v.receipt_no for v in reprints] == [v.receipt_no for v in reversed(made)][:3]
    assert [v.amount for v in reprints] == [1300, 1200, 1100]
    assert reprints[0].tokens == made[-1].tokens
    assert len(standin.credit_vends()) == 4  # a reprint sells nothing


def test_free_issue_sends_a_free_issue_request(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    vend = backend.free_issue(PLAIN, Decimal("25.0"), "campaign-1")
    [request] = standin.requests("freeIssue")
    assert request.request.find(f"{{{REV}}}purchaseValue") is None  # XMLVend's free issue carries no money
    assert (vend.free, vend.amount, vend.charges, vend.units) == (True, 0, (), Decimal("25.0"))
    assert vend.extra["requested_units"] == "25.0"
    assert vend.tokens == standin.vends[0].tokens


# -- idempotent operations are retried ---------------------------------------------------------
def test_confirm_is_retried_after_a_500_with_the_same_msg_id(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    standin.fail_next("confirmCustomer", status=500)
    assert backend.confirm(PLAIN).name == "Awa Ndiaye"
    first, second = standin.requests("confirmCustomer")
    assert first.msg_id() == second.msg_id()


def test_reprint_is_retried_after_a_timeout(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    backend.vend(PLAIN, 1000, "order-1")
    standin.hang_next("reprint", delay=LATE)
    assert len(backend.reprint(PLAIN)) == 1
    assert len(standin.requests("reprint")) == 2


def test_retries_wait_by_the_one_backoff(backend: XmlVendBackend, standin: XmlVendStandin, monkeypatch) -> None:
    from utility import calls
    from utility.vending import xmlvend

    waited: list[float] = []
    monkeypatch.setattr(xmlvend.time, "sleep", waited.append)
    monkeypatch.setattr(calls, "jitter", lambda: 0.0)
    standin.fail_next("trialCreditVend", status=503, times=5)
    with pytest.raises(BackendUnavailable):
        backend.quote(PLAIN, 5000)
    assert waited == [calls.backoff(attempt, backend.backoff, xmlvend.BACKOFF_CAP) for attempt in (1, 2)]
    assert waited == [0.005, 0.01]


def test_quote_gives_up_after_the_retries(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    standin.fail_next("trialCreditVend", status=503, times=5)
    with pytest.raises(BackendUnavailable, match="did not answer") as caught:
        backend.quote(PLAIN, 5000)
    assert caught.value.retryable
    assert len(standin.requests("trialCreditVend")) == 3  # 1 + retries


# -- credit vends: never sold twice ------------------------------------------------------------
def test_a_lost_vend_answer_is_recovered_by_the_advice(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    standin.lose_next_response("creditVend", delay=LATE)
    vend = backend.vend(PLAIN, 5000, "order-lost")
    [made] = standin.credit_vends()
    assert (vend.receipt_no, vend.tokens) == (made.receipt_no, made.tokens)
    assert standin.ops() == ["creditVend", "advice"]
    [sent] = standin.requests("creditVend")
    [advice] = standin.requests("advice")
    assert advice.advised() == sent.msg_id()
    assert advice.msg_id() != sent.msg_id()  # the advice is a request of its own
    assert backend.pending_references() == []


def test_a_vend_that_never_reached_the_books_is_sent_again_once_with_the_same_msg_id(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    standin.hang_next("creditVend", delay=LATE)  # nothing recorded, no answer
    vend = backend.vend(PLAIN, 5000, "order-hang")
    assert standin.ops() == ["creditVend", "advice", "creditVend"]
    first, again = standin.requests("creditVend")
    assert first.msg_id() == again.msg_id()
    [made] = standin.credit_vends()
    assert vend.tokens == made.tokens


def test_the_vend_is_sent_again_only_once_per_call(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    standin.hang_next("creditVend", delay=LATE)
    standin.hang_next("creditVend", delay=LATE)
    with pytest.raises(BackendUnavailable, match="same reference"):
        backend.vend(PLAIN, 5000, "order-twice")
    assert standin.ops() == ["creditVend", "advice", "creditVend"]
    assert backend.pending_references() == ["order-twice"]
    # The caller's retry starts with the advice; the server has no vend, so one is made.
    vend = backend.vend(PLAIN, 5000, "order-twice")
    assert standin.ops()[3:] == ["advice", "creditVend"]
    assert [v.receipt_no for v in standin.credit_vends()] == [vend.receipt_no]


def test_server_down_then_back_the_same_reference_starts_with_the_advice(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    standin.stop()
    with pytest.raises(BackendUnavailable) as caught:
        backend.vend(PLAIN, 5000, "order-down")
    assert caught.value.retryable
    assert backend.pending_references() == ["order-down"]

    standin.start()  # the same port
    vend = backend.vend(PLAIN, 5000, "order-down")
    assert standin.ops() == ["advice", "creditVend"]
    [advice] = standin.requests("advice")
    [sent] = standin.requests("creditVend")
    assert advice.advised() == sent.msg_id()
    assert [v.receipt_no for v in standin.credit_vends()] == [vend.receipt_no]
    assert backend.pending_references() == []


def test_while_the_advice_fails_the_vend_stays_unknown_and_is_not_sent_again(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    standin.lose_next_response("creditVend", delay=LATE)
    standin.fail_next("advice", status=502, times=3)
    with pytest.raises(BackendUnavailable, match="outcome is unknown"):
        backend.vend(PLAIN, 5000, "order-unknown")
    assert standin.ops() == ["creditVend", "advice", "advice", "advice"]

    vend = backend.vend(PLAIN, 5000, "order-unknown")
    assert standin.ops()[4:] == ["advice"]
    [made] = standin.credit_vends()
    assert vend.tokens == made.tokens


@pytest.mark.parametrize("kind", ["html", "truncated", "wrong_answer"])
def test_a_garbage_vend_answer_is_not_taken_for_no_sale(
    backend: XmlVendBackend, standin: XmlVendStandin, kind: str
) -> None:
    standin.garbage_next("creditVend", kind=kind)
    vend = backend.vend(PLAIN, 5000, f"order-{kind}")
    assert standin.ops() == ["creditVend", "advice", "creditVend"]
    assert [v.receipt_no for v in standin.credit_vends()] == [vend.receipt_no]


def test_a_500_page_on_the_vend_is_checked_with_the_advice(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    standin.fail_next("creditVend", status=500)
    backend.vend(PLAIN, 5000, "order-500")
    assert standin.ops() == ["creditVend", "advice", "creditVend"]
    assert len(standin.credit_vends()) == 1


def test_the_same_reference_twice_is_the_same_vend(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    first = backend.vend(PLAIN, 5000, "order-1")
    assert backend.vend(PLAIN, 5000, "order-1") == first
    assert len(standin.credit_vends()) == 1
    with pytest.raises(ReferenceConflict):
        backend.vend(PLAIN, 6000, "order-1")


def test_a_restarted_process_with_durable_msg_ids_gets_the_server_to_deduplicate(
    make_backend: Callable[..., XmlVendBackend], standin: XmlVendStandin
) -> None:
    ids = LocalMessageIds(clock=lambda: NOW)  # stands for a store that outlives the process
    first = make_backend(message_ids=ids).vend(PLAIN, 5000, "order-1")
    again = make_backend(message_ids=ids).vend(PLAIN, 5000, "order-1")  # a new process, no memory
    assert (again.receipt_no, again.tokens) == (first.receipt_no, first.tokens)
    first_sent, second_sent = standin.requests("creditVend")
    assert first_sent.msg_id() == second_sent.msg_id()
    assert len(standin.credit_vends()) == 1


def test_a_reference_gives_the_same_unique_number_in_every_process() -> None:
    a = LocalMessageIds(clock=lambda: NOW).for_reference("order-42")
    b = LocalMessageIds(clock=lambda: NOW + datetime.timedelta(hours=1)).for_reference("order-42")
    assert a.unique_number == b.unique_number == unique_number("order-42")
    assert a.date_time == "20260314092653"
    assert unique_number("order-43") != a.unique_number and unique_number("x") < 10**9


# -- garbage and faults ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["html", "truncated", "not_envelope", "empty", "wrong_answer"])
def test_garbage_is_backend_unavailable(backend: XmlVendBackend, standin: XmlVendStandin, kind: str) -> None:
    standin.garbage_next("confirmCustomer", kind=kind)
    with pytest.raises(BackendUnavailable, match="unusable"):
        backend.confirm(PLAIN)
    assert len(standin.requests("confirmCustomer")) == 1


def test_an_unknown_meter(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    with pytest.raises(UnknownMeter) as caught:
        backend.confirm(UNKNOWN)
    assert UNKNOWN not in str(caught.value) and "****9999" in str(caught.value)
    assert len(standin.requests("confirmCustomer")) == 1  # a fault comes with HTTP 500: not retried


def test_a_blocked_meter(backend: XmlVendBackend) -> None:
    with pytest.raises(MeterBlocked):
        backend.confirm(BLOCKED)
    with pytest.raises(MeterBlocked):
        backend.vend(BLOCKED, 5000, "order-blocked")


@pytest.mark.parametrize(("amount", "error", "limit"), [
    (100, AmountTooLow, ("minimum", 500)), (900_000, AmountTooHigh, ("maximum", 200_000))])
def test_amount_limits(backend: XmlVendBackend, amount: int, error: type[VendingError], limit: tuple[str, int]) -> None:
    with pytest.raises(error) as caught:
        backend.vend(PLAIN, amount, "order-limits")
    assert caught.value.details[limit[0]] == limit[1]
    assert backend.pending_references() == []  # refused: nothing was made


def test_any_other_fault_is_a_vending_error_with_its_text(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    standin.fault_next("creditVend", "VendorCreditEx", "Insufficient vendor credit")
    with pytest.raises(VendingError, match="Insufficient vendor credit") as caught:
        backend.vend(PLAIN, 5000, "order-credit")
    assert type(caught.value) is VendingError and not caught.value.retryable
    assert caught.value.details["fault"] == "VendorCreditEx"
    assert backend.pending_references() == []


def test_a_system_fault_is_retryable(backend: XmlVendBackend, standin: XmlVendStandin) -> None:
    standin.fault_next("confirmCustomer", "SystemEx", "Database unavailable")
    with pytest.raises(BackendUnavailable, match="Database unavailable"):
        backend.confirm(PLAIN)


# -- on the wire -------------------------------------------------------------------------------
def test_every_request_carries_the_header_in_the_base_namespace(
    backend: XmlVendBackend, standin: XmlVendStandin
) -> None:
    backend.confirm(PLAIN)
    backend.quote(PLAIN, 5000)
    standin.lose_next_response("creditVend", delay=LATE)
    backend.vend(PLAIN, 5000, "order-1")
    backend.reprint(PLAIN)
    backend.free_issue(PLAIN, Decimal("25.0"), "campaign-1")
    assert set(standin.ops()) == {"confirmCustomer", "trialCreditVend", "creditVend", "advice", "reprint", "freeIssue"}
    for received in standin.received:
        assert received.headers["content-type"].startswith("text/xml")
        assert "soapaction" in received.headers
        envelope = ET.fromstring(received.raw)
        assert envelope.tag == f"{{{SOAP_ENV}}}Envelope"
        request = received.request
        assert request.tag.startswith(f"{{{BASE if received.op == 'advice' else REV}}}")
        client, terminal, msg_id, auth = list(request)[:4]
        assert client.tag == f"{{{BASE}}}clientID" and client.get("ean") == standin.client_id
        assert received.resolve(client.get(XSI_TYPE, "")) == f"{{{BASE}}}EANDeviceID"
        assert terminal.tag == f"{{{BASE}}}terminalID" and terminal.get("id") == standin.terminal_id
        assert received.resolve(terminal.get(XSI_TYPE, "")) == f"{{{BASE}}}GenericDeviceID"
        assert msg_id.tag == f"{{{BASE}}}msgID" and msg_id.get("dateTime") == "20260314092653"
        assert msg_id.get("uniqueNumber", "").isdigit()
        assert auth.findtext(f"{{{BASE}}}opName") == standin.operator
        assert auth.findtext(f"{{{BASE}}}password") == standin.password  # escaped on the wire, intact here
    [vend] = standin.requests("creditVend")
    assert received_child(vend, BASE, "resource") == f"{{{BASE}}}Electricity"
    assert received_child(vend, BASE, "idMethod") == f"{{{BASE}}}VendIDMethod"
    assert received_child(vend, REV, "purchaseValue") == f"{{{REV}}}PurchaseValueCurrency"
    [confirm] = standin.requests("confirmCustomer")
    assert received_child(confirm, REV, "idMethod") == f"{{{BASE}}}VendIDMethod"
    [advice] = standin.requests("advice")
    assert received.resolve(advice.request.get(XSI_TYPE, "")) == f"{{{BASE}}}LastRespAdviceReq"
    assert advice.request.find(f"{{{BASE}}}adviceReqMsgID") is not None
    assert vend.request.find(f"{{{REV}}}purchaseValue/{{{REV}}}amt").attrib == {"value": "5000", "symbol": "XAF"}


def received_child(received: Received, ns: str, name: str) -> str:
    """The resolved xsi:type of a request child that must be in namespace ``ns``."""
    element = received.request.find(f"{{{ns}}}{name}")
    assert element is not None, f"{name} missing from the {ns} namespace"
    return received.resolve(element.get(XSI_TYPE, ""))


def test_the_standin_refuses_a_header_in_the_wrong_namespace(standin: XmlVendStandin) -> None:
    """The wire checks above mean something only if the stand-in is strict."""
    body = messages.confirm_customer_req(
        messages.Credentials(standin.client_id, standin.terminal_id, standin.operator, standin.password),
        messages.MsgID("20260314092653", 1), PLAIN,
    ).replace(b"<base:clientID", b"<rev:clientID")
    request = urllib.request.Request(standin.url, body, {"Content-Type": "text/xml"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=2)
    assert b"XMLVendSchemaEx" in caught.value.read()


def test_answers_are_read_whatever_namespaces_the_server_uses() -> None:
    """Servers put the repeated answer's children in the base namespace and prefix some
    revenue ones (a recorded Conlog advice does both): reading goes by local names."""
    raw = f"""<?xml version="1.0"?>
<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Body>
<adviceResp xmlns="{BASE}" xsi:type="LastRespAdviceResp"><reqMsgID dateTime="20260314092700" uniqueNumber="7"/>
<adviceReqMsgID dateTime="20260314092653" uniqueNumber="123"/>
<lastResponse xmlns:q1="{REV}" xsi:type="q1:CreditVendResp">
<reqMsgID dateTime="20260314092653" uniqueNumber="123"/><respDateTime>2026-03-14T10:26:55.1234567+01:00</respDateTime>
<custVendDetail name="Awa Ndiaye" address="" accNo="A1"/>
<q1:creditVendReceipt receiptNo="R-9"><q1:transactions>
<q1:tx xsi:type="q1:CreditVendTx"><q1:amt value="900" symbol="XAF"/>
<q1:creditTokenIssue xsi:type="SaleCredTokenIssue"><desc>Credit Token</desc>
<meterDetail msno="{PLAIN}" sgc="600727" krn="1" ti="1"><meterType tt="02"/></meterDetail>
<token xsi:type="STS1Token"><stsCipher>1234 5678 9012 3456 7890</stsCipher></token>
<units value="9.05" siUnit="KWh"/><resource xsi:type="Electricity"/></q1:creditTokenIssue>
<q1:tariff><name>DOMESTIC</name></q1:tariff></q1:tx>
<q1:tx xsi:type="q1:ServiceChrgTx"><q1:amt value="100" symbol="XAF"/><q1:accDesc>TVA</q1:accDesc></q1:tx>
<q1:tenderAmt value="1000.00" symbol="XAF"/></q1:transactions></q1:creditVendReceipt>
</lastResponse></adviceResp></s:Body></s:Envelope>""".encode()
    advice = messages.read_advice(messages.open_envelope(raw))
    assert advice.advised == messages.MsgID("20260314092653", 123)
    receipt = messages.read_vend(advice.last_response)
    assert (receipt.receipt_no, receipt.meter, receipt.tokens) == ("R-9", PLAIN, ("12345678901234567890",))
    assert (receipt.units, receipt.si_unit, receipt.tariff, receipt.tender) == (
        Decimal("9.05"), "KWh", "DOMESTIC", Decimal("1000.00"))
    assert [(line.kind, line.amount, line.desc) for line in receipt.lines] == [
        ("credit", Decimal("900"), "Credit Token"), ("service_charge", Decimal("100"), "TVA")]


def test_nothing_logged_shows_a_meter_a_token_or_the_password(
    backend: XmlVendBackend, standin: XmlVendStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    standin.lose_next_response("creditVend", delay=LATE)
    vend = backend.vend(KEY_CHANGE, 5000, "order-log")
    with pytest.raises(UnknownMeter):
        backend.vend(UNKNOWN, 5000, "order-unknown")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "****4041" in logged  # the masked meter is there: the test looks at real log lines
    for secret in (KEY_CHANGE, UNKNOWN, standin.password, *vend.tokens):
        assert secret not in logged
