"""Outage news on the menu, as the caller hears it: while an incident is under way anywhere,
the main menu offers "Infos coupures"; it lists the incidents of the caller's region (or of
a region they choose), each opening to its message and expected end a page at a time; and a
region's notices can be had by SMS."""
from __future__ import annotations

from typing import Any

from sms.gsm import USSD_GSM7_LIMIT, gsm7_septets
from state import keys
from state.sessions import Session
from tests.ussd.conftest import NOBODY, ONE_METER, Phone
from tests.ussd.test_round_trips import shown, wire  # noqa: F401
from ussd.flows.incidents import WORST_MESSAGE
from ussd.render import render, text_pages
from ussd.screens import Context
from utility.services import services

NAV = ["0. Retour", "00. Accueil"]
END = "2030-05-12T18:00"  # the utility's time (Africa/Douala)
# A message as long as the model takes with a 40-letter title and an expected end: three pages.
LONG = ("Un transformateur du poste de Bonaberi a brule cette nuit. Les equipes remplacent le materiel "
        "et retablissent les quartiers un par un: Bonaberi, Mabanda puis Sodiko. Debranchez vos appareils.")


def post_incident(app, **changes: Any) -> str:
    definition: dict[str, Any] = {
        "title": {"fr": "Coupure Douala Nord", "en": "Outage Douala North"},
        "message": {"fr": "Travaux sur la ligne de Bonaberi.", "en": "Works on the Bonaberi line."},
        "regions": ["Littoral"], "services": ["supply"], "expected_end": END, "broadcast": False,
    }
    definition.update(changes)
    return services(app).incidents.create(definition).id


def lines(phone: Phone) -> list[str]:
    return phone.screen.splitlines()


def test_the_entry_is_offered_only_while_an_incident_is_under_way(app, dial):
    assert lines(dial(ONE_METER))[-1] == "4. Langue / Language"  # nothing under way: the menu as ever
    incident = post_incident(app, regions=["Estuaire"])  # not the caller's region: offered all the same
    assert lines(dial(ONE_METER))[-2:] == ["4. Infos coupures", "5. Langue / Language"]
    services(app).incidents.resolve(incident)
    assert lines(dial(ONE_METER))[-1] == "4. Langue / Language"


def test_my_region_s_incidents_the_newest_first_and_one_of_them(app, dial):
    post_incident(app)
    post_incident(app, title={"fr": "Eau coupee a Akwa", "en": "No water in Akwa"},
                  message={"fr": "Fuite sur la conduite principale.", "en": "Leak on the main pipe."})
    post_incident(app, regions=["Estuaire"], title={"fr": "Coupure Libreville", "en": "Outage Libreville"})
    phone = dial(ONE_METER).send("4")  # a meter in the Littoral
    assert lines(phone) == ["Incidents dans votre région:", "1. Eau coupee a Akwa", "2. Coupure Douala Nord",
                            "3. Autre région", *NAV]
    assert lines(phone.send("2")) == ["Coupure Douala Nord", "Travaux sur la ligne de Bonaberi.",
                                      "Fin prévue le 12/05/2030 à 18:00.", *NAV]
    assert lines(phone.send("0"))[0] == "Incidents dans votre région:"  # back to the list
    assert lines(phone.send("0"))[-2:] == ["4. Infos coupures", "5. Langue / Language"]  # and home


def test_a_long_message_pages_with_98_and_0_goes_back_a_page_first(app, dial):
    post_incident(app, title={"fr": "Coupure generale sur tout le reseau Nord", "en": "Outage"},
                  message={"fr": LONG, "en": "Works."})
    phone = dial(ONE_METER).send("4").send("1")
    first = phone.screen
    assert lines(phone)[0] == "Coupure generale sur tout le reseau Nord"
    assert lines(phone)[-3:] == ["98. Suite", *NAV]
    pages = [first]
    while "98. Suite" in phone.screen:
        pages.append(phone.send("98").screen)
    assert len(pages) >= 2
    assert lines(phone)[-3:] == ["Fin prévue le 12/05/2030 à 18:00.", *NAV]  # the last page: no "more"
    assert lines(phone.send("98"))[0] == "Pas d'autre page."  # and no strike for asking
    words = " ".join(" ".join(line for line in page.splitlines() if line not in ("98. Suite", *NAV))
                     for page in pages).split()
    assert words == f"Coupure generale sur tout le reseau Nord {LONG} Fin prévue le 12/05/2030 à 18:00.".split()
    for _ in pages[1:]:
        phone.send("0")  # a page back each time...
    assert phone.screen == first
    assert lines(phone.send("0"))[0] == "Incidents dans votre région:"  # ...then back to the list


