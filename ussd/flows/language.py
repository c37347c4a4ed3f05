"""The language: French by default, each language named in itself, remembered per phone."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transitions import EventData

from ussd.catalogue import languages
from ussd.screens import Option, ScreenSpec, visit_of

if TYPE_CHECKING:
    pass

ENTRY = Option("main.language", "choose_language")


def remember_language(event: EventData) -> None:
    visit = visit_of(event)
    visit.session.lang = event.kwargs["lang"]
    visit.session.notice = "language.saved"
    visit.language_changed = True


SCREENS: dict[str, ScreenSpec] = {
    "language": ScreenSpec("menu", title="language.title", options=tuple(
        Option("language_name", "set_language", (("lang", code),), label_lang=code) for code in languages()
    )),
}

EDGES: list[dict[str, Any]] = [
    {"trigger": "choose_language", "source": "main", "dest": "language"},
    {"trigger": "set_language", "source": "language", "dest": "main", "after": remember_language},
]
# Moves after which "back" has nowhere to go: the main menu starts afresh.
RESETTING = ("set_language",)

WORST: dict[str, Any] = {}
VARIANTS: list[dict[str, Any]] = []
