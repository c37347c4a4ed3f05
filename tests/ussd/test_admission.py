"""Admission control: saturated, the service turns new dialogues away with a polite END
at once and keeps serving the dialogues already started (never a timeout, never a 5xx)."""
from __future__ import annotations

from tests.ussd.conftest import ONE_METER, SEVERAL, Phone
from ussd.admission import FORGET_AFTER, Admission
from ussd.views import ADMISSION


def test_slow_recent_hops_turn_new_dialogues_away_but_not_ongoing_ones():
    admission = Admission(latency_bound=0.5)
    assert admission.admit(opening=True, now=0.0)
    admission.done(2.0, now=1.0)  # a hop took two seconds
    assert not admission.admit(opening=True, now=1.1)  # a newcomer is turned away...
    assert admission.admit(opening=False, now=1.1)  # ...a dialogue under way is served
    assert admission.refused == 1


def test_the_load_is_forgotten_once_hops_come_back_fast_or_stop():
    admission = Admission(latency_bound=0.5)
    admission.admit(opening=True, now=0.0)
    admission.done(2.0, now=0.0)
    for n in range(40):  # fast hops bring the average down
        admission.admit(opening=False, now=0.1 + n / 100)
        admission.done(0.01, now=0.1 + n / 100)
    assert admission.admit(opening=True, now=0.6)
    admission.done(8.0, now=1.0)  # one very slow hop weighs a tenth: 0.04 -> 0.84 s
    assert not admission.admit(opening=True, now=1.0)
    assert admission.admit(opening=True, now=1.0 + FORGET_AFTER + 0.1)  # nothing recent: no evidence of load


def test_hops_in_flight_past_the_bound_turn_new_dialogues_away():
    admission = Admission(max_in_flight=2)
    assert admission.admit(opening=True) and admission.admit(opening=True)
    assert not admission.admit(opening=True)
    assert admission.admit(opening=False)  # the dialogues in flight finish
    admission.done(0.01)
    admission.done(0.01)
    assert admission.admit(opening=True)


def test_no_bounds_admit_everyone():
    admission = Admission()
    admission.done(30.0)
    assert all(admission.admit(opening=True) for _ in range(1000))


def test_a_saturated_service_answers_a_new_dial_with_a_polite_end(app, client, customers):
    # GUICHET_ADMISSION_LATENCY so low that any hop is "slow": saturated after the first.
    app.extensions[ADMISSION] = Admission.from_config({**app.config, "ADMISSION_LATENCY": 1e-9})
    first = Phone(client, ONE_METER).dial()  # admitted: nothing measured yet
    assert not first.ended
    newcomer = Phone(client, SEVERAL).dial()
    assert newcomer.status == 200 and newcomer.ended
    assert newcomer.screen == "Service très demandé en ce moment. Merci de rappeler dans quelques minutes."
    assert first.send("3").screen.startswith("Mon compte:")  # the dialogue under way goes on


def test_while_a_campaign_is_open_the_turned_away_are_told_how_to_register_by_sms(app, client, customers):
    from tests.ussd.test_campaigns import open_campaign

    app.config["SMS_SHORT_CODE"] = "8080"
    open_campaign(app)
    app.extensions[ADMISSION] = Admission(latency_bound=1e-9)
    Phone(client, ONE_METER).dial()
    newcomer = Phone(client, SEVERAL).dial()
    assert newcomer.ended and newcomer.screen == (
        "Service très demandé en ce moment. Rappelez dans quelques minutes, ou envoyez par SMS GRATUIT suivi du "
        "numéro de compteur au 8080.")


def test_the_turned_away_screens_fit_with_the_longest_code_and_number():
    from sms.gsm import screen_size
    from ussd.catalogue import languages, text

    for lang in languages():
        for said in (text(lang, "end.saturated"),
                     text(lang, "end.saturated_sms", code="ABCDEFGHIJKL", short_code="+237690000000")):
            length, limit = screen_size(said)
            assert length <= limit, (lang, said)
