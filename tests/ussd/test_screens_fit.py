"""Every screen of every language fits one USSD screen with worst-case data:
182 GSM-7 septets, or 80 characters if a single character is outside GSM-7."""
from __future__ import annotations

import datetime
import functools
import inspect
import itertools
import re

import pytest

from sms.gsm import USSD_GSM7_LIMIT, is_gsm7, screen_size
from state.sessions import Session
from ussd.catalogue import catalogue, languages
from ussd.menu import Visit
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
ALL_HINTS = sorted({key for lang in languages() for key in catalogue(lang) if key.startswith("hint.")})
# Menus and lists refuse with these; input screens with whatever their check says.
CHOICE_HINTS = ["hint.choice", "hint.no_more", "hint.at_home"]
WORST_CONTEXT = Context(utility="Societe Nationale d'Electricite", service_code="*384*1234*99#",
                        today=datetime.date(2027, 1, 1), banner="B" * 300)  # every due date past: overdue
BIG = 999_999_999  # the largest balance the customer CSV accepts
ORDER_MAX = 10_000_000  # the largest order amount (bills; purchases are capped lower by tariffs)
WORST_QUOTE = {"units": "99999.9", "unit": "kWh",
               "charges": [[c, ORDER_MAX] for c in ("fixed_fee", "debt_recovery", "municipal_tax", "vat", "service_charge", "energy")]}
WORST_ORDER = {"reference": "ABCDEFGH", "kind": "bill", "target": "ABCDEFGHIJKLMNOPQRS9", "amount": ORDER_MAX,
               "state": "paid_awaiting_fulfilment", "at": "31/12/2026 23:59"}
WORST_DATA = {
    "accounts": [WORST_ACCOUNT] * 40, "account": 0,
    "meters": [{"meter": "0123456789012"}] * 3, "bills": [WORST_ACCOUNT] * 3,
    "meter": "0123456789012", "meter_name": LONGEST_NAME, "minimum": ORDER_MAX, "maximum": ORDER_MAX, "amount": ORDER_MAX,
    "quote": WORST_QUOTE, "offline": False, "flow": "units", "payer": "+999999999999999",
    "account_no": "ABCDEFGHIJKLMNOPQRS9", "account_name": LONGEST_NAME, "balance": BIG, "due": "2026-12-31",
    "can_pay_more": True,
    "order_ref": "ABCDEFGH", "orders": [WORST_ORDER] * 10, "payment": 9,
    "resent": "sent", "retry_minutes": 1440,
    "resume": {"state": "confirm", "history": [], "data": {"flow": "units", "meter": "0123456789012"}},
    "hint_values": {"minimum": "10 000 000", "maximum": "10 000 000"},
}
VARIANTS = [
    {},
    {"accounts": [WORST_METER] * 40},
    {"accounts": [{**WORST_METER, "tariff": "prepaid"}] * 40},
    {"accounts": [{**WORST_ACCOUNT, "due": ""}]},
    {"accounts": [{**WORST_ACCOUNT, "balance": 0}]},
    {"offline": True},
    {"flow": "bill"},
    {"payer": "+888888888888888"},  # another phone pays: the screens name it
    {"payer": "+888888888888888", "flow": "bill"},
    {"due": ""},
    {"balance": 0},
    {"resent": "none"},
    {"resent": "limited"},
    {"orders": [{**WORST_ORDER, "kind": "units", "target": "0123456789012", "state": "fulfilled"}] * 10},
    {"flow": "bill", "balance": 1},  # paying more than is due: the confirm screen says where the rest goes
    {"resume": {"state": "bill_account_input", "history": [], "data": {}}},
    {"resume": {"state": "confirm", "history": [], "data": {"flow": "bill", "account_no": "ABCDEFGHIJKLMNOPQRS9"}}},
    {"resume": {"state": "account_menu", "history": [], "data": {}}},
]


@functools.cache
def hints_of(method: str) -> frozenset[str]:
    """The hints a Visit method can answer: those it names and those of the methods it
    calls, read from the source (so a new hint is covered without touching this test)."""
    source = inspect.getsource(getattr(Visit, method))
    called = set(re.findall(r"self\.(_?[a-z]\w*)\(", source)) & set(vars(Visit))
    return frozenset(re.findall(r'"(hint\.\w+)"', source)).union(*(hints_of(name) for name in called - {method}))


def sessions_for(state: str, lang: str):
    """Sessions on ``state`` covering the data that screen can show."""
    base = dict(session_id="s", phone="+999999999999999", gateway="africastalking", service_code="*384#", network="")
    spec = SCREENS[state]
    if spec.kind == "input":
        hints = ["", *sorted(hints_of(spec.accept)), *CHOICE_HINTS]
    else:
        hints = ["", *CHOICE_HINTS, *spec.pick_hints]
    notices = ["", "language.saved"] if state == "main" else [""]  # notices only ever stand on the main menu
    histories = [["main"], ["buy_meter"]] if state == "buy_amount" else [["main"]]  # straight from the menu: one more option
    for variant, hint, notice, history in itertools.product(VARIANTS, hints, notices, histories):
        session = Session(**base, lang=lang, state=state, data={**WORST_DATA, **variant}, hint=hint, notice=notice,
                          history=list(history))
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


def test_every_hint_is_rendered_on_a_screen_that_can_show_it():
    """The fit test renders each input screen with the hints its check can answer: every
    hint of the catalogue must be one of those, or the scan above missed a path."""
    accepts = {spec.accept for spec in SCREENS.values() if spec.accept}
    covered = set(CHOICE_HINTS).union(*(hints_of(accept) for accept in accepts), *(s.pick_hints for s in SCREENS.values()))
    assert covered == set(ALL_HINTS)
