"""The MTN MoMo adapter against the stand-in Collection API: the request-to-pay contract,
tokens, references that are never a second debit, statuses and their reasons, the rate
window, configuration mistakes that fail fast, the settings a live setup needs, and
callbacks that are answered at once and only believed after a status GET in a job."""
from __future__ import annotations

import time
import uuid

import pytest
import redis

from state import journal, keys
from tests.payments.conftest import Clock, Recorder, install, momo_config, run_jobs, served
from tests.payments.standin_momo import StandinMomo
from utility.payments import provider
from utility.payments.base import (
    PaymentError,
    PaymentRequest,
    PaymentResult,
    ProviderMisconfigured,
    ProviderUnavailable,
)
from utility.payments.mtn_momo import MtnMomo, parse_networks, settings_from, startup_problems
from utility.payments.poller import PollSettings, poll_pending

PAYER = "+46733123450"
ORDER = PaymentRequest("ORDER001", PAYER, 1500, note="units ORDER001")


def record(client: redis.Redis, ref: str) -> dict[str, str]:
    return client.hgetall(keys.payment("mtn_momo", ref))


def kinds(client: redis.Redis) -> list[str]:
    return [entry["kind"] for entry in journal.read(client)]


# -- request to pay ----------------------------------------------------------------------------
def test_a_request_to_pay_follows_the_contract(mtn: MtnMomo, momo: StandinMomo, redis_client):
    result = mtn.request(ORDER)

    assert (result.provider, result.order_ref, result.state, result.reason) == ("mtn_momo", "ORDER001", "pending", "")
    [call] = momo.requests_to_pay()
    assert call.status == 202
    assert call.headers["X-Reference-Id"] == result.provider_ref
    assert uuid.UUID(result.provider_ref).version == 4
    assert call.headers["X-Target-Environment"] == "sandbox"
    assert call.headers["X-Callback-Url"] == "http://127.0.0.1:9/payments/mtn_momo/callback"
    assert call.headers["Ocp-Apim-Subscription-Key"] == momo.subscription_key
    assert call.headers["Authorization"].startswith("Bearer ")
    assert call.body == {
        "amount": "1500",
        "currency": "EUR",
        "externalId": "ORDER001",
        "payer": {"partyIdType": "MSISDN", "partyId": "46733123450"},
        "payerMessage": "units ORDER001",
        "payeeNote": "units ORDER001",
    }
    stored = record(redis_client, result.provider_ref)
    assert {k: stored[k] for k in ("order_ref", "payer", "amount", "currency", "state", "reason", "sent")} == {
        "order_ref": "ORDER001", "payer": PAYER, "amount": "1500", "currency": "EUR",
        "state": "pending", "reason": "", "sent": "accepted",
    }
    assert float(stored["created_at"]) > 0
    [requested] = [e for e in journal.read(redis_client) if e["kind"] == "payment.requested"]
    assert requested["order"] == "ORDER001" and requested["payer"] == "****3450" and requested["amount"] == "1500"


def test_asking_again_for_an_order_sends_nothing_new(mtn: MtnMomo, momo: StandinMomo):
    first = mtn.request(ORDER)
    again = mtn.request(ORDER)
    assert again == first
    assert len(momo.requests_to_pay()) == 1 and len(momo.payments) == 1


def test_each_order_gets_a_fresh_reference(mtn: MtnMomo, momo: StandinMomo):
    refs = {mtn.request(PaymentRequest(f"ORDER00{i}", PAYER, 1000)).provider_ref for i in range(1, 4)}
    assert len(refs) == 3 and set(momo.payments) == refs
    assert all(uuid.UUID(ref).version == 4 for ref in refs)


def test_an_order_reference_is_not_reused_for_other_money(mtn: MtnMomo, momo: StandinMomo):
    mtn.request(ORDER)
    with pytest.raises(PaymentError) as caught:
        mtn.request(PaymentRequest("ORDER001", PAYER, 2000))
    assert not caught.value.retryable
    assert len(momo.requests_to_pay()) == 1


