"""The MTN MoMo adapter against the stand-in Collection API: the request-to-pay contract,
tokens, references that are never a second debit, statuses and their reasons, the rate
window, and callbacks that are only believed after a status GET."""
from __future__ import annotations

import uuid

import pytest
import redis

from state import journal, keys
from tests.payments.conftest import Clock, Recorder, install, served
from tests.payments.standin_momo import StandinMomo
from utility.payments import provider
from utility.payments.base import PaymentError, PaymentRequest, PaymentResult, ProviderUnavailable
from utility.payments.mtn_momo import MtnMomo, parse_networks, settings_from

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
    momo.currency = "XAF"  # our EUR is refused: 400 INVALID_CURRENCY
    result = mtn.request(ORDER)
    assert (result.state, result.reason) == ("failed", "other")
    assert mtn.request(ORDER) == result  # nothing sent again
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

        assert recorder.results == [PaymentResult("mtn_momo", ref, "ORDER001", "successful", "")]
        assert momo.count("status") == before + 1  # believed only after asking MTN
        assert momo.deliver_callback(ref) is None  # and never again
    assert record(redis_client, ref)["via"] == "callback"


def test_a_callback_by_put_is_taken_too(momo_app, momo: StandinMomo, recorder: Recorder):
    with served(momo_app) as base:
        momo_app.config["MTN_MOMO_CALLBACK_URL"] = base + "/payments/mtn_momo/callback"
        momo.script(PAYER, "FAILED", "NOT_ENOUGH_FUNDS")
        ref = provider(momo_app).request(ORDER).provider_ref
        assert momo.deliver_callback(ref, method="PUT") == 200
    assert recorder.results == [PaymentResult("mtn_momo", ref, "ORDER001", "failed", "insufficient_funds")]


def test_a_forged_callback_changes_nothing(momo_app, mtn: MtnMomo, momo: StandinMomo, recorder: Recorder, redis_client):
    momo.script(PAYER, "PENDING")
    ref = mtn.request(ORDER).provider_ref
    forged = {"externalId": "ORDER001", "status": "SUCCESSFUL", "amount": "1500", "currency": "EUR",
              "financialTransactionId": "1", "payer": {"partyIdType": "MSISDN", "partyId": "46733123450"}}
    answer = momo_app.test_client().post("/payments/mtn_momo/callback", json=forged)
    assert answer.status_code == 200
    assert recorder.results == [] and record(redis_client, ref)["state"] == "pending"
    assert momo.count("status") == 1


def test_a_callback_that_cannot_be_confirmed_is_left_to_the_poller_soon(momo_app, mtn, momo, recorder, redis_client, clock):
    ref = mtn.request(ORDER).provider_ref
    momo.fail_next("status", "500")
    answer = momo_app.test_client().post("/payments/mtn_momo/callback", json=momo.status_body(momo.payments[ref]))
    assert answer.status_code == 200 and recorder.results == []
    assert redis_client.zscore(keys.payment("mtn_momo", "index:pending"), ref) <= clock()


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


def test_a_reference_id_in_the_body_is_used_only_if_it_is_one(momo_app, mtn: MtnMomo, momo: StandinMomo, recorder):
    ref = mtn.request(ORDER).provider_ref
    client = momo_app.test_client()
    for bogus in ("index:pending", "order:ORDER001", "../../token"):
        body = {"referenceId": bogus, "externalId": "ORDER001", "status": "SUCCESSFUL"}
        answer = client.post("/payments/mtn_momo/callback", json=body)
        assert answer.status_code == 200  # read through externalId instead
    answer = client.post("/payments/mtn_momo/callback", json={"referenceId": ref, "status": "SUCCESSFUL"})
    assert answer.status_code == 200
    assert [r.provider_ref for r in recorder.results] == [ref]
    assert all(c.path.endswith(ref) for c in momo.calls if c.method == "GET")
