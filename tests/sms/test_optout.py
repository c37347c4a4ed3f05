"""Opting out of notices, read as the customer's story: STOP (or ARRET) by SMS, or through
Africa's Talking's opt-out, and no broadcast notice reaches the phone; receipts for the
customer's own payments still do; START brings the notices back."""
from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from sms import optout
from state import journal, keys
from state.store import get_redis
from tests.sms.fixtures import africastalking_config, sms_app_for
from tests.sms.standin_africastalking import AfricasTalkingStandin
from tests.sms.texting import SHORT_CODE, Texting
from utility.customers import Account
from utility.meters import with_check_digit
from utility.orders import UNITS
from utility.payments.base import PaymentResult
from utility.services import services

MARIE, AMINA = "+237699000001", "+237699000002"
MARIE_METER = with_check_digit("0140000001")
OPTOUT_PATH = "/sms/africastalking/optout"
STOPPED = ("C'est noté: plus d'avis par SMS sur ce numéro. Les recus de vos paiements restent envoyés. "
           "Pour reprendre les avis, envoyez START.")
RESUMED = "C'est noté: vous recevez de nouveau nos avis par SMS. Pour ne plus les recevoir, envoyez ARRET."


@pytest.fixture
def marie(sms_app: Flask, africastalking_standin: AfricasTalkingStandin) -> Texting:
    services(sms_app).customers.upsert([Account("CM-1000001", MARIE_METER, "Marie", MARIE, "Centre", "prepaid", 0,
                                                None)])
    return Texting(sms_app, africastalking_standin, MARIE)


def notices_to(app: Flask, *phones: str) -> list[str]:
    """Who a broadcast notice would go to (what the incident notices ask before sending)."""
    return optout.allowed_among(get_redis(app), list(phones))


def notice_entries(app: Flask) -> list[dict[str, str]]:
    return [entry for entry in journal.read(get_redis(app), 1000) if entry["kind"] == "sms.notices"]


# -- STOP / ARRET / START by SMS ----------------------------------------------------------------------
def test_stop_stops_notices_to_this_number_and_says_how_to_resume(marie, sms_app):
    assert notices_to(sms_app, MARIE, AMINA) == [MARIE, AMINA]
    assert marie.asks("STOP") == STOPPED
    assert notices_to(sms_app, MARIE, AMINA) == [AMINA]
    [entry] = notice_entries(sms_app)
    assert (entry["phone"], entry["allowed"], entry["source"], entry["via"]) == (MARIE, "no", "sms", SHORT_CODE)


@pytest.mark.parametrize("text", ["ARRET", "arrêt", "  Arret. ", "stop", "Stop!"])
def test_arret_and_stop_whatever_the_case_spaces_and_accents(marie, sms_app, text):
    assert marie.asks(text) == STOPPED
    assert optout.opted_out(get_redis(sms_app), MARIE)


def test_a_phone_that_chose_english_is_told_in_english(marie, sms_app):
    get_redis(sms_app).hset(keys.profile(MARIE), "lang", "en")
    assert marie.asks("stop") == ("Done: no more notices by SMS to this number. Receipts for your payments still "
                                  "come. To get notices again, send START.")
    assert marie.asks("start") == "Done: you get our notices by SMS again. To stop them, send STOP."


def test_a_purchase_receipt_still_goes_after_stop(marie, sms_app):
    """A receipt is not a notice: the customer paid, the token must reach them."""
    marie.asks("STOP")
    orders = services(sms_app).orders
    order = orders.place(UNITS, MARIE, "fr", MARIE_METER, 5_000, MARIE, "ORDER001")
    orders.on_payment_result(PaymentResult("demo", order.provider_ref, "ORDER001", "successful"))
    [receipt] = marie.new()
    assert receipt.startswith("Code: ") and f"Compteur {MARIE_METER}" in receipt
    assert orders.get("ORDER001").state == "receipt_sent"
    assert notices_to(sms_app, MARIE) == []  # and still no notices


def test_start_resumes_notices(marie, sms_app):
    marie.asks("ARRET")
    assert marie.asks("START") == RESUMED
    assert notices_to(sms_app, MARIE) == [MARIE]
    assert [entry["allowed"] for entry in notice_entries(sms_app)] == ["no", "yes"]