def test_no_incident_in_my_region_says_so_and_offers_another(app, dial):
    post_incident(app, regions=["Estuaire"], title={"fr": "Coupure Libreville", "en": "Outage Libreville"})
    phone = dial(ONE_METER).send("4")
    assert lines(phone) == ["Aucun incident en cours dans votre région.", "1. Autre région", *NAV]
    assert lines(phone.send("1")) == ["Choisissez une région:", "1. Estuaire", "2. Littoral", *NAV]
    assert lines(phone.send("1")) == ["Incidents dans cette région:", "1. Coupure Libreville",
                                      "2. Recevoir ses avis par SMS", "3. Autre région", *NAV]
    assert lines(phone.send("1"))[0] == "Coupure Libreville"
    assert lines(phone.send("0"))[0] == "Incidents dans cette région:"
    assert lines(phone.send("3"))[0] == "Choisissez une région:"  # another region: the list again
    assert lines(phone.send("0"))[0] == "Aucun incident en cours dans votre région."  # and back from it


def test_a_caller_without_an_account_chooses_the_region(app, dial):
    post_incident(app)
    phone = dial(NOBODY).send("4")
    assert lines(phone) == ["Choisissez une région:", "1. Estuaire", "2. Littoral", *NAV]
    assert lines(phone.send("1")) == ["Aucun incident en cours dans Estuaire.", "1. Recevoir ses avis par SMS",
                                      "2. Autre région", *NAV]
    assert lines(phone.send("2"))[0] == "Choisissez une région:"
    assert lines(phone.send("2"))[:2] == ["Incidents dans cette région:", "1. Coupure Douala Nord"]
    assert lines(phone.send("0"))[0] == "Choisissez une région:"
    assert lines(phone.send("0"))[-1] == "5. Langue / Language"  # the main menu


def test_subscribing_to_a_region_s_notices(app, dial):
    app.config["SMS_SHORT_CODE"] = "8080"
    post_incident(app)
    phone = dial(NOBODY).send("4").send("2").send("2")  # Littoral: get its notices by SMS
    assert phone.ended
    assert lines(phone) == ["Vous recevrez par SMS les avis de Littoral.",
                            "Pour ne plus les recevoir: envoyez STOP au 8080."]
    assert services(app).incidents.subscriptions(NOBODY) == ["Littoral"]
    again = dial(NOBODY).send("4").send("1").send("1")  # Estuaire: none under way, subscribe all the same
    assert lines(again)[0] == "Vous recevrez par SMS les avis de Estuaire."
    assert services(app).incidents.subscriptions(NOBODY) == ["Estuaire", "Littoral"]


def test_a_caller_who_texted_stop_is_told_how_to_get_the_notices_again(app, dial, redis_client):
    from sms import optout

    optout.set_notices(redis_client, NOBODY, False, source="sms")
    post_incident(app)
    phone = dial(NOBODY).send("4").send("2").send("2")
    assert lines(phone) == ["Vous recevrez par SMS les avis de Littoral.",
                            "Vos avis sont suspendus à votre demande (STOP): envoyez START par SMS pour les reprendre."]
    app.config["SMS_SHORT_CODE"] = "8080"
    assert lines(dial(NOBODY).send("4").send("2").send("2"))[1] == (
        "Vos avis sont suspendus à votre demande (STOP): envoyez START au 8080 pour les reprendre.")


