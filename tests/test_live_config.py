"""Production defaults that would fail silently: Twilio with no public URL (it would be
told to call back 127.0.0.1), MTN MoMo outside its sandbox with no currency."""
from __future__ import annotations

import click
import pytest

from app import DEFAULTS, check_live_config, create_app, live_config_problems

TWILIO = {**DEFAULTS, "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
          "TWILIO_FROM": "+1500"}


def test_trying_guichet_locally_needs_nothing():
    assert live_config_problems(create_app({"TESTING": True}).config) == []


def test_the_public_url_defaults_to_nothing():
    assert create_app({"TESTING": True}).config["PUBLIC_URL"] is None


def test_twilio_needs_a_public_url_it_can_reach():
    (problem,) = live_config_problems(TWILIO)
    assert problem.startswith("GUICHET_PUBLIC_URL is not set")
    (problem,) = live_config_problems({**TWILIO, "PUBLIC_URL": "http://127.0.0.1:8000"})
    assert "GUICHET_PUBLIC_URL is http://127.0.0.1:8000, a loopback address" in problem
    assert live_config_problems({**TWILIO, "PUBLIC_URL": "https://guichet.example.org"}) == []


def test_mtn_momo_outside_the_sandbox_needs_a_currency():
    config = {**DEFAULTS, "PAYMENT_PROVIDER": "mtn_momo", "MTN_MOMO_TARGET_ENVIRONMENT": "mtncameroon",
              "MTN_MOMO_BASE_URL": "https://proxy.momoapi.mtn.com", "MTN_MOMO_SUBSCRIPTION_KEY": "s",
              "MTN_MOMO_API_USER": "u", "MTN_MOMO_API_KEY": "k"}
    assert any("MTN_MOMO_CURRENCY" in p for p in live_config_problems(config))
    assert live_config_problems({**config, "MTN_MOMO_CURRENCY": "XAF"}) == []


def test_a_time_zone_or_support_contact_every_receipt_would_get_wrong_is_named_at_start():
    (problem,) = live_config_problems({**DEFAULTS, "TIMEZONE": "Africa/Yaounde"})
    assert problem.startswith("GUICHET_TIMEZONE 'Africa/Yaounde' is not a time zone name")
    (problem,) = live_config_problems({**DEFAULTS, "SUPPORT_CONTACT": "Service client Eneo au 8010 ou 8011"})
    assert problem.startswith("GUICHET_SUPPORT_CONTACT")
    assert live_config_problems({**DEFAULTS, "TIMEZONE": "Africa/Libreville", "SUPPORT_CONTACT": "Eneo au 8010"}) == []


def test_a_server_refuses_to_start_naming_the_variable():
    app = create_app({"TESTING": True, **TWILIO})
    with pytest.raises(click.ClickException, match="GUICHET_PUBLIC_URL"):
        check_live_config(app)