def test_stop_twice_is_confirmed_twice_and_recorded_once(marie, sms_app):
    assert marie.asks("STOP") == STOPPED
    assert marie.asks("STOP") == STOPPED
    assert len(notice_entries(sms_app)) == 1
    assert marie.asks("START") == RESUMED
    assert marie.asks("START") == RESUMED  # START with notices on: nothing to change
    assert [entry["allowed"] for entry in notice_entries(sms_app)] == ["no", "yes"]


def test_stop_is_heeded_even_past_the_phones_reply_limit(marie, sms_app):
    """Five texts a minute are answered (GUICHET_SMS_REPLY_LIMITS); the sixth, STOP, is not
    answered, but notices stop all the same."""
    for _ in range(5):
        marie.texts("aide")
    assert len(marie.new()) == 5
    marie.texts("STOP")
    assert marie.new() == []
    assert notices_to(sms_app, MARIE) == []


def test_a_retried_stop_callback_is_acted_on_once(marie, sms_app):
    marie.texts("STOP", message_id="ATXid_stop")
    marie.texts("STOP", message_id="ATXid_stop")
    assert marie.new() == [STOPPED]
    assert len(notice_entries(sms_app)) == 1


# -- Africa's Talking's bulk SMS opt-out notification ------------------------------------------------
def opts_out(app: Flask, form: dict[str, str], query: str = "") -> TestResponse:
    """Africa's Talking tells us a subscriber opted out of our sender ID."""
    return app.test_client().post(OPTOUT_PATH + query, data=form)


def test_the_operators_opt_out_stops_notices_once_however_often_it_is_told(sms_app):
    form = {"senderId": "GUICHET", "phoneNumber": MARIE}
    first, retried = opts_out(sms_app, form), opts_out(sms_app, form)
    assert (first.status_code, retried.status_code) == (200, 200)
    assert notices_to(sms_app, MARIE, AMINA) == [AMINA]
    [entry] = notice_entries(sms_app)
    assert (entry["phone"], entry["allowed"], entry["source"], entry["via"]) == (MARIE, "no", "africastalking",
                                                                                 "GUICHET")


def test_after_the_operators_opt_out_the_customer_may_text_start(marie, sms_app):
    assert opts_out(sms_app, {"senderId": "GUICHET", "phoneNumber": MARIE}).status_code == 200
    assert marie.asks("START") == RESUMED
    assert notices_to(sms_app, MARIE) == [MARIE]


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"senderId": "GUICHET"}, "missing field: phoneNumber"),
        ({"phoneNumber": MARIE}, "missing field: senderId"),
        ({"senderId": "  ", "phoneNumber": MARIE}, "missing field: senderId"),
        ({"senderId": "GUICHET", "phoneNumber": "0699000001"}, "phoneNumber is not a phone number"),
        ({"senderId": "GUICHET", "phoneNumber": "+23769900000١"}, "phoneNumber is not a phone number"),
        ({"senderId": "G" * 201, "phoneNumber": MARIE}, "senderId over 200 characters"),
    ],
)
def test_a_malformed_opt_out_is_400_with_its_reason_and_changes_nothing(sms_app, form, reason):
    response = opts_out(sms_app, form)
    assert response.status_code == 400 and reason in response.get_data(as_text=True)
    assert notice_entries(sms_app) == [] and notices_to(sms_app, MARIE) == [MARIE]


def test_the_opt_out_callback_carries_the_secret_as_the_inbound_one(redis_client, africastalking_standin):
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_CALLBACK_SECRET="s3cret")
    form = {"senderId": "GUICHET", "phoneNumber": MARIE}
    assert opts_out(app, form).status_code == 403
    assert opts_out(app, form, "?secret=wrong").status_code == 403
    assert notices_to(app, MARIE) == [MARIE]
    assert opts_out(app, form, "?secret=s3cret").status_code == 200
    assert notices_to(app, MARIE) == []


def test_with_redis_away_the_opt_out_asks_to_be_sent_again(sms_app, fake_redis, caplog):
    """Unlike a message, whose sender can text again, an opt-out is said once: a 503 lets
    Africa's Talking retry it rather than have it lost."""
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    response = opts_out(sms_app, {"senderId": "GUICHET", "phoneNumber": MARIE})
    assert response.status_code == 503
    assert "not recorded: Redis is unavailable" in caplog.text and MARIE not in caplog.text
