"""Inbound SMS, read as the customer's conversation: what the customer texts, what comes back.

Africa's Talking's replies go through the outbox (and land on its stand-in); Twilio's come
back as TwiML in the webhook's answer."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from sms import keywords, outbox
from sms.gsm import gsm7_septets
from sms.keywords import Inbound
from state import journal, keys
from state.store import get_redis
from tests.sms.fixtures import africastalking_config, run_jobs, sms_app_for
from tests.sms.standin_africastalking import AfricasTalkingStandin

PHONE = "+237699000001"
SHORT_CODE = "8080"
AT_PATH = "/sms/africastalking/inbound"
TW_PATH = "/sms/twilio/inbound"
PUBLIC = "https://guichet.example.org"
TWILIO_TOKEN = "tw-test-token"
TWILIO_ACCOUNT = "AC" + "0" * 31 + "1"


class Gratuit:
    """A stand-in campaign: its code is a keyword while it runs, and it counts its registrations."""

    def __init__(self) -> None:
        self.registrations: list[Inbound] = []

    def resolve(self, word: str) -> keywords.Handler | None:
        return self.register if word == "GRATUIT" else None

    def register(self, message: Inbound) -> str:
        self.registrations.append(message)
        if message.lang == "en":
            return f"Registered: meter {message.argument}, ref GR{len(self.registrations):06d}."
        return f"Inscription recue: compteur {message.argument}, réf GR{len(self.registrations):06d}."


@pytest.fixture
def gratuit() -> Gratuit:
    campaign = Gratuit()
    keywords.register_resolver(campaign.resolve, words=lambda: ["gratuit"], usage="meter_or_account")
    return campaign


# -- Africa's Talking: the reply goes out through the outbox -------------------------------------
class Phone:
    """A customer's phone texting our short code through Africa's Talking."""

    def __init__(self, app: Flask, standin: AfricasTalkingStandin, number: str = PHONE) -> None:
        self.app, self.standin, self.number = app, standin, number
        self.sent = 0

    def texts(self, text: str, message_id: str | None = None, query: str = "") -> TestResponse:
        """Send ``text``; the gateway's callback carries ``message_id`` (a retry repeats it)."""
        if message_id is None:
            self.sent += 1
            message_id = f"ATXid_{self.number[-4:]}_{self.sent}"
        form = {"from": self.number, "to": SHORT_CODE, "text": text, "date": "2026-03-12 10:30:00",
                "id": message_id, "linkId": "", "networkCode": "62401", "cost": "XAF 0.0000"}
        response = self.app.test_client().post(AT_PATH + query, data=form)
        return response

    def inbox(self) -> list[str]:
        """Every SMS this phone has received so far."""
        run_jobs(self.app)
        return [sms.message for sms in self.standin.received if sms.to == self.number]


@pytest.fixture
def phone(sms_app: Flask, africastalking_standin: AfricasTalkingStandin) -> Phone:
    return Phone(sms_app, africastalking_standin)


def help_text(lang: str = "fr") -> str:
    """The help as the registry lists it now: which words it lists, and that they fit, is
    tests/sms/test_keywords_self_service.py's business; here, that it is what comes back."""
    return keywords.listing(lang, "inbound.help")


def unknown_text(lang: str = "fr") -> str:
    return keywords.listing(lang, "inbound.unknown")


def inbound_entries(app: Flask) -> list[dict[str, str]]:
    return [entry for entry in journal.read(get_redis(app), 1000) if entry["kind"] == "sms.inbound"]


def test_aide_gets_the_list_once_even_when_the_callback_comes_twice(phone, sms_app):
    assert phone.texts("aide", message_id="ATXid_1").status_code == 200
    assert phone.texts("aide", message_id="ATXid_1").status_code == 200  # the gateway retries
    assert phone.inbox() == [help_text()]

    message = outbox.find(get_redis(sms_app), "inbound:africastalking:ATXid_1")
    assert message is not None and message.kind == "keyword_reply"
    [entry] = inbound_entries(sms_app)
    assert (entry["keyword"], entry["outcome"], entry["lang"], entry["phone"]) == ("AIDE", "replied", "fr", PHONE)


