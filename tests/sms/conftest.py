"""Fixtures of the SMS tests (stand-in providers, sms_app, clock): see tests/sms/fixtures.py."""
from tests.sms.fixtures import africastalking_standin, clock, sms_app, twilio_standin  # noqa: F401
