"""Self-service by SMS, read as the customer's conversation: SOLDE / BAL for what is due,
JETON / TOKEN for the last tokens again, AIDE / HELP listing them."""
from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator

from sms import keywords
from sms.customer_messages import settings_of
from sms.gsm import gsm7_septets, sms_segments
from sms.receipts import MESSAGES, token_resend
from state import journal, keys
from state.store import get_redis
from tests.sms.fixtures import africastalking_config, sms_app_for
from tests.sms.standin_africastalking import AfricasTalkingStandin
from tests.sms.texting import Texting
from utility import by_sms
from utility.customers import Account
from utility.meters import with_check_digit
from utility.orders import UNITS
from utility.payments.base import PaymentResult
from utility.services import services
from utility.vending.base import Vend

MARIE, AMINA, GRANNY, PAUL, NOBODY = "+237699000001", "+237699000002", "+237699000333", "+237677000007", "+237699000555"
MARIE_METER = with_check_digit("0140000001")  # 01400000012
AMINA_METERS = with_check_digit("0140000002"), with_check_digit("0140000003")
GRANNY_METER = with_check_digit("0150000006")


@pytest.fixture
def today(sms_app: Flask) -> datetime.date:
    return services(sms_app).now().date()


@pytest.fixture
def base(sms_app: Flask, today: datetime.date) -> None:
    in_ten_days, last_week = today + datetime.timedelta(days=10), today - datetime.timedelta(days=7)
    services(sms_app).customers.upsert([
        Account("CP-0000012", "", "Marie Ndongo", MARIE, "Littoral", "postpaid", 12_500, in_ten_days),
        Account("CM-1000001", MARIE_METER, "Marie Ndongo", MARIE, "Centre", "prepaid", 0, None),
        Account("CM-1000002", AMINA_METERS[0], "Aminatou Bello", AMINA, "Estuaire", "prepaid", 0, None),
        Account("CM-1000003", AMINA_METERS[1], "Aminatou Bello", AMINA, "Estuaire", "prepaid", 0, None),
        Account("CM-1000004", "", "Aminatou Bello", AMINA, "Estuaire", "postpaid", 18_450, last_week),
        Account("CM-1000006", GRANNY_METER, "Odile Ekane", GRANNY, "Centre", "prepaid", 0, None),
        # A stranger's account with Marie's digits: "SOLDE 0000012" must still be Marie's only.
        Account("GA-0000012", "", "Paul Fotso", PAUL, "Estuaire", "postpaid", 40_000, in_ten_days),
        Account("CP-0000099", "", "Paul Fotso", PAUL, "Littoral", "postpaid", 40_000, in_ten_days),
    ])


@pytest.fixture
def marie(sms_app: Flask, africastalking_standin: AfricasTalkingStandin, base: None) -> Texting:
    return Texting(sms_app, africastalking_standin, MARIE)


@pytest.fixture
def amina(sms_app: Flask, africastalking_standin: AfricasTalkingStandin, base: None) -> Texting:
    return Texting(sms_app, africastalking_standin, AMINA)


def french(date: datetime.date) -> str:
    return f"{date:%d/%m/%Y}"


# -- SOLDE / BAL ------------------------------------------------------------------------------------
def test_solde_gives_what_is_due_on_the_senders_account_and_by_when(marie, today):
    due = french(today + datetime.timedelta(days=10))
    assert marie.asks("SOLDE CP-0000012") == f"Compte CP-0000012: 12 500 FCFA à payer avant le {due}."


@pytest.mark.parametrize("text", ["  solde   cp-0000012 ", "Solde CP0000012", "SOLDE 0000012", "sôlde cp-0000012",
                                  "SOLDE\u00a0CP-0000012\n", "solde: CP-0000012", "SOLDE CP 0000012"])
def test_solde_is_read_whatever_the_case_spaces_and_accents(marie, today, text):
    due = french(today + datetime.timedelta(days=10))
    assert marie.asks(text) == f"Compte CP-0000012: 12 500 FCFA à payer avant le {due}."


def test_bal_answers_in_english(marie, today):
    assert marie.asks("bal cp-0000012") == f"Account CP-0000012: 12,500 FCFA due by {french(today + datetime.timedelta(days=10))}."


def test_a_phone_that_chose_english_is_answered_in_english_even_to_solde(marie, sms_app):
    get_redis(sms_app).hset(keys.profile(MARIE), "lang", "en")
    assert marie.asks("SOLDE CP-0000012").startswith("Account CP-0000012: 12,500 FCFA due by ")


def test_a_bill_past_its_date_says_since_when_and_what_it_risks(amina, today):
    assert amina.asks("SOLDE CM-1000004") == (
        f"Compte CM-1000004: 18 450 FCFA, échu le {french(today - datetime.timedelta(days=7))}: risque de coupure.")