def test_a_request_refused_outright_fails_the_payment_once(mtn: MtnMomo, momo: StandinMomo, redis_client):
    unknown = PaymentRequest("ORDER001", "+2371234", 1500)  # too short for MTN's MSISDN check: 400
    result = mtn.request(unknown)
    assert (result.state, result.reason) == ("failed", "payer_not_found")
    assert mtn.request(unknown) == result  # nothing sent again
    assert len(momo.requests_to_pay()) == 1
    assert record(redis_client, result.provider_ref)["sent"] == "refused"


def test_an_unknown_payer_is_payer_not_found(mtn: MtnMomo, momo: StandinMomo):
    result = mtn.request(PaymentRequest("ORDER001", "+2371234", 1500))  # too short for MTN's MSISDN check
    assert (result.state, result.reason) == ("failed", "payer_not_found")


# -- lost answers: never a second debit ------------------------------------------------------------
def test_an_answer_lost_after_mtn_took_the_request_is_recovered_by_409(mtn: MtnMomo, momo: StandinMomo, redis_client):
    momo.script(PAYER, "PENDING")
    momo.fail_next("requesttopay", "accept_then_hang")
    with pytest.raises(ProviderUnavailable) as caught:
        mtn.request(ORDER)
    assert caught.value.retryable
    [ref] = momo.payments  # it reached MTN
    assert record(redis_client, ref)["state"] == "pending"

    result = mtn.request(ORDER)  # the caller tries again: same order, same reference

    assert (result.provider_ref, result.state) == (ref, "pending")
    assert [c.status for c in momo.requests_to_pay()] == [202, 409]  # the 202 nobody heard, then 409
    assert len(momo.payments) == 1  # one debit request, ever
    assert momo.count("status") == 1  # the 409 was resolved by looking the payment up
    assert record(redis_client, ref)["sent"] == "accepted"
    assert "payment.unavailable" in kinds(redis_client)


def test_a_409_that_finds_the_payment_settled_returns_its_state(mtn: MtnMomo, momo: StandinMomo):
    momo.script(PAYER, "FAILED", "APPROVAL_REJECTED")
    momo.fail_next("requesttopay", "accept_then_hang")
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)
    result = mtn.request(ORDER)
    assert (result.state, result.reason) == ("failed", "declined")


def test_a_5xx_keeps_the_reference_for_the_retry(mtn: MtnMomo, momo: StandinMomo, redis_client):
    momo.fail_next("requesttopay", "500")
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)
    assert momo.payments == {}
    ref = redis_client.hget(keys.payment("mtn_momo", "order:ORDER001"), "provider_ref")
    assert record(redis_client, ref)["sent"] == ""  # pending, outcome unknown

    result = mtn.request(ORDER)
    assert result.provider_ref == ref and list(momo.payments) == [ref]


def test_a_timeout_is_provider_unavailable(mtn: MtnMomo, momo: StandinMomo):
    momo.fail_next("requesttopay", "hang")
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)
    assert momo.payments == {}


def test_mtn_down_is_provider_unavailable(mtn: MtnMomo, momo: StandinMomo):
    momo.stop()
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)


def test_a_request_that_never_reached_mtn_fails_after_a_grace(mtn: MtnMomo, momo: StandinMomo, clock: Clock):
    momo.fail_next("requesttopay", "500")
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)
    ref = mtn.records.ref_for_order("ORDER001")
    assert mtn.status(ref).state == "pending"  # 404, but it may still be on its way
    clock.advance(mtn.settings.not_found_grace + 1)
    assert (mtn.status(ref).state, mtn.status(ref).reason) == ("failed", "provider_unavailable")


