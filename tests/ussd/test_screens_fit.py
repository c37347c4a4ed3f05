"""Every screen of every language fits one USSD screen with worst-case data:
182 GSM-7 septets, or 80 characters if a single character is outside GSM-7."""
from __future__ import annotations

import itertools
import re

import pytest

from sms.gsm import USSD_GSM7_LIMIT, is_gsm7, screen_size
from state.sessions import Session
from ussd.catalogue import catalogue, languages
from ussd.screens import SCREENS, Context, list_pages, render

LONGEST_NAME = "Mbarga Ondoua Ngono Jean-Baptiste Marie-Claire Epse Nkoulou"[:60]
WORST_ACCOUNT = {
    "number": "ABCDEFGHIJKLMNOPQRS9",  # 20 characters, the longest the CSV allows
    "meter": "",
    "name": LONGEST_NAME + "ôëœ",  # non-GSM letters must not cut the screen to 80
    "tariff": "t" * 20,
    "region": "R" * 40,
    "balance": 999_999_999,
    "due": "2026-12-31",
}
WORST_METER = {**WORST_ACCOUNT, "meter": "0123456789012"}
FEATURES = [option.args[0][1] for option in SCREENS["main"].options if option.trigger == "soon"]
HINTS = [""] + sorted({key for lang in languages() for key in catalogue(lang) if key.startswith("hint.")})
WORST_CONTEXT = Context(utility="Societe Nationale d'Electricite", service_code="*384*1234*99#", banner="B" * 300)


def sessions_for(state: str, lang: str):
    """Sessions on ``state`` covering the data that screen can show."""
    base = dict(session_id="s", phone="+999999999999999", gateway="africastalking", service_code="*384#", network="")
    datas = [{}]
    if state in ("account", "accounts"):
        datas = [{"accounts": [WORST_ACCOUNT] * 40, "account": 0}, {"accounts": [WORST_METER] * 40, "account": 0},
                 {"accounts": [{**WORST_ACCOUNT, "due": ""}], "account": 0},
                 {"accounts": [{**WORST_ACCOUNT, "balance": 0}], "account": 0}]
    if state == "unavailable":
        datas = [{"feature": feature} for feature in FEATURES]
    for data, hint, notice in itertools.product(datas, HINTS, ["", "language.saved"]):
        session = Session(**base, lang=lang, state=state, data=dict(data), hint=hint, notice=notice)
        if SCREENS[state].kind == "list":
            for page in range(len(list_pages(session))):
                session.data["pages"] = {state: page}
                yield session
        else:
            yield session


@pytest.mark.parametrize("lang", languages())
@pytest.mark.parametrize("state", list(SCREENS))
def test_every_screen_fits_with_worst_case_data(state, lang):
    rendered = 0
    for session in sessions_for(state, lang):
        screen = render(session, WORST_CONTEXT)
        length, limit = screen_size(screen.text)
        assert length <= limit, f"{state}/{lang} is {length}/{limit}:\n{screen.text}"
        assert not screen.text.endswith(".."), f"{state}/{lang} was cut by the guard:\n{screen.text}"
        rendered += 1
    assert rendered


def test_a_long_list_paginates_and_every_item_is_on_a_page():
    session = Session("s", "+237699000102", "africastalking", "*384#", "", lang="fr", state="accounts",
                      data={"accounts": [WORST_ACCOUNT] * 40})
    pages = list_pages(session)
    assert len(pages) > 1
    assert sorted(i for page in pages for i in page) == list(range(40))


def test_catalogues_have_the_same_keys_and_placeholders():
    reference = catalogue("fr")
    for lang in languages():
        texts = catalogue(lang)
        assert texts.keys() == reference.keys(), lang
        for key, value in texts.items():
            assert set(re.findall(r"{(\w+)}", value)) == set(re.findall(r"{(\w+)}", reference[key])), (lang, key)


@pytest.mark.parametrize("lang", languages())
def test_catalogue_texts_are_gsm7(lang):
    offenders = {key: value for key, value in catalogue(lang).items() if not is_gsm7(value)}
    assert not offenders


def test_the_limit_is_the_gateway_one():
    assert USSD_GSM7_LIMIT == 182
    assert screen_size("ê" * 81) == (81, 80)
    assert screen_size("{" * 91) == (182, 182)  # escape characters take two septets