def test_a_meter_is_prepaid_and_the_reply_says_how_to_buy(marie):
    assert marie.asks(f"SOLDE {MARIE_METER}") == (
        "Compteur 01400000012: prépayé, sans facture. Pour acheter des unités, utilisez le menu USSD.")
    assert marie.asks("SOLDE CM-1000001") == (  # the prepaid account's number says the same
        "Compteur 01400000012: prépayé, sans facture. Pour acheter des unités, utilisez le menu USSD.")


def test_with_the_service_code_configured_the_reply_names_it(redis_client, africastalking_standin):
    app = sms_app_for(redis_client, **africastalking_config(africastalking_standin), SMS_RATE_PER_SECOND=0,
                      SERVICE_CODES=["*384#"])
    services(app).customers.upsert([Account("CM-1000001", MARIE_METER, "Marie", MARIE, "Centre", "prepaid", 0, None)])
    marie = Texting(app, africastalking_standin, MARIE)
    assert marie.asks(f"SOLDE {MARIE_METER}") == (
        "Compteur 01400000012: prépayé, sans facture. Pour acheter des unités, composez *384#.")
    assert marie.asks(f"BAL {MARIE_METER}") == "Meter 01400000012: prepaid, no bill. To buy units, dial *384#."


def test_solde_alone_gives_every_account_of_the_phone(marie, today):
    due = french(today + datetime.timedelta(days=10))
    assert marie.asks("solde") == (
        f"Compteur 01400000012: prépayé, sans facture.\nCompte CP-0000012: 12 500 FCFA à payer avant le {due}.")


def test_solde_alone_from_a_phone_with_no_account_says_how_to_get_one_linked(sms_app, africastalking_standin, base):
    nobody = Texting(sms_app, africastalking_standin, NOBODY)
    assert nobody.asks("SOLDE") == (
        "Aucun compte n'est lié à ce numéro. Votre agence peut lier votre compte, puis envoyez SOLDE <compte>.")
    assert nobody.asks("BAL") == (
        "No account is linked to this number. Your local office can link yours, then send BAL <account>.")


def test_an_account_not_linked_to_the_phone_is_refused_without_saying_whether_it_exists(marie):
    refusal = ("Le compte {} n'est pas lié à ce numéro: son solde n'est donné qu'au téléphone du titulaire. "
               "Votre agence peut lier votre compte.")
    assert marie.asks("SOLDE CP-0000099") == refusal.format("CP-0000099")  # Paul's
    assert marie.asks("SOLDE CP-0000098") == refusal.format("CP-0000098")  # nobody's
    assert marie.asks(f"SOLDE {GRANNY_METER}") == refusal.format(GRANNY_METER)  # another's meter
    assert "40 000" not in " ".join(marie.inbox())


def test_nothing_due_and_a_credit_are_said_as_such(sms_app, africastalking_standin):
    services(sms_app).customers.upsert([
        Account("CP-0000020", "", "Jean", NOBODY, "Centre", "postpaid", 0, None),
        Account("CP-0000021", "", "Jean", NOBODY, "Centre", "postpaid", -3_000, None),
        Account("CP-0000022", "", "Jean", NOBODY, "Centre", "postpaid", 7_000, None),
    ])
    jean = Texting(sms_app, africastalking_standin, NOBODY)
    assert jean.asks("solde") == ("Compte CP-0000020: rien à payer.\n"
                                  "Compte CP-0000021: rien à payer, crédit de 3 000 FCFA.\n"
                                  "Compte CP-0000022: 7 000 FCFA à payer.")


def test_many_accounts_fit_one_segment_and_the_rest_are_counted(sms_app, africastalking_standin, today):
    services(sms_app).customers.upsert([
        Account(f"CP-00000{n}", "", "Societe", NOBODY, "Centre", "postpaid", 999_999_999, today) for n in range(30, 36)
    ])
    business = Texting(sms_app, africastalking_standin, NOBODY)
    reply = business.asks("SOLDE")
    lines = reply.split("\n")
    assert lines[0] == f"Compte CP-0000030: 999 999 999 FCFA à payer avant le {french(today)}."
    assert lines[-1] == f"Et {7 - len(lines)} de plus: envoyez SOLDE <compte>."
    assert len(lines) >= 2 and (gsm7_septets(reply) or 999) <= 160


# -- JETON / TOKEN ---------------------------------------------------------------------------------------
def agency_sale(app: Flask, meter: str, reference: str) -> Vend:
    """A purchase at the utility's agency: in the vending system, not through us."""
    return services(app).vending.vend(meter, 2_000, reference)