# -- the token ---------------------------------------------------------------------------------------
def test_the_token_is_cached_in_redis_a_bit_under_its_life(mtn: MtnMomo, momo: StandinMomo, redis_client):
    mtn.request(ORDER)
    mtn.request(PaymentRequest("ORDER002", PAYER, 1000))
    mtn.status(mtn.records.ref_for_order("ORDER001"))
    assert momo.count("token") == 1
    ttl = redis_client.ttl(keys.provider_token("mtn_momo"))
    assert 3600 - 120 < ttl < 3600


def test_the_token_call_uses_basic_auth_and_the_subscription_key(mtn: MtnMomo, momo: StandinMomo):
    mtn.request(ORDER)
    [call] = [c for c in momo.calls if c.path == "/collection/token/"]
    assert call.method == "POST" and call.status == 200
    assert call.headers["Authorization"].startswith("Basic ")
    assert call.headers["Ocp-Apim-Subscription-Key"] == momo.subscription_key


def test_an_expired_token_is_replaced(mtn: MtnMomo, momo: StandinMomo, redis_client):
    mtn.request(ORDER)
    # Expiry as we see it is the Redis TTL running out (a bit before MTN's own): let it.
    redis_client.delete(keys.provider_token("mtn_momo"))
    momo.expire_tokens()
    mtn.request(PaymentRequest("ORDER002", PAYER, 1000))
    assert momo.count("token") == 2
    assert momo.count("requesttopay", 401) == 0  # the new token was fetched before, not after a refusal
    assert len(momo.payments) == 2


def test_a_token_refused_early_is_refreshed_and_the_call_retried_once(mtn: MtnMomo, momo: StandinMomo, redis_client):
    mtn.request(ORDER)
    old = redis_client.get(keys.provider_token("mtn_momo"))
    momo.expire_tokens()  # MTN ends it before its expires_in
    result = mtn.request(PaymentRequest("ORDER002", PAYER, 1000))
    assert result.state == "pending"
    assert momo.count("token") == 2 and momo.count("requesttopay", 401) == 1
    assert len(momo.payments) == 2
    assert redis_client.get(keys.provider_token("mtn_momo")) not in (None, old)


def test_a_token_refused_again_is_not_retried_forever(mtn: MtnMomo, momo: StandinMomo):
    mtn.request(ORDER)
    momo.reject_tokens = True
    with pytest.raises(ProviderUnavailable):
        mtn.request(PaymentRequest("ORDER002", PAYER, 1000))
    assert momo.count("requesttopay", 401) == 2  # the call and one retry with a new token
    assert momo.count("token") == 2


def test_wrong_credentials_make_the_provider_unavailable(momo_app, momo: StandinMomo, redis_client, caplog):
    momo_app.config["MTN_MOMO_API_KEY"] = "not-the-key"
    wrong = MtnMomo(redis_client, settings_from(momo_app.config))
    with pytest.raises(ProviderUnavailable):
        wrong.request(ORDER)
    assert momo.count("token", 401) == 1 and momo.payments == {}
    assert "refused our API user" in caplog.text


# -- status -------------------------------------------------------------------------------------------
MAPPED = [
    ("APPROVAL_REJECTED", "declined"),
    ("EXPIRED", "expired"),
    ("PAYER_NOT_FOUND", "payer_not_found"),
    ("NOT_ENOUGH_FUNDS", "insufficient_funds"),
    ("PAYER_LIMIT_REACHED", "payer_limit"),
    ("SERVICE_UNAVAILABLE", "provider_unavailable"),
    ("COULD_NOT_PERFORM_TRANSACTION", "expired"),  # the payer did not approve within MTN's 5 minutes
    ("SENDER_ACCOUNT_NOT_ACTIVE", "payer_inactive"),
    ("INTERNAL_PROCESSING_ERROR", "other"),
    ("TRANSACTION_CANCELED", "other"),
]