def test_a_phone_texting_too_often_is_neither_answered_nor_acted_on(phone, sms_app, gratuit):
    """Each reply costs the utility an SMS, and a forged callback could name any number:
    past GUICHET_SMS_REPLY_LIMITS (5 a minute by default) nothing is done, nothing said."""
    for n in range(7):
        assert phone.texts(f"gratuit 0140000001{n}").status_code == 200
    assert len(phone.inbox()) == 5
    assert len(gratuit.registrations) == 5
    assert [entry["outcome"] for entry in inbound_entries(sms_app)][-2:] == ["limited", "limited"]


def test_unknown_text_gets_a_one_line_help(phone):
    phone.texts("bonjour, mon compteur ne marche pas")
    assert phone.inbox() == [unknown_text()]


def test_a_blank_sms_gets_the_help_too(phone):
    phone.texts("   ")
    assert phone.inbox() == [unknown_text()]


@pytest.mark.parametrize("text", ["AIDE", "Aide", "  aide  ", "aide?", "AIDE.", "aidé", "ａｉｄｅ"])
def test_the_keyword_is_read_whatever_the_case_spaces_and_accents(phone, text):
    phone.texts(text)
    assert phone.inbox() == [help_text()]


def test_help_in_english_answers_in_english(phone):
    phone.texts("help")
    assert phone.inbox() == [help_text("en")]


def test_a_phone_that_chose_english_is_answered_in_english(phone, sms_app):
    get_redis(sms_app).hset(keys.profile(PHONE), "lang", "en")  # as the USSD language screen leaves it
    phone.texts("aide")
    phone.texts("n'importe quoi")
    assert phone.inbox() == [help_text("en"), unknown_text("en")]


def test_a_phone_that_chose_french_is_answered_in_french_even_to_help(phone, sms_app):
    get_redis(sms_app).hset(keys.profile(PHONE), "lang", "fr")
    phone.texts("HELP")
    assert phone.inbox() == [help_text()]


def test_a_campaign_code_is_a_keyword_while_the_campaign_runs(phone, gratuit):
    phone.texts("  gratuit   01400000012 ")
    assert phone.inbox() == ["Inscription recue: compteur 01400000012, réf GR000001."]
    [registration] = gratuit.registrations
    assert (registration.keyword, registration.argument, registration.phone) == ("GRATUIT", "01400000012", PHONE)

    phone.texts("aide")
    assert phone.inbox()[-1] == help_text() and help_text().endswith(", GRATUIT <compteur ou compte>")


def test_a_retried_campaign_registration_registers_once(phone, gratuit):
    phone.texts("GRATUIT 01400000012", message_id="ATXid_7")
    phone.texts("GRATUIT 01400000012", message_id="ATXid_7")
    assert len(gratuit.registrations) == 1
    assert phone.inbox() == ["Inscription recue: compteur 01400000012, réf GR000001."]


def test_a_handler_with_nothing_to_say_sends_nothing(phone, sms_app):
    keywords.register("silence", lambda message: None)
    phone.texts("silence")
    assert phone.inbox() == []
    assert inbound_entries(sms_app)[-1]["outcome"] == "silent"


def test_a_failing_handler_gets_the_customer_a_polite_answer(phone, sms_app):
    def broken(message: Inbound) -> str:
        raise RuntimeError("the campaign store is away")

    keywords.register("PANNE", broken)
    assert phone.texts("panne 123").status_code == 200
    assert phone.inbox() == ["Service momentanément indisponible. Réessayez plus tard."]
    assert inbound_entries(sms_app)[-1]["outcome"] == "failed"


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"to": SHORT_CODE, "text": "aide", "id": "ATXid_1"}, "missing field: from"),
        ({"from": PHONE, "to": SHORT_CODE, "text": "aide"}, "missing field: id"),
        ({"from": PHONE, "text": "aide", "id": "ATXid_1"}, "missing field: to"),
        ({"from": PHONE, "to": SHORT_CODE, "id": "ATXid_1"}, "missing field: text"),
        ({"from": "0699000001", "to": SHORT_CODE, "text": "aide", "id": "ATXid_1"}, "from is not a phone number"),
        ({"from": "+23769900000١", "to": SHORT_CODE, "text": "aide", "id": "ATXid_1"}, "from is not a phone number"),
        ({"from": PHONE, "to": SHORT_CODE, "text": "a" * 1601, "id": "ATXid_1"}, "text over 1600 characters"),
        ({"from": PHONE, "to": SHORT_CODE, "text": "aide", "id": "x" * 201}, "id over 200 characters"),
    ],
)
def test_a_malformed_callback_is_400_with_its_reason(phone, sms_app, form, reason):
    response = sms_app.test_client().post(AT_PATH, data=form)
    assert response.status_code == 400 and reason in response.get_data(as_text=True)
    assert phone.inbox() == [] and inbound_entries(sms_app) == []