def bought_through_us(app: Flask, phone: str, meter: str, reference: str) -> None:
    """``phone`` buys units for ``meter`` on USSD and pays; the order is fulfilled."""
    orders = services(app).orders
    order = orders.place(UNITS, phone, "fr", meter, 3_000, phone, reference)
    orders.on_payment_result(PaymentResult("demo", order.provider_ref, reference, "successful"))


def test_jeton_sends_the_last_token_again_and_says_so(marie, sms_app):
    vend = agency_sale(sms_app, MARIE_METER, "AGENCY01")
    assert marie.texts("JETON") == 200
    resent, reply = marie.new()
    assert reply == "Le dernier code du compteur 01400000012 vous est renvoyé par SMS."
    assert resent.startswith("Vos derniers codes:") and vend.tokens[0][:4] in resent
    [entry] = [e for e in journal.read(get_redis(sms_app), 100) if e["kind"] == "order.tokens_resent"]
    assert (entry["phone"], entry["reference"], entry["channel"]) == (MARIE, "AGENCY01", "sms")


def test_jeton_resends_within_the_per_phone_limits(marie, sms_app):
    """RESEND_LIMITS (once a minute by default), the same budget as "resend my last code" on USSD."""
    agency_sale(sms_app, MARIE_METER, "AGENCY01")
    marie.texts("jeton")
    assert len(marie.new()) == 2
    assert marie.asks("JETON") == "Vos codes ont déjà été renvoyés. Réessayez dans 1 min."


def test_the_ussd_resend_and_jeton_share_one_budget(marie, sms_app):
    agency_sale(sms_app, MARIE_METER, "AGENCY01")
    assert services(sms_app).orders.resend_last_tokens(MARIE, "fr").outcome == "sent"
    marie.new()
    assert marie.asks("TOKEN") == "Your tokens were just sent again. Try again in 1 min."


def test_jeton_sends_the_last_token_of_each_meter_the_phone_may_have(amina, sms_app):
    """Amina's two meters (bought at the agency) and her grandmother's, which she paid for on
    USSD: three meters, newest first, in one SMS."""
    first = agency_sale(sms_app, AMINA_METERS[0], "AGENCY01")
    agency_sale(sms_app, AMINA_METERS[0], "AGENCY02")  # the newest of that meter is the one resent
    agency_sale(sms_app, AMINA_METERS[1], "AGENCY03")
    bought_through_us(sms_app, AMINA, GRANNY_METER, "GRANNY01")
    amina.new()  # the purchase's own receipt
    assert amina.texts("jeton") == 200
    resent, reply = amina.new()
    assert reply == (f"Les derniers codes de 3 compteurs ({GRANNY_METER}, {AMINA_METERS[1]}, {AMINA_METERS[0]}) "
                     "vous sont renvoyés par SMS.")
    assert resent.count("Code: ") == 3 and first.tokens[0][:4] + " " + first.tokens[0][4:8] not in resent


def test_token_in_english(marie, sms_app):
    agency_sale(sms_app, MARIE_METER, "AGENCY01")
    marie.texts("Token")
    resent, reply = marie.new()
    assert reply == "The last token of meter 01400000012 is being sent to you again by SMS."
    assert resent.startswith("Your last tokens:")


def test_jeton_with_nothing_to_send_says_so_and_sends_nothing(sms_app, africastalking_standin, base):
    nobody = Texting(sms_app, africastalking_standin, NOBODY)
    assert nobody.asks("JETON") == "Aucun code à renvoyer: pas d'achat d'unités récent pour ce numéro."


def test_jeton_never_sends_a_strangers_token(sms_app, africastalking_standin, base):
    """A phone that paid for nothing gets nothing, even after typing a stranger's meter into
    an order: only delivered purchases of its own and its linked meters count."""
    agency_sale(sms_app, GRANNY_METER, "GRANNY00")
    orders = services(sms_app).orders
    order = orders.place(UNITS, NOBODY, "fr", GRANNY_METER, 1_000, "+237670000009", "PROBE001")
    orders.on_payment_result(PaymentResult("demo", order.provider_ref, "PROBE001", "failed", "insufficient_funds"))
    prober = Texting(sms_app, africastalking_standin, NOBODY)
    prober.new()
    assert prober.asks("TOKEN") == "No token to send again: no recent purchase of units for this number."


def test_last_vends_keeps_at_most_a_households_meters(sms_app, base):
    for n in range(5):
        meter = with_check_digit(f"01600000{n:02d}")
        services(sms_app).customers.upsert([Account(f"CM-20000{n:02d}", meter, "Ferme", NOBODY, "Centre", "prepaid",
                                                    0, None)])
        agency_sale(sms_app, meter, f"FARM{n:04d}")
    vends = by_sms.last_vends(services(sms_app).orders, NOBODY)
    assert [vend.reference for vend in vends] == ["FARM0004", "FARM0003", "FARM0002"]


