"""The message catalogue: every text a customer reads, per language, none in code.

Catalogues are TOML files in ussd/texts/, one per language, with nested tables
flattened to dotted keys ("main.buy"). Adding a language is adding one file.
"""
from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

TEXTS = Path(__file__).parent / "texts"
DEFAULT_LANGUAGE = "fr"


@cache
def languages() -> tuple[str, ...]:
    """Codes of the languages with a catalogue, French first."""
    found = sorted(path.stem for path in TEXTS.glob("*.toml"))
    return tuple(sorted(found, key=lambda code: code != DEFAULT_LANGUAGE))


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = str(value)
    return flat


@cache
def catalogue(lang: str) -> dict[str, str]:
    with (TEXTS / f"{lang}.toml").open("rb") as file:
        return _flatten(tomllib.load(file))


def text(lang: str, key: str, **values: Any) -> str:
    """The text ``key`` in ``lang`` (French when ``lang`` has no catalogue), filled in."""
    texts = catalogue(lang if lang in languages() else DEFAULT_LANGUAGE)
    template = texts[key]
    return template.format(**values) if values else template