def test_the_longest_sms_is_read(phone):
    assert phone.texts("aide " + "x" * 1595).status_code == 200
    assert phone.inbox() == [help_text()]


def test_the_callback_secret(redis_client, africastalking_standin):
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0,
                      SMS_CALLBACK_SECRET="s3cret")
    phone = Phone(app, africastalking_standin)
    assert phone.texts("aide").status_code == 403
    assert phone.texts("aide", query="?secret=wrong").status_code == 403
    assert phone.inbox() == []
    assert phone.texts("aide", query="?secret=s3cret").status_code == 200
    assert phone.inbox() == [help_text()]


def test_redis_down_is_not_a_5xx(phone, fake_redis, caplog):
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    assert phone.texts("aide").status_code == 200
    assert "lost: Redis is unavailable" in caplog.text


def test_logs_mask_the_phone(phone, caplog):
    caplog.set_level("INFO")
    phone.texts("aide")
    assert "****001" in caplog.text and "****0001" not in caplog.text and PHONE not in caplog.text


# -- Twilio: the reply is the webhook's TwiML ---------------------------------------------------------
@pytest.fixture
def twilio_app(redis_client) -> Flask:
    return sms_app_for(redis_client, TWILIO_AUTH_TOKEN=TWILIO_TOKEN, PUBLIC_URL=PUBLIC)


def twilio_texts(app: Flask, body: str, sid: str = "SM" + "1" * 32, number: str = PHONE,
                 token: str | None = TWILIO_TOKEN, url: str = PUBLIC + TW_PATH) -> TestResponse:
    """The customer texts ``body``; Twilio posts its webhook, signed with ``token``."""
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": TWILIO_ACCOUNT, "From": number, "To": "+15005550006",
              "Body": body, "NumMedia": "0", "NumSegments": "1", "FromCountry": "CM"}
    headers = {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)} if token else {}
    return app.test_client().post(TW_PATH, data=params, headers=headers)


def said(response: TestResponse) -> list[str]:
    """What the TwiML tells Twilio to text back."""
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return [message.text or "" for message in root.iter("Message")]


def test_twilio_aide_is_answered_in_the_twiml(twilio_app):
    assert said(twilio_texts(twilio_app, "Aide")) == [help_text()]


def test_twilio_unknown_text_gets_the_help(twilio_app):
    assert said(twilio_texts(twilio_app, "Hello?")) == [unknown_text()]


def test_twilio_retry_is_answered_the_same_and_acted_on_once(twilio_app, gratuit):
    first = twilio_texts(twilio_app, "gratuit 01400000012")
    again = twilio_texts(twilio_app, "gratuit 01400000012")
    assert said(first) == ["Inscription recue: compteur 01400000012, réf GR000001."]
    assert again.get_data() == first.get_data()
    assert len(gratuit.registrations) == 1
    assert len(inbound_entries(twilio_app)) == 1


def test_twilio_nothing_to_say_is_an_empty_response(twilio_app):
    keywords.register("SILENCE", lambda message: None)
    response = twilio_texts(twilio_app, "SILENCE")
    assert said(response) == []
    assert b"<Response />" in response.get_data()


def test_twilio_english_phone(twilio_app):
    get_redis(twilio_app).hset(keys.profile(PHONE), "lang", "en")
    assert said(twilio_texts(twilio_app, "aide")) == [help_text("en")]


@pytest.mark.parametrize("how", ["no signature", "wrong token", "internal url", "tampered"])
def test_twilio_bad_signature_is_403(twilio_app, gratuit, how):
    if how == "no signature":
        response = twilio_texts(twilio_app, "gratuit 1", token=None)
    elif how == "wrong token":
        response = twilio_texts(twilio_app, "gratuit 1", token="not-the-token")
    elif how == "internal url":  # behind a proxy the app sees its own URL; Twilio signed the public one
        response = twilio_texts(twilio_app, "gratuit 1", url="http://localhost" + TW_PATH)
    else:
        params = {"MessageSid": "SM1", "From": PHONE, "To": "+15005550006", "Body": "gratuit 1"}
        headers = {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + TW_PATH, params)}
        response = twilio_app.test_client().post(TW_PATH, data={**params, "Body": "gratuit 2"}, headers=headers)
    assert response.status_code == 403
    assert gratuit.registrations == [] and inbound_entries(twilio_app) == []