@pytest.mark.parametrize("as_object", [False, True], ids=["reason-code", "reason-object"])
@pytest.mark.parametrize(("code", "reason"), MAPPED)
def test_each_failure_reason_is_mapped(mtn: MtnMomo, momo: StandinMomo, redis_client, code, reason, as_object):
    momo.reason_as_object = as_object
    momo.script(PAYER, "FAILED", code)
    ref = mtn.request(ORDER).provider_ref
    result = mtn.status(ref)
    assert result == PaymentResult("mtn_momo", ref, "ORDER001", "failed", reason)
    stored = record(redis_client, ref)
    assert (stored["state"], stored["reason"]) == ("failed", reason)
    [learned] = [e for e in journal.read(redis_client) if e["kind"] == "payment.state"]
    assert (learned["state"], learned["reason"], learned["via"]) == ("failed", reason, "status")


def test_pending_then_successful(mtn: MtnMomo, momo: StandinMomo, redis_client):
    momo.script(PAYER, "SUCCESSFUL", pending_polls=1)
    ref = mtn.request(ORDER).provider_ref
    assert mtn.status(ref).state == "pending"
    assert mtn.status(ref) == PaymentResult("mtn_momo", ref, "ORDER001", "successful", "")
    assert mtn.status(ref).state == "successful"
    assert kinds(redis_client).count("payment.state") == 1  # learned once


def test_status_errors_are_provider_unavailable(mtn: MtnMomo, momo: StandinMomo):
    ref = mtn.request(ORDER).provider_ref
    momo.fail_next("status", "500")
    with pytest.raises(ProviderUnavailable):
        mtn.status(ref)
    momo.fail_next("status", "hang")
    with pytest.raises(ProviderUnavailable):
        mtn.status(ref)


def test_status_calls_share_a_rate_window(momo_app, momo: StandinMomo, redis_client, clock: Clock):
    settings = settings_from({**momo_app.config, "MTN_MOMO_STATUS_RATE": 2})
    limited = MtnMomo(redis_client, settings.__class__(**{**vars(settings), "rate_wait": 0.0}), clock=clock)
    ref = limited.request(ORDER).provider_ref
    limited.status(ref)
    # Another process on the same Redis takes the other slot of this second.
    MtnMomo(redis_client, limited.settings, clock=clock).status(ref)
    with pytest.raises(ProviderUnavailable, match="rate limit"):
        limited.status(ref)
    assert momo.count("status") == 2
    clock.advance(1)
    assert limited.status(ref).state == "successful"


def test_a_full_window_waits_for_the_next_second_when_it_may(momo_app, momo: StandinMomo, redis_client, clock: Clock):
    settings = settings_from({**momo_app.config, "MTN_MOMO_STATUS_RATE": 1})
    patient = MtnMomo(redis_client, settings, clock=clock, sleep=clock.advance)
    ref = patient.request(ORDER).provider_ref
    start = clock()
    patient.status(ref)
    patient.status(ref)
    assert momo.count("status") == 2 and clock() == start + 1  # slept to the next second


# -- callbacks ----------------------------------------------------------------------------------------
def test_a_callback_is_confirmed_by_a_status_get(momo_app, momo: StandinMomo, recorder: Recorder, redis_client):
    with served(momo_app) as base:
        momo_app.config["MTN_MOMO_CALLBACK_URL"] = base + "/payments/mtn_momo/callback"
        mtn = provider(momo_app)
        momo.script(PAYER, "SUCCESSFUL", pending_polls=99)  # PENDING until the payer answers
        ref = mtn.request(ORDER).provider_ref
        before = momo.count("status")

        assert momo.deliver_callback(ref) == 200  # the payer approved: MTN calls back, once
        assert recorder.results == [] and momo.count("status") == before  # answered first...
        run_jobs(momo_app)  # ...settled by the job it queued

        assert recorder.results == [PaymentResult("mtn_momo", ref, "ORDER001", "successful", "")]
        assert momo.count("status") == before + 1  # believed only after asking MTN
        assert momo.deliver_callback(ref) is None  # and never again
    journaled = kinds(redis_client)
    assert journaled.index("payment.callback") < journaled.index("payment.state")  # the callback, then what MTN said
    assert redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref) is None  # settled: out of the index