# -- AIDE / HELP ---------------------------------------------------------------------------------------
def listed(reply: str, prefix: str) -> list[str]:
    assert reply.startswith(prefix), reply
    return reply[len(prefix):].split(", ")


def test_the_help_lists_the_new_keywords_with_their_usage(marie):
    french_words = listed(marie.asks("aide"), "Envoyez par SMS: ")
    assert {"AIDE", "SOLDE <compte>", "JETON", "ARRET", "START"} <= set(french_words)
    assert not {"BAL <account>", "TOKEN", "HELP", "STOP"} & set(french_words)  # one word a thing, in its language
    english_words = listed(marie.asks("help"), "Send by SMS: ")
    assert {"HELP", "BAL <account>", "TOKEN", "STOP", "START"} <= set(english_words)
    assert not {"SOLDE <compte>", "JETON", "AIDE", "ARRET"} & set(english_words)


def test_unknown_text_gets_the_help_with_the_new_keywords(marie):
    words = listed(marie.asks("combien je dois?"), "Message non compris. Envoyez par SMS: ")
    assert "SOLDE <compte>" in words and "JETON" in words


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_help_leaves_room_for_info_and_a_campaign(sms_app, lang):
    if keywords.find("INFO") is None:  # the incident notices' keyword, once they register it
        keywords.register("INFO", lambda message: None)
    keywords.register_resolver(lambda word: None, words=lambda: ["GRATUIT"], usage="meter_or_account")
    reply = keywords.listing(lang, "inbound.unknown")
    assert "INFO" in reply and "GRATUIT" in reply and not reply.endswith("...")
    assert (gsm7_septets(reply) or 999) <= 160


# -- every reply is one GSM-7 segment, with the worst values --------------------------------------------
WORST_ACCOUNT = "CP-" + "9" * 21  # 24 characters: the longest account number (by_sms.NUMBER_WIDTH)
WORST_METER = "9" * 13


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_self_service_reply_is_one_gsm7_segment(sms_app, lang):
    worst = {"account": WORST_ACCOUNT, "balance": "999 999 999", "credit": "999 999 999", "due": "31/12/2026",
             "meter": WORST_METER, "code": "*384*12345#", "count": 99, "keyword": "SOLDE", "number": WORST_ACCOUNT,
             "minutes": 60, "meters": ", ".join([WORST_METER] * by_sms.MAX_METERS)}
    names = [key.split(".", 1)[1] for key in MESSAGES.texts(lang) if key.startswith("self_service.")]
    texts = {name: MESSAGES.text(lang, f"self_service.{name}", **worst) for name in names}
    texts["prepaid+buy_code"] = texts["prepaid"] + " " + texts["buy_code"]
    texts["prepaid+buy"] = texts["prepaid"] + " " + texts["buy"]
    assert len(texts) >= 19
    for key, text in texts.items():
        assert (gsm7_septets(text) or 999) <= 160, (key, text)


def test_the_resend_of_a_households_meters_is_two_segments_at_worst(sms_app):
    """What JETON costs: the last token of MAX_METERS meters, with the longest meter number,
    units and amount, in one SMS of two segments."""
    vend = Vend("REF00001", "R1", WORST_METER, "", 9_999_999, Decimal("99999.9"), "kWh", (), ("1" * 20,),
                "prepaid", datetime.datetime(2026, 12, 31, 23, 59))
    for lang in ("fr", "en"):
        assert sms_segments(token_resend(lang, [vend] * by_sms.MAX_METERS, settings_of(sms_app))) <= 2


# -- Twilio: the reply is the webhook's TwiML ---------------------------------------------------------------
def test_bal_through_twilio(redis_client, today):
    public, token = "https://guichet.example.org", "tw-test-token"
    app = sms_app_for(redis_client, TWILIO_AUTH_TOKEN=token, PUBLIC_URL=public)
    services(app).customers.upsert([Account("CP-0000012", "", "Marie", MARIE, "Littoral", "postpaid", 12_500, today)])
    params = {"MessageSid": "SM" + "7" * 32, "AccountSid": "AC" + "0" * 32, "From": MARIE, "To": "+15005550006",
              "Body": "BAL CP-0000012", "NumMedia": "0"}
    signature = RequestValidator(token).compute_signature(public + "/sms/twilio/inbound", params)
    response = app.test_client().post("/sms/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    said = [message.text for message in ET.fromstring(response.get_data()).iter("Message")]
    assert said == [f"Account CP-0000012: 12,500 FCFA due by {french(today)}."]