def test_twilio_inbound_is_refused_without_a_token_to_check_it(redis_client):
    app = sms_app_for(redis_client, PUBLIC_URL=PUBLIC)
    assert twilio_texts(app, "aide").status_code == 403


def test_twilio_malformed_is_400(twilio_app):
    response = twilio_texts(twilio_app, "aide", number="whatsapp:+237699000001")
    assert response.status_code == 400 and "From is not a phone number" in response.get_data(as_text=True)


def test_twilio_redis_down_tells_the_customer_to_come_back(twilio_app, fake_redis):
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    assert said(twilio_texts(twilio_app, "aide")) == ["Service momentanément indisponible. Réessayez plus tard."]


# -- the registry -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("  gratuit   123 ", ("GRATUIT", "123")),
        ("arrêt", ("ARRET", "")),
        ("ARRÊT", ("ARRET", "")),
        ("Solde\u00a0GA-1000005\n", ("SOLDE", "GA-1000005")),
        ("", ("", "")),
    ],
)
def test_split(text, read):
    assert keywords.split(text) == read


def test_register_folds_the_word_and_refuses_a_takeover():
    def reading(message: Inbound) -> str:
        return "0 kWh"

    # A word no module registers (SOLDE is utility.by_sms's once any app was made)
    keywords.register("relevé", reading, lang="fr", usage="account")
    keywords.register("RELEVE", reading, lang="fr", usage="account")  # again: the same, no harm
    found = keywords.find("RELEVE")
    assert found is not None and found.handler is reading
    with pytest.raises(ValueError, match="already registered"):
        keywords.register("Releve", lambda message: "other")
    with pytest.raises(ValueError, match="one word"):
        keywords.register("mon releve", reading)


def test_a_static_keyword_wins_over_a_resolver():
    keywords.register_resolver(lambda word: (lambda message: "campaign") if word == "AIDE" else None)
    found = keywords.find("AIDE")
    assert found is not None and found.handler is keywords.help_reply


def test_the_help_still_goes_out_when_a_resolver_cannot_list(phone):
    def listing_fails() -> list[str]:
        raise ConnectionError("campaigns store away")

    keywords.register_resolver(lambda word: None, words=listing_fails)
    phone.texts("aide")
    assert phone.inbox() == [help_text()]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_replies_are_one_gsm7_segment_even_with_many_keywords(lang):
    for word in ("SOLDE", "JETON", "INFO", "ARRET", "BAL", "TOKEN", "STOP", "START"):
        if keywords.find(word) is None:  # the static ones, and the domains' once an app registered them
            keywords.register(word, lambda message: None, usage="account")
    codes = [f"CAMPAGNE{n}" for n in range(20)]
    keywords.register_resolver(lambda word: None, words=lambda: codes, usage="meter_or_account")
    for key in ("inbound.help", "inbound.unknown"):
        reply = keywords.listing(lang, key)
        assert (gsm7_septets(reply) or 999) <= 160, reply
        assert reply.endswith(", ...")
    assert (gsm7_septets(keywords.unavailable(lang)) or 999) <= 160


def test_a_handler_reply_too_long_or_not_gsm7_is_made_one_segment(phone, caplog):
    keywords.register("COUPURE", lambda message: "Coupure prévue «Littoral» – " + "très longue " * 30)
    phone.texts("coupure")
    [reply] = phone.inbox()
    assert gsm7_septets(reply) is not None and gsm7_septets(reply) <= 160
    assert reply.startswith('Coupure prévue "Littoral" - ')
    assert "reply to COUPURE was not one GSM-7 segment" in caplog.text


def test_once_per_message_on_a_real_redis_too(any_redis, africastalking_standin, gratuit):
    app = sms_app_for(any_redis, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0)
    phone = Phone(app, africastalking_standin)
    for _ in range(3):
        assert phone.texts("Gratuit 01400000012", message_id="ATXid_real").status_code == 200
    assert phone.inbox() == ["Inscription recue: compteur 01400000012, réf GR000001."]
    assert len(gratuit.registrations) == 1 and len(inbound_entries(app)) == 1
    assert 0 < any_redis.ttl(keys.inbound_sms(PHONE, "africastalking", "ATXid_real")) <= 7 * 86400
