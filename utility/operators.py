"""The operators' admin keys: named, kept hashed, matched in constant time.

``ADMIN_KEYS`` names each key (``{"alice": "<key>", "ops-bot": "<key>"}`` as JSON, or
``alice:<key>,ops-bot:<key>``); ``ADMIN_KEY``, the single key of earlier releases, is the key
named ``admin``. When the app is made (``init_app``, first thing after the configuration is
read) both are replaced in ``app.config`` by a ``Keyring``: each name with an HMAC-SHA256 of
its key under a salt drawn for this process. The plain keys are then gone from the config, so
a config dump (``guichet shell``, a debugger, an error report) shows no key, and no line of
ours ever logs one; only names are said.

A call presents its key; ``Keyring.name_of`` hashes it once under the same salt and compares
it with every name's digest (``hmac.compare_digest``, all of them, so the time taken does not
tell which name came close). What is wrong with the keys (too short, two names sharing one,
a name that is not a plain word, a malformed ``ADMIN_KEYS``) is a startup problem: `guichet
serve` and `guichet worker` refuse to start naming it (``app.live_config_problems``). The app
itself is still made, so a test or a `guichet shell` works; a malformed entry is never a key.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

MIN_KEY_LENGTH = 16  # characters: a key is a secret, not a password typed by hand
LEGACY_NAME = "admin"  # the name of ADMIN_KEY, the one key of earlier releases
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # what the audit says: no space, no control character


@dataclass(frozen=True)
class Keyring(Mapping[str, str]):
    """Operator name -> hex digest of its key (HMAC-SHA256 under ``salt``); never a key.

    ``problems`` says what `guichet serve` must refuse to start with (names only)."""

    salt: bytes = field(repr=False)
    digests: tuple[tuple[str, str], ...]
    problems: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], salt: bytes | None = None) -> Keyring:
        """The keys of ``ADMIN_KEY`` and ``ADMIN_KEYS``, hashed; a Keyring already is one."""
        named = config.get("ADMIN_KEYS")
        if isinstance(named, Keyring):
            return named
        salt = os.urandom(32) if salt is None else salt
        problems: list[str] = []
        keys: dict[str, str] = {}
        single = config.get("ADMIN_KEY")
        if single not in (None, ""):
            keys[LEGACY_NAME] = str(single)
        for name, key in _named_keys(named, problems):
            if not NAME.fullmatch(name):
                problems.append(f"GUICHET_ADMIN_KEYS: the name {name[:64]!r} is not a plain word "
                                "(letters, digits, '.', '_', '-'; 64 at most): it names the operator in the audit")
            elif name in keys:
                problems.append(f"GUICHET_ADMIN_KEYS names {name!r} twice"
                                + (" (GUICHET_ADMIN_KEY is the key named admin)" if name == LEGACY_NAME else ""))
            elif key in (None, ""):
                problems.append(f"GUICHET_ADMIN_KEYS: {name!r} has no key")
            else:
                keys[name] = str(key)
        for name, key in keys.items():
            variable = "GUICHET_ADMIN_KEY" if name == LEGACY_NAME and single not in (None, "") else "GUICHET_ADMIN_KEYS"
            if len(key) < MIN_KEY_LENGTH:
                problems.append(f"{variable}: the key of {name!r} is shorter than {MIN_KEY_LENGTH} characters; "
                                "draw one with: python -c 'import secrets; print(secrets.token_urlsafe(24))'")
            if not key.isprintable() or any(c.isspace() for c in key):
                problems.append(f"{variable}: the key of {name!r} holds a space or a control character, "
                                "which no Authorization header can carry")
        sharing: dict[str, list[str]] = {}
        for name, key in keys.items():
            sharing.setdefault(key, []).append(name)
        for names in sharing.values():
            if len(names) > 1:  # the audit could not tell who acted
                problems.append(f"GUICHET_ADMIN_KEYS: {', '.join(map(repr, names))} share one key: give each its own")
        return cls(salt, tuple((name, _digest(salt, key)) for name, key in keys.items()), tuple(problems))

    def name_of(self, presented: str) -> str | None:
        """The name whose key was presented, or None."""
        digest = _digest(self.salt, presented)
        found = None
        for name, expected in self.digests:  # every one, whatever matched
            if hmac.compare_digest(digest, expected):
                found = name
        return found

    def __getitem__(self, name: str) -> str:
        for known, digest in self.digests:
            if known == name:
                return digest
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.digests)

    def __len__(self) -> int:
        return len(self.digests)


def _digest(salt: bytes, key: str) -> str:
    # Bytes, "replace": a header may hold anything, and compare_digest takes ASCII str only.
    return hmac.new(salt, key.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def _named_keys(value: Any, problems: list[str]) -> list[tuple[str, Any]]:
    """ADMIN_KEYS as (name, key) pairs: a mapping (JSON), or ``name:key,name:key``."""
    if value in (None, ""):
        return []
    if isinstance(value, Mapping):
        return [(str(name), key) for name, key in value.items()]
    if isinstance(value, str):
        pairs = []
        for item in value.split(","):
            name, colon, key = item.strip().partition(":")
            if not colon:
                problems.append("GUICHET_ADMIN_KEYS: an entry is not name:key (or give a JSON object "
                                "'{\"alice\": \"<key>\"}')")
                continue
            pairs.append((name.strip(), key.strip()))
        return pairs
    problems.append("GUICHET_ADMIN_KEYS is neither a JSON object of name: key nor name:key,name:key")
    return []


def init_app(app: Flask) -> None:
    """Replace the plain keys in ``app.config`` by their Keyring (ADMIN_KEYS); ADMIN_KEY is
    then None. Run it before anything reads or logs the configuration."""
    app.config["ADMIN_KEYS"] = Keyring.from_config(app.config)
    app.config["ADMIN_KEY"] = None


def keyring(config: Mapping[str, Any]) -> Keyring:
    return Keyring.from_config(config)


def startup_problems(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with the admin keys, each naming its variable (never a key)."""
    return list(keyring(config).problems)