def test_a_slow_status_get_does_not_hold_up_the_callback(momo_app, momo: StandinMomo, recorder: Recorder):
    """MTN waits 2 s for a callback's answer, then retries and blocks the callback URL:
    the answer must not wait for the status GET, however long MTN takes to answer it."""
    momo_app.config["MTN_MOMO_TIMEOUT"] = 10.0  # a patient client: the slow GET is answered, late
    with served(momo_app) as base:
        momo_app.config["MTN_MOMO_CALLBACK_URL"] = base + "/payments/mtn_momo/callback"
        mtn = provider(momo_app)
        momo.script(PAYER, "SUCCESSFUL", pending_polls=99)
        ref = mtn.request(ORDER).provider_ref
        momo.fail_next("status", "slow")  # 3 s, where MTN's patience is 2

        started = time.monotonic()
        assert momo.deliver_callback(ref) == 200
        answered_in = time.monotonic() - started

        assert answered_in < 1.0
        assert recorder.results == []  # nothing settled inside the callback
        run_jobs(momo_app)
    assert recorder.results == [PaymentResult("mtn_momo", ref, "ORDER001", "successful", "")]
    assert momo.count("status") == 1


def test_a_callback_by_put_is_taken_too(momo_app, momo: StandinMomo, recorder: Recorder):
    with served(momo_app) as base:
        momo_app.config["MTN_MOMO_CALLBACK_URL"] = base + "/payments/mtn_momo/callback"
        momo.script(PAYER, "FAILED", "NOT_ENOUGH_FUNDS")
        ref = provider(momo_app).request(ORDER).provider_ref
        assert momo.deliver_callback(ref, method="PUT") == 200
        run_jobs(momo_app)
    assert recorder.results == [PaymentResult("mtn_momo", ref, "ORDER001", "failed", "insufficient_funds")]


def test_a_forged_callback_changes_nothing(momo_app, mtn: MtnMomo, momo: StandinMomo, recorder: Recorder, redis_client):
    momo.script(PAYER, "PENDING")
    ref = mtn.request(ORDER).provider_ref
    forged = {"externalId": "ORDER001", "status": "SUCCESSFUL", "amount": "1500", "currency": "EUR",
              "financialTransactionId": "1", "payer": {"partyIdType": "MSISDN", "partyId": "46733123450"}}
    answer = momo_app.test_client().post("/payments/mtn_momo/callback", json=forged)
    assert (answer.status_code, answer.text) == (200, "checking\n")
    run_jobs(momo_app)
    assert recorder.results == [] and record(redis_client, ref)["state"] == "pending"
    assert momo.count("status") == 1


def test_a_callback_that_cannot_be_confirmed_is_left_to_the_poller_soon(momo_app, mtn, momo, recorder, redis_client, clock):
    ref = mtn.request(ORDER).provider_ref
    index = keys.payment("mtn_momo", "index:pending")
    redis_client.zadd(index, {ref: clock() + 600})  # the poller had backed off for a while
    momo.fail_next("status", "500")
    answer = momo_app.test_client().post("/payments/mtn_momo/callback", json=momo.status_body(momo.payments[ref]))
    assert answer.status_code == 200
    run_jobs(momo_app)
    assert recorder.results == []
    assert redis_client.zscore(index, ref) <= time.time()  # due now, not in ten minutes


