"""Prepaid vending: the interface every vending backend implements (base), the built-in
engine (builtin: STS tokens + tariffs + Redis) and the XMLVend 2.1 adapter (xmlvend).

`from_settings` builds the one GUICHET_VENDING_BACKEND picks: ``builtin`` (default) or
``xmlvend``, from the app's vending settings, parsed once (`settings_of`).
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from utility.calls import CallPolicy
from utility.customers import CustomerBase
from utility.vending.base import BackendUnavailable, VendingBackend

if TYPE_CHECKING:
    from flask import Flask

    from state.store import TextRedis
    from utility.vending.builtin import StsSettings

log = logging.getLogger(__name__)

# Configuration of vending, read from GUICHET_<NAME> like the rest. Each default is stated
# here and nowhere else: app.DEFAULTS merges this mapping, and settings parsed from a mapping
# that lacks one (a test's dict) take it from here, as do StsSettings' and XmlVendBackend's.
DEFAULTS: dict[str, Any] = {
    "VENDING_BACKEND": "builtin",  # builtin | xmlvend
    # The built-in engine's STS key data: what every meter should have.
    "STS_VENDING_KEY": None,  # hex; None: the public STS test key (demo meters only)
    "STS_KEY_TYPE": 2,
    "STS_SGC": "123456",
    "STS_TARIFF_INDEX": "01",
    "STS_KRN": 1,
    "STS_BASE_DATE": "2014-01-01",
    "STS_TABLES": "test",
    "TARIFFS_FILE": None,  # None: the shipped utility/vending/tariffs.toml
    # The utility's XMLVend 2.1 server.
    "XMLVEND_URL": None,
    "XMLVEND_CLIENT_ID": None,
    "XMLVEND_TERMINAL_ID": None,
    "XMLVEND_OPERATOR": None,
    "XMLVEND_PASSWORD": None,
    "XMLVEND_TIMEOUT": 10.0,  # seconds per call
    "XMLVEND_RETRIES": 2,
    "XMLVEND_CURRENCY": "XAF",
    "XMLVEND_RESOURCE": "electricity",
}

# The public STS test vending key (IEC 62055-41 examples): fine for demos, never for meters in the field.
DEMO_VENDING_KEY = "abababababababab"

SETTINGS_EXTENSION = "guichet.vending.settings"


def _given(config: Mapping[str, Any], name: str) -> Any:
    return config.get(name, DEFAULTS[name])


def backend_name(config: Mapping[str, Any]) -> str:
    """The vending backend ``config`` picks (VENDING_BACKEND)."""
    return str(_given(config, "VENDING_BACKEND"))


def sts_settings(config: Mapping[str, Any]) -> StsSettings:
    from utility.vending.builtin import StsSettings

    key = str(config.get("STS_VENDING_KEY") or DEMO_VENDING_KEY)
    if key == DEMO_VENDING_KEY:
        log.warning("STS_VENDING_KEY is the public test key: tokens are for demonstration meters only")
    return StsSettings(
        vending_key=bytes.fromhex(key),
        key_type=int(_given(config, "STS_KEY_TYPE")),
        # Flask reads GUICHET_STS_SGC=123456 as a number: codes are strings of fixed width.
        sgc=str(_given(config, "STS_SGC")).zfill(6),
        tariff_index=str(_given(config, "STS_TARIFF_INDEX")).zfill(2),
        krn=int(_given(config, "STS_KRN")),
        base_date=datetime.date.fromisoformat(str(_given(config, "STS_BASE_DATE"))),
        tables=str(_given(config, "STS_TABLES")),
    )


@dataclass(frozen=True)
class XmlVendSettings:
    url: str
    client_id: str
    terminal_id: str
    operator: str
    password: str
    timeout: float
    retries: int
    currency: str
    resource: str


@dataclass(frozen=True)
class VendingSettings:
    """How an app vends: its backend and that backend's settings (the other's are not read)."""

    backend: str  # builtin | xmlvend
    sts: StsSettings | None = None  # builtin: the STS key data
    tariffs_file: str | None = None  # builtin; None: the shipped tariffs
    xmlvend: XmlVendSettings | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VendingSettings:
        backend = backend_name(config)
        if backend == "builtin":
            return cls(backend, sts=sts_settings(config), tariffs_file=_given(config, "TARIFFS_FILE"))
        if backend == "xmlvend":
            return cls(backend, xmlvend=XmlVendSettings(
                url=str(_given(config, "XMLVEND_URL")),
                client_id=str(_given(config, "XMLVEND_CLIENT_ID")),
                terminal_id=str(_given(config, "XMLVEND_TERMINAL_ID")),
                operator=str(_given(config, "XMLVEND_OPERATOR")),
                password=str(_given(config, "XMLVEND_PASSWORD")),
                timeout=float(_given(config, "XMLVEND_TIMEOUT")),
                retries=int(_given(config, "XMLVEND_RETRIES")),
                currency=str(_given(config, "XMLVEND_CURRENCY")),
                resource=str(_given(config, "XMLVEND_RESOURCE")),
            ))
        raise ValueError(f"unknown VENDING_BACKEND {backend!r}: use builtin or xmlvend")


def settings_of(app: Flask) -> VendingSettings:
    """The app's vending settings, parsed once."""
    settings: VendingSettings | None = app.extensions.get(SETTINGS_EXTENSION)
    if settings is None:
        settings = app.extensions[SETTINGS_EXTENSION] = VendingSettings.from_config(app.config)
    return settings


def from_settings(settings: VendingSettings, client: TextRedis, customers: CustomerBase) -> VendingBackend:
    if settings.sts is not None:
        from utility.vending.builtin import BuiltinVending
        from utility.vending.tariffs import load_tariffs

        return BuiltinVending(client, customers, settings.sts, tariffs=load_tariffs(settings.tariffs_file))
    if settings.xmlvend is not None:
        from utility.vending.xmlvend import XmlVendBackend

        xml = settings.xmlvend
        return XmlVendBackend(
            url=xml.url,
            client_id=xml.client_id,
            terminal_id=xml.terminal_id,
            operator=xml.operator,
            password=xml.password,
            timeout=xml.timeout,
            retries=xml.retries,
            currency=xml.currency,
            resource=xml.resource,
        )
    raise ValueError(f"no settings for VENDING_BACKEND {settings.backend!r}")


# The interface's calls to the vending system (base.VendingBackend): what the seam wraps.
CALLS = ("confirm", "quote", "vend", "reprint", "free_issue")


def call_policy(settings: VendingSettings) -> CallPolicy:
    """How the seam (utility.calls) calls the vending backend ``settings`` picks. Nothing is
    repeated from there: XMLVend retries its idempotent exchanges itself and knows when a
    vend may be sent again (utility.vending.xmlvend)."""
    if settings.xmlvend is not None:
        return CallPolicy("vending", CALLS, BackendUnavailable, timeout=settings.xmlvend.timeout)
    # The built-in engine: an operator's switch (POST /admin/backends/vending) plays its
    # outage; what it has stored (reprints) is still read. Its time bound is the default
    # one: a vend waits up to 5 s for its meter (builtin.LOCK_WAIT).
    return CallPolicy("vending", CALLS, BackendUnavailable, switch="vending",
                      switched=frozenset({"confirm", "quote", "vend", "free_issue"}))


def from_config(config: Mapping[str, Any], client: TextRedis, customers: CustomerBase) -> VendingBackend:
    return from_settings(VendingSettings.from_config(config), client, customers)
