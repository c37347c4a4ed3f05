"""Delivery reports: Africa's Talking (optional shared secret) and Twilio (signed)."""
from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from sms import outbox
from state import journal
from state.store import get_redis
from tests.sms.fixtures import run_jobs, sms_app_for, twilio_config

PHONE = "+237699000001"
AT_PATH = "/sms/africastalking/delivery"
TW_PATH = "/sms/twilio/status"
PUBLIC = "https://guichet.example.org"


def sent_message(app) -> outbox.Message:
    with app.app_context():
        message_id = outbox.send(None, PHONE, "Code: 1234", "order:A:token", "receipt")
    run_jobs(app)
    message = outbox.load(get_redis(app), message_id)
    assert message is not None and message.state == "sent"
    return message


def reload(app, message: outbox.Message) -> outbox.Message:
    fresh = outbox.load(get_redis(app), message.id)
    assert fresh is not None
    return fresh


def at_report(provider_id: str, status: str, **extra: str) -> dict[str, str]:
    return {"id": provider_id, "status": status, "phoneNumber": PHONE, "networkCode": "62401",
            "retryCount": "0", **extra}


# -- Africa's Talking ---------------------------------------------------------------------------------
def test_africastalking_report_updates_the_delivery(sms_app):
    message = sent_message(sms_app)
    client = sms_app.test_client()
    response = client.post(AT_PATH, data=at_report(message.provider_id, "Buffered"))
    assert response.status_code == 200
    assert reload(sms_app, message).delivery == "buffered"

    assert client.post(AT_PATH, data=at_report(message.provider_id, "Success")).status_code == 200
    delivered = reload(sms_app, message)
    assert (delivered.delivery, delivered.state, delivered.fields["delivery_status"]) == ("delivered", "sent", "Success")

    # A late intermediate report does not undo the final one.
    assert client.post(AT_PATH, data=at_report(message.provider_id, "Sent")).status_code == 200
    assert reload(sms_app, message).delivery == "delivered"
    kinds = [(e["kind"], e.get("delivery")) for e in journal.read(get_redis(sms_app)) if e.get("message") == message.id]
    assert kinds[-2:] == [("sms.delivery", "buffered"), ("sms.delivery", "delivered")]


def test_africastalking_failure_keeps_the_reason(sms_app):
    message = sent_message(sms_app)
    report = at_report(message.provider_id, "Failed", failureReason="UserInBlacklist")
    assert sms_app.test_client().post(AT_PATH, data=report).status_code == 200
    failed = reload(sms_app, message)
    assert (failed.delivery, failed.fields["delivery_error"]) == ("failed", "UserInBlacklist")


def test_unknown_id_is_acknowledged(sms_app):
    response = sms_app.test_client().post(AT_PATH, data=at_report("ATXid_not_ours", "Success"))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"status": "Success"}, "missing field: id"),
        ({"id": "ATXid_1"}, "missing field: status"),
        ({"id": "ATXid_1", "status": "Success", "retryCount": "two"}, "retryCount"),
        ({"id": "x" * 300, "status": "Success"}, "id over"),
    ],
)
def test_malformed_africastalking_report_is_400(sms_app, form, reason):
    response = sms_app.test_client().post(AT_PATH, data=form)
    assert response.status_code == 400 and reason in response.get_data(as_text=True)


def test_oversized_report_is_400(sms_app):
    response = sms_app.test_client().post(AT_PATH, data={"id": "1", "status": "Success", "pad": "x" * 5000})
    assert response.status_code == 400


def test_callback_secret(redis_client, africastalking_standin):
    from tests.sms.fixtures import africastalking_config

    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0,
                      SMS_CALLBACK_SECRET="s3cret")
    message = sent_message(app)
    client = app.test_client()
    report = at_report(message.provider_id, "Success")
    assert client.post(AT_PATH, data=report).status_code == 403
    assert client.post(AT_PATH + "?secret=wrong", data=report).status_code == 403
    assert reload(app, message).delivery == ""
    assert client.post(AT_PATH + "?secret=s3cret", data=report).status_code == 200
    assert reload(app, message).delivery == "delivered"


def test_redis_down_is_not_a_5xx(sms_app, fake_redis, caplog):
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    response = sms_app.test_client().post(AT_PATH, data=at_report("ATXid_1", "Success"))
    assert response.status_code == 200
    assert "could not record the africastalking delivery report" in caplog.text


# -- Twilio ------------------------------------------------------------------------------------------------
@pytest.fixture
def twilio_app(redis_client, twilio_standin):
    return sms_app_for(redis_client, **twilio_config(twilio_standin), SMS_RATE_PER_SECOND=0, PUBLIC_URL=PUBLIC)


def signed(token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


def test_twilio_signed_status_updates_the_delivery(twilio_app, twilio_standin):
    message = sent_message(twilio_app)
    assert twilio_standin.received[0].status_callback == PUBLIC + TW_PATH
    params = {"MessageSid": message.provider_id, "MessageStatus": "delivered", "AccountSid": twilio_standin.account_sid}
    headers = signed(twilio_standin.auth_token, PUBLIC + TW_PATH, params)
    response = twilio_app.test_client().post(TW_PATH, data=params, headers=headers)
    assert response.status_code == 200
    assert reload(twilio_app, message).delivery == "delivered"


def test_twilio_undelivered_with_error_code(twilio_app, twilio_standin):
    message = sent_message(twilio_app)
    params = {"MessageSid": message.provider_id, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    headers = signed(twilio_standin.auth_token, PUBLIC + TW_PATH, params)
    assert twilio_app.test_client().post(TW_PATH, data=params, headers=headers).status_code == 200
    fresh = reload(twilio_app, message)
    assert (fresh.delivery, fresh.fields["delivery_error"]) == ("failed", "30003")


@pytest.mark.parametrize(
    "how", ["no signature", "wrong token", "internal url", "tampered"]
)
def test_twilio_bad_signature_is_403(twilio_app, twilio_standin, how):
    message = sent_message(twilio_app)
    params = {"MessageSid": message.provider_id, "MessageStatus": "delivered"}
    headers = {
        "no signature": {},
        "wrong token": signed("not-the-token", PUBLIC + TW_PATH, params),
        # Behind a proxy the app sees its internal URL; Twilio signed the public one.
        "internal url": signed(twilio_standin.auth_token, "http://localhost" + TW_PATH, params),
        "tampered": signed(twilio_standin.auth_token, PUBLIC + TW_PATH, {**params, "MessageStatus": "failed"}),
    }[how]
    response = twilio_app.test_client().post(TW_PATH, data=params, headers=headers)
    assert response.status_code == 403
    assert reload(twilio_app, message).delivery == ""


def test_twilio_malformed_is_400_once_signed(twilio_app, twilio_standin):
    params = {"MessageStatus": "delivered"}
    headers = signed(twilio_standin.auth_token, PUBLIC + TW_PATH, params)
    response = twilio_app.test_client().post(TW_PATH, data=params, headers=headers)
    assert response.status_code == 400 and "MessageSid" in response.get_data(as_text=True)


def test_twilio_without_a_token_configured_checks_no_signature(redis_client):
    app = sms_app_for(redis_client)
    response = app.test_client().post(TW_PATH, data={"MessageSid": "SM1", "MessageStatus": "sent"})
    assert response.status_code == 200


def test_init_app_is_idempotent(sms_app):
    from sms import views

    views.init_app(sms_app)
    assert sms_app.config["SMS_RATE_PER_SECOND"] == 0  # the test's value, not the default
    assert "sms" in sms_app.blueprints
