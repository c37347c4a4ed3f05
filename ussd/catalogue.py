"""The USSD screens' message catalogue (ussd/texts/*.toml); see sms.catalogue."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sms.catalogue import DEFAULT_LANGUAGE, Catalogue

SCREENS = Catalogue(Path(__file__).parent / "texts")

__all__ = ["DEFAULT_LANGUAGE", "SCREENS", "catalogue", "languages", "text"]


def languages() -> tuple[str, ...]:
    return SCREENS.languages


def catalogue(lang: str) -> dict[str, str]:
    return SCREENS.texts(lang)


def text(lang: str, key: str, **values: Any) -> str:
    return SCREENS.text(lang, key, **values)