def test_a_callback_after_the_hand_over_asks_again_but_does_not_requeue(momo_app, mtn, momo, recorder, redis_client):
    momo.script(PAYER, "FAILED", "APPROVAL_REJECTED")
    ref = mtn.request(ORDER).provider_ref
    client = momo_app.test_client()
    body = momo.status_body(momo.payments[ref])
    client.post("/payments/mtn_momo/callback", json=body)
    run_jobs(momo_app)
    assert [r.reason for r in recorder.results] == ["declined"]

    client.post("/payments/mtn_momo/callback", json=body)  # MTN retrying the callback
    run_jobs(momo_app)

    assert len(recorder.results) == 1  # a duplicate, not handed over again
    assert momo.count("status") == 2  # asked again: a late success would still be found
    # Handed over, so out of the poller's index for good (or it would be due forever).
    assert redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref) is None


def test_callbacks_from_outside_the_allow_list_are_refused(momo_app, mtn: MtnMomo, momo: StandinMomo, recorder):
    ref = mtn.request(ORDER).provider_ref
    body = momo.status_body(momo.payments[ref])
    refused = MtnMomo(mtn.redis, settings_from({**momo_app.config, "MTN_MOMO_CALLBACK_IPS": "10.0.0.0/8, 192.0.2.7"}))
    install(momo_app, refused)
    answer = momo_app.test_client().post("/payments/mtn_momo/callback", json=body)
    assert answer.status_code == 403 and answer.text == "callback from an address not allowed\n"
    allowed = MtnMomo(mtn.redis, settings_from({**momo_app.config, "MTN_MOMO_CALLBACK_IPS": ["10.0.0.0/8", "127.0.0.0/8"]}))
    install(momo_app, allowed)
    assert momo_app.test_client().post("/payments/mtn_momo/callback", json=body).status_code == 200
    run_jobs(momo_app)
    assert [r.state for r in recorder.results] == ["successful"]


def test_a_callback_for_an_order_we_never_asked_is_acknowledged(momo_app, mtn: MtnMomo, recorder, redis_client):
    body = {"externalId": "NOSUCH01", "status": "SUCCESSFUL", "amount": "100", "currency": "EUR"}
    answer = momo_app.test_client().post("/payments/mtn_momo/callback", json=body)
    assert answer.status_code == 200 and recorder.results == []
    assert "payment.unknown" in kinds(redis_client)


def test_malformed_mtn_callbacks_are_400(momo_app, mtn: MtnMomo):
    client = momo_app.test_client()
    assert client.post("/payments/mtn_momo/callback", data="{", content_type="application/json").status_code == 400
    answer = client.post("/payments/mtn_momo/callback", json={"status": "SUCCESSFUL"})
    assert (answer.status_code, answer.text) == (400, "missing field: externalId\n")


def test_settings_need_the_credentials():
    with pytest.raises(ValueError, match="GUICHET_MTN_MOMO_API_KEY"):
        settings_from({"MTN_MOMO_SUBSCRIPTION_KEY": "k", "MTN_MOMO_API_USER": "u"})
    assert [str(n) for n in parse_networks("196.201.214.0/24, 41.202.207.10")] == ["196.201.214.0/24", "41.202.207.10/32"]
    assert parse_networks("") == ()


def test_production_refuses_a_currency_it_is_not_set_up_for(momo_app, redis_client):
    config = {**momo_app.config, "MTN_MOMO_TARGET_ENVIRONMENT": "mtncameroon", "MTN_MOMO_CURRENCY": "XAF"}
    live = MtnMomo(redis_client, settings_from(config))
    with pytest.raises(PaymentError):
        live.request(PaymentRequest("ORDER001", PAYER, 1500, currency="EUR"))


