"""Every screen of every language fits one USSD screen with worst-case data:
182 GSM-7 septets, or 80 characters if a single character is outside GSM-7."""
from __future__ import annotations

import datetime
import functools
import inspect
import itertools
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from sms.gsm import USSD_GSM7_LIMIT, is_gsm7, screen_size
from state.sessions import Session
from ussd import flows
from ussd.catalogue import catalogue, languages
from ussd.flows import SCREENS
from ussd.flows.bill import WORST_ACCOUNT
from ussd.render import list_pages, page_count, render
from ussd.screens import Context

ALL_HINTS = sorted({key for lang in languages() for key in catalogue(lang) if key.startswith("hint.")})
# Menus and lists refuse with these; input screens with whatever their check says.
CHOICE_HINTS = ["hint.choice", "hint.no_more", "hint.at_home"]
# Services that answer every option's question with "offer it" (the worst case: all offered).
WORST_SERVICES: Any = SimpleNamespace(campaigns=SimpleNamespace(active=lambda now=None: ["a campaign"]),
                                      payments_out=lambda: False, now=lambda: None,
                                      incidents=SimpleNamespace(penalties_waived=lambda region, at: True,
                                                                active=lambda: ["an incident"]))
WORST_CONTEXT = Context(utility="Societe Nationale d'Electricite", service_code="*384*1234*99#",
                        today=datetime.date(2027, 1, 1), services=WORST_SERVICES,
                        banner="B" * 300)  # every due date past: overdue
# Each flow states the worst data its screens can show (ussd/flows/<flow>.py WORST, VARIANTS).
WORST_DATA: dict[str, Any] = {
    "meter_name": WORST_ACCOUNT["name"],
    "hint_values": {"minimum": "10 000 000", "maximum": "10 000 000"},
}
for _flow in (flows.home, *flows.FLOWS):
    WORST_DATA.update(_flow.WORST)
VARIANTS: list[dict[str, Any]] = [{}] + [variant for _flow in (flows.home, *flows.FLOWS) for variant in _flow.VARIANTS]


@functools.cache
def hints_of(check: Callable[..., Any]) -> frozenset[str]:
    """The hints a check can answer: those it names and those of the functions of its
    module it calls, read from the source (so a new hint is covered without touching this
    test)."""
    source = inspect.getsource(check)
    module = inspect.getmodule(check)
    called = {getattr(module, name) for name in re.findall(r"\b(_?[a-z]\w*)\(", source)
              if inspect.isfunction(getattr(module, name, None))} - {check}
    return frozenset(re.findall(r'"(hint\.\w+)"', source)).union(*(hints_of(f) for f in called))


def sessions_for(state: str, lang: str):
    """Sessions on ``state`` covering the data that screen can show."""
    base = dict(session_id="s", phone="+999999999999999", gateway="africastalking", service_code="*384#", network="")
    spec = SCREENS[state]
    if spec.accept is not None:
        hints = ["", *sorted(hints_of(spec.accept)), *CHOICE_HINTS]
    elif spec.kind == "end":
        hints = [""]  # nothing is typed on an END screen: no hint ever stands above it
    else:
        hints = ["", *CHOICE_HINTS, *spec.pick_hints]
    notices = ["", "language.saved"] if state == "main" else [""]  # notices only ever stand on the main menu
    histories = [["main"], ["buy_meter"]] if state == "buy_amount" else [["main"]]  # straight from the menu: one more option
    for variant, hint, notice, history in itertools.product(VARIANTS, hints, notices, histories):
        session = Session(**base, lang=lang, state=state, data={**WORST_DATA, **variant}, hint=hint, notice=notice,
                          history=list(history))
        for page in range(page_count(session)):  # a list's pages, a paged text's (one for other screens)
            session.data["pages"] = {state: page}
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
    assert "hint.meter_unknown" in hints_of(SCREENS["buy_meter_input"].accept)  # through check_meter: the scan follows calls
    assert covered == set(ALL_HINTS)
