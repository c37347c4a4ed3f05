"""Fixtures of the SMS tests (stand-in providers, sms_app, clock): see tests/sms/fixtures.py."""
from collections.abc import Iterator

import pytest

from sms import keywords
from tests.sms.fixtures import africastalking_standin, clock, sms_app, twilio_standin  # noqa: F401


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each SMS test registers keywords into a copy of the registry: nothing leaks into the next."""
    monkeypatch.setattr(keywords, "KEYWORDS", dict(keywords.KEYWORDS))
    monkeypatch.setattr(keywords, "RESOLVERS", [])
    yield