# -- our configuration, as MTN sees it ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "value", "code"),
    [
        ("currency", "XAF", "INVALID_CURRENCY"),  # the account's currency is not our EUR
        ("callback_host", "guichet.example", "INVALID_CALLBACK_URL_HOST"),  # not the host registered
        ("environment", "mtncameroon", "NOT_ALLOWED_TARGET_ENVIRONMENT"),  # our API user is the sandbox's
        ("not_allowed", True, "NOT_ALLOWED"),  # the API user may not collect
    ],
    ids=["currency", "callback-host", "environment", "not-allowed"],
)
def test_a_configuration_error_fails_at_once_and_is_never_polled(
    momo_app, mtn: MtnMomo, momo: StandinMomo, recorder, redis_client, clock, caplog, setting, value, code
):
    setattr(momo, setting, value)
    with pytest.raises(ProviderMisconfigured) as caught:
        mtn.request(ORDER)

    assert caught.value.code == code and not caught.value.retryable
    assert not isinstance(caught.value, ProviderUnavailable)  # not an outage: asking later fails the same
    [call] = momo.requests_to_pay()
    assert call.status == 500 and momo.payments == {}  # MTN's way of saying it, and it took nothing
    ref = mtn.records.ref_for_order("ORDER001")
    stored = record(redis_client, ref)
    assert (stored["state"], stored["sent"], stored["error"]) == ("failed", "refused", code)
    assert redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref) is None
    assert mtn.request(ORDER).state == "failed" and len(momo.requests_to_pay()) == 1  # never sent again
    assert poll_pending(momo_app, recorder, provider=mtn, settings=PollSettings(), now=clock() + 3600) == []
    assert momo.count("status") == 0 and recorder.results == []  # no polling of a request MTN never took
    assert code in caplog.text and "****450" in caplog.text
    assert "46733123450" not in caplog.text  # the payer's number is masked in the log
    assert "payment.misconfigured" in kinds(redis_client)


def test_a_configuration_error_after_an_unanswered_attempt_leaves_the_payment_to_the_poller(
    momo_app, mtn: MtnMomo, momo: StandinMomo, recorder, redis_client, clock
):
    momo.fail_next("requesttopay", "accept_then_hang")  # MTN took it; we never heard
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)
    momo.currency = "XAF"  # and then our setup went wrong
    with pytest.raises(ProviderUnavailable):  # not "refused": the first attempt may be paid
        mtn.request(ORDER)
    [ref] = momo.payments
    assert record(redis_client, ref)["state"] == "pending"
    [paid] = poll_pending(momo_app, recorder, provider=mtn, settings=PollSettings(), now=clock() + 60)
    assert (paid.provider_ref, paid.state) == (ref, "successful")


def test_an_order_fails_at_once_when_mtn_refuses_our_setup(momo_app, mtn: MtnMomo, momo: StandinMomo):
    from utility.orders import UNITS
    from utility.services import services

    momo.currency = "XAF"
    order = services(momo_app).orders.place(
        kind=UNITS, phone="+237699000001", lang="fr", target="01412345678", amount=1500, payer=PAYER, reference="ORDER001"
    )
    assert (order.state, order.reason) == ("failed", "payment_refused")


def test_a_500_without_a_configuration_code_is_still_an_outage(mtn: MtnMomo, momo: StandinMomo, redis_client):
    momo.fail_next("requesttopay", "500")  # 500 INTERNAL_PROCESSING_ERROR
    with pytest.raises(ProviderUnavailable):
        mtn.request(ORDER)
    ref = mtn.records.ref_for_order("ORDER001")
    assert record(redis_client, ref)["state"] == "pending"
    assert redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref) is not None  # the poller will ask


def test_a_configuration_error_on_a_status_get_keeps_the_payment_pending(mtn: MtnMomo, momo: StandinMomo, redis_client):
    ref = mtn.request(ORDER).provider_ref
    momo.environment = "mtncameroon"  # someone changed MTN's side after the request was taken
    with pytest.raises(ProviderMisconfigured) as caught:
        mtn.status(ref)
    assert caught.value.code == "NOT_ALLOWED_TARGET_ENVIRONMENT"
    assert record(redis_client, ref)["state"] == "pending"  # it may well exist at MTN: keep asking


