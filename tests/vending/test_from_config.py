"""Choosing the vending backend from configuration."""
from __future__ import annotations

import datetime

import pytest

from utility.customers import RedisCustomerBase
from utility.vending import from_config, sts_settings
from utility.vending.builtin import BuiltinVending
from utility.vending.xmlvend import XmlVendBackend


def test_builtin_by_default_with_codes_kept_as_strings(fake_redis):
    # Flask turns GUICHET_STS_SGC=012345 into a string but 123456 into a number.
    settings = sts_settings({"STS_SGC": 123456, "STS_TARIFF_INDEX": 1, "STS_BASE_DATE": "1993-01-01"})
    assert (settings.sgc, settings.tariff_index, settings.base_date) == ("123456", "01", datetime.date(1993, 1, 1))
    assert isinstance(from_config({}, fake_redis, RedisCustomerBase(fake_redis)), BuiltinVending)


def test_xmlvend_when_asked(fake_redis):
    config = {"VENDING_BACKEND": "xmlvend", "XMLVEND_URL": "http://127.0.0.1:9/xmlvend", "XMLVEND_CLIENT_ID": "6004708001",
              "XMLVEND_TERMINAL_ID": "T1", "XMLVEND_OPERATOR": "guichet", "XMLVEND_PASSWORD": "secret"}
    assert isinstance(from_config(config, fake_redis, RedisCustomerBase(fake_redis)), XmlVendBackend)


def test_an_unknown_backend_is_refused(fake_redis):
    with pytest.raises(ValueError, match="unknown VENDING_BACKEND"):
        from_config({"VENDING_BACKEND": "magic"}, fake_redis, RedisCustomerBase(fake_redis))
