"""Prepaid vending: the interface every vending backend implements (base), the built-in
engine (builtin: STS tokens + tariffs + Redis) and the XMLVend 2.1 adapter (xmlvend).

`from_config` picks one with GUICHET_VENDING_BACKEND: ``builtin`` (default) or ``xmlvend``.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from utility.customers import CustomerBase
from utility.vending.base import VendingBackend

if TYPE_CHECKING:
    from utility.vending.builtin import StsSettings

log = logging.getLogger(__name__)

# The public STS test vending key (IEC 62055-41 examples): fine for demos, never for meters in the field.
DEMO_VENDING_KEY = "abababababababab"


def sts_settings(config: Mapping[str, Any]) -> StsSettings:
    from utility.vending.builtin import StsSettings

    key = str(config.get("STS_VENDING_KEY") or DEMO_VENDING_KEY)
    if key == DEMO_VENDING_KEY:
        log.warning("STS_VENDING_KEY is the public test key: tokens are for demonstration meters only")
    return StsSettings(
        vending_key=bytes.fromhex(key),
        key_type=int(config.get("STS_KEY_TYPE", 2)),
        # Flask reads GUICHET_STS_SGC=123456 as a number: codes are strings of fixed width.
        sgc=str(config.get("STS_SGC", "123456")).zfill(6),
        tariff_index=str(config.get("STS_TARIFF_INDEX", "01")).zfill(2),
        krn=int(config.get("STS_KRN", 1)),
        base_date=datetime.date.fromisoformat(str(config.get("STS_BASE_DATE", "2014-01-01"))),
        tables=str(config.get("STS_TABLES", "test")),
    )


def from_config(config: Mapping[str, Any], client: redis.Redis, customers: CustomerBase) -> VendingBackend:
    kind = str(config.get("VENDING_BACKEND", "builtin"))
    if kind == "builtin":
        from utility.vending.builtin import BuiltinVending
        from utility.vending.tariffs import load_tariffs

        tariffs_file = config.get("TARIFFS_FILE")
        return BuiltinVending(client, customers, sts_settings(config), tariffs=load_tariffs(tariffs_file))
    if kind == "xmlvend":
        from utility.vending.xmlvend import XmlVendBackend

        return XmlVendBackend(
            url=str(config["XMLVEND_URL"]),
            client_id=str(config["XMLVEND_CLIENT_ID"]),
            terminal_id=str(config["XMLVEND_TERMINAL_ID"]),
            operator=str(config["XMLVEND_OPERATOR"]),
            password=str(config["XMLVEND_PASSWORD"]),
            timeout=float(config.get("XMLVEND_TIMEOUT", 10.0)),
            retries=int(config.get("XMLVEND_RETRIES", 2)),
            currency=str(config.get("XMLVEND_CURRENCY", "XAF")),
            resource=str(config.get("XMLVEND_RESOURCE", "electricity")),
        )
    raise ValueError(f"unknown VENDING_BACKEND {kind!r}: use builtin or xmlvend")