def test_a_caller_who_gets_the_notices_already_is_told_so(app, dial):
    post_incident(app)
    phone = dial(NOBODY).send("4").send("2").send("2")
    assert lines(phone) == ["Vous recevrez par SMS les avis de Littoral."]  # no short code configured: no STOP line
    assert lines(dial(NOBODY).send("4").send("2").send("2")) == ["Vous recevez déjà par SMS les avis de Littoral."]
    # An account in the region: its notices come already.
    phone = dial(ONE_METER).send("4").send("2").send("2").send("2")  # another region: Littoral
    assert phone.ended and lines(phone) == ["Vous recevez déjà par SMS les avis de Littoral."]
    assert services(app).incidents.subscriptions(ONE_METER) == []


def test_in_english(app, dial, redis_client):
    post_incident(app)
    redis_client.hset(keys.profile(ONE_METER), "lang", "en")
    phone = dial(ONE_METER)
    assert lines(phone)[-2:] == ["4. Outage news", "5. Language / Langue"]
    assert lines(phone.send("4")) == ["Incidents in your region:", "1. Outage Douala North", "2. Another region",
                                      "0. Back", "00. Home"]
    assert lines(phone.send("1"))[:3] == ["Outage Douala North", "Works on the Bonaberi line.",
                                          "Expected end 12/05/2030 at 18:00."]
    phone = dial(ONE_METER).send("4").send("2").send("1")  # Estuaire
    assert lines(phone)[:3] == ["No incident under way in Estuaire.", "1. Get its notices by SMS", "2. Another region"]


def test_an_incident_without_an_end_or_over_since_it_was_listed(app, dial):
    incident = post_incident(app, expected_end=None)
    phone = dial(ONE_METER).send("4")
    assert lines(phone.send("1"))[2] == "Fin prévue: pas encore connue."
    phone.send("0")
    services(app).incidents.resolve(incident)
    assert lines(phone.send("1"))[2] == "Incident terminé, le service est rétabli."


def test_garbage_gets_the_retry_hint(app, dial):
    post_incident(app)
    phone = dial(ONE_METER).send("4")
    listed = lines(phone)
    assert lines(phone.send("9")) == ["Choix invalide, réessayez.", *listed]
    assert lines(phone.send("abc"))[0] == "Choix invalide, réessayez."
    shown_incident = lines(phone.send("1"))
    assert lines(phone.send("x")) == ["Choix invalide, réessayez.", *shown_incident]
    assert lines(dial(NOBODY).send("4").send("7"))[0] == "Choix invalide, réessayez."


def test_the_entry_costs_no_round_trip_when_the_caller_s_region_is_known(app, client, customers, wire):  # noqa: F811
    post_incident(app)
    services(app).incidents.active()  # this process's copy holds it: read every few seconds, not per hop
    phone = Phone(client, ONE_METER).dial()
    with wire.hop() as entry:
        phone.send("4")
    assert lines(phone)[:2] == ["Incidents dans votre région:", "1. Coupure Douala Nord"]
    assert len(entry) == 2, shown(entry)  # the lock with the reads, the save: as any menu hop
    with wire.hop() as picked:
        phone.send("1")
    assert lines(phone)[0] == "Coupure Douala Nord"
    assert len(picked) == 2, shown(picked)  # the message from the copy too


def test_every_page_of_the_longest_message_fits_and_they_give_back_the_whole_text():
    body = "\n".join(["T" * 40, WORST_MESSAGE, "Fin prévue le 12/05/2030 à 18:00."])
    context = Context(utility="Eneo", service_code="*384#", today=__import__("datetime").date(2030, 1, 1))
    for lang in ("fr", "en"):
        session = Session("s", "+237699000101", "africastalking", "*384#", "", lang=lang, state="incident",
                          data={"incident_text": body}, hint="hint.no_more", history=["main", "incidents"])
        pages = text_pages(session)
        assert len(pages) > 1
        assert " ".join(pages).split() == body.split()  # cut at word boundaries only, nothing lost
        for page in range(len(pages)):
            session.data["pages"] = {"incident": page}
            screen = render(session, context).text
            assert (gsm7_septets(screen) or 0) <= USSD_GSM7_LIMIT, screen
            assert pages[page] in screen
