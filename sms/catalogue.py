"""Message catalogues: every text a customer reads, per language, none in code.

A catalogue is a folder of TOML files, one per language (fr.toml, en.toml, ...), whose
nested tables are flattened to dotted keys ("main.buy"). The USSD screens
(ussd/texts/) and the SMS (sms/texts/) each have one; adding a language is adding a file
to each.
"""
from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

DEFAULT_LANGUAGE = "fr"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = str(value)
    return flat


class Catalogue:
    def __init__(self, folder: Path, default: str = DEFAULT_LANGUAGE) -> None:
        self.folder = folder
        self.default = default

    @cached_property
    def languages(self) -> tuple[str, ...]:
        """Codes of the languages with a file, the default first."""
        found = sorted(path.stem for path in self.folder.glob("*.toml"))
        return tuple(sorted(found, key=lambda code: code != self.default))

    @cached_property
    def _texts(self) -> dict[str, dict[str, str]]:
        texts = {}
        for lang in self.languages:
            with (self.folder / f"{lang}.toml").open("rb") as file:
                texts[lang] = _flatten(tomllib.load(file))
        return texts

    def texts(self, lang: str) -> dict[str, str]:
        return self._texts[lang]

    def text(self, lang: str, key: str, **values: Any) -> str:
        """The text ``key`` in ``lang`` (the default language when ``lang`` has no file), filled in."""
        template = self._texts.get(lang, self._texts[self.default])[key]
        return template.format(**values) if values else template
