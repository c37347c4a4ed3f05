"""Picking the provider: GUICHET_PAYMENT_PROVIDER, one line per provider in PROVIDERS."""
from __future__ import annotations

import pytest

from app import create_app
from tests.payments.conftest import momo_config
from utility.payments import PROVIDERS, from_config, provider
from utility.payments.base import PaymentRequest, PaymentResult
from utility.payments.demo import DemoProvider
from utility.payments.mtn_momo import MtnMomo


def test_the_demo_is_the_default(app):
    chosen = from_config(app)
    assert isinstance(chosen, DemoProvider) and chosen.name == "demo"
    assert from_config(app) is chosen  # built once per app


def test_mtn_momo_is_chosen_by_config(redis_client, momo):
    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client, **momo_config(momo)})
    chosen = from_config(app)
    assert isinstance(chosen, MtnMomo) and chosen.settings.base_url == momo.url


def test_mtn_momo_without_credentials_says_what_is_missing(redis_client):
    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "PAYMENT_PROVIDER": "mtn_momo"})
    with pytest.raises(ValueError, match="GUICHET_MTN_MOMO_SUBSCRIPTION_KEY"):
        from_config(app)


def test_an_unknown_provider_is_refused(redis_client):
    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "PAYMENT_PROVIDER": "cash"})
    with pytest.raises(ValueError, match="demo, mtn_momo"):
        from_config(app)


def test_a_provider_is_one_line_in_the_registry(app, monkeypatch):
    class Cash:
        name = "cash"

        def request(self, payment: PaymentRequest) -> PaymentResult:
            return PaymentResult(self.name, "C-" + payment.order_ref, payment.order_ref, "successful")

    monkeypatch.setitem(PROVIDERS, "cash", lambda app: Cash())
    app.config["PAYMENT_PROVIDER"] = "cash"
    assert from_config(app).request(PaymentRequest("ORDER001", "+237670000001", 100)).state == "successful"
    assert provider(app, "demo").name == "demo"


def test_malformed_requests_are_caller_bugs():
    with pytest.raises(ValueError):
        PaymentRequest("ORDER001", "237670000001", 100)  # not E.164
    with pytest.raises(ValueError):
        PaymentRequest("ORDER001", "+237670000001", 0)
    with pytest.raises(ValueError):
        PaymentRequest("bad ref with spaces", "+237670000001", 100)