# -- settings a live setup needs ---------------------------------------------------------------------
CREDENTIALS = {"MTN_MOMO_SUBSCRIPTION_KEY": "k", "MTN_MOMO_API_USER": "u", "MTN_MOMO_API_KEY": "a"}
LIVE = {
    **CREDENTIALS,
    "PAYMENT_PROVIDER": "mtn_momo",
    "MTN_MOMO_TARGET_ENVIRONMENT": "mtncameroon",
    "MTN_MOMO_BASE_URL": "https://proxy.momoapi.mtn.com",
    "MTN_MOMO_CURRENCY": "XAF",
    "MTN_MOMO_CALLBACK_URL": "https://guichet.example/payments/mtn_momo/callback",
}


@pytest.mark.parametrize("unset", [None, ""], ids=["none", "empty"])
def test_the_currency_defaults_to_eur_in_the_sandbox_only(unset):
    assert settings_from(CREDENTIALS).currency == "EUR"
    assert settings_from({**CREDENTIALS, "MTN_MOMO_CURRENCY": unset}).currency == "EUR"
    with pytest.raises(ValueError, match="MTN_MOMO_CURRENCY"):
        settings_from({**LIVE, "MTN_MOMO_CURRENCY": unset})
    assert settings_from(LIVE).currency == "XAF"


def test_startup_problems_name_what_a_live_setup_lacks():
    assert startup_problems(LIVE) == []
    problems = startup_problems({**LIVE, "MTN_MOMO_CURRENCY": None, "MTN_MOMO_CALLBACK_URL": "http://guichet.example/cb"})
    assert len(problems) == 2
    assert "MTN_MOMO_CURRENCY" in problems[0] and "XAF" in problems[0]
    assert "MTN_MOMO_CALLBACK_URL" in problems[1] and "https" in problems[1]
    assert startup_problems({**LIVE, "MTN_MOMO_CALLBACK_URL": None}) == []  # no callbacks: polling only, fine
    [base] = startup_problems({**LIVE, "MTN_MOMO_BASE_URL": None})  # live money sent to the sandbox
    assert "MTN_MOMO_BASE_URL" in base
    [key] = startup_problems({**LIVE, "MTN_MOMO_API_KEY": ""})
    assert "MTN_MOMO_API_KEY" in key


def test_startup_problems_leave_the_sandbox_and_other_providers_alone(redis_client, momo):
    sandbox = {**CREDENTIALS, "MTN_MOMO_CALLBACK_URL": "http://guichet.example/cb"}  # http: what the sandbox wants
    assert startup_problems(sandbox) == []
    assert startup_problems({"PAYMENT_PROVIDER": "demo", "MTN_MOMO_TARGET_ENVIRONMENT": "mtncameroon"}) == []
    from app import create_app

    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client,
                      **momo_config(momo, MTN_MOMO_TARGET_ENVIRONMENT="mtncameroon", MTN_MOMO_CURRENCY=None)})
    assert any("MTN_MOMO_CURRENCY" in problem for problem in startup_problems(app.config))


def test_a_reference_id_in_the_body_is_used_only_if_it_is_one(momo_app, mtn: MtnMomo, momo: StandinMomo, recorder):
    ref = mtn.request(ORDER).provider_ref
    client = momo_app.test_client()
    for bogus in ("index:pending", "order:ORDER001", "../../token"):
        body = {"referenceId": bogus, "externalId": "ORDER001", "status": "SUCCESSFUL"}
        answer = client.post("/payments/mtn_momo/callback", json=body)
        assert answer.status_code == 200  # read through externalId instead
    answer = client.post("/payments/mtn_momo/callback", json={"referenceId": ref, "status": "SUCCESSFUL"})
    assert answer.status_code == 200
    run_jobs(momo_app)
    assert [r.provider_ref for r in recorder.results] == [ref]
    assert all(c.path.endswith(ref) for c in momo.calls if c.method == "GET")
