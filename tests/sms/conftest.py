"""Fixtures of the SMS tests (stand-in providers, sms_app, clock): see tests/sms/fixtures.py."""
from collections.abc import Iterator

import pytest

from sms import keywords, outbox
from tests.sms.fixtures import Clock, africastalking_standin, clock, sms_app, twilio_standin  # noqa: F401


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each SMS test registers keywords into a copy of the registry: nothing leaks into the next."""
    monkeypatch.setattr(keywords, "KEYWORDS", dict(keywords.KEYWORDS))
    monkeypatch.setattr(keywords, "RESOLVERS", [])
    yield


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The outbox's clock, moved by its own naps (a bulk worker pacing itself)."""
    fixed = Clock()
    monkeypatch.setattr(outbox, "clock", fixed)
    monkeypatch.setattr(outbox, "pause", fixed.advance)
    return fixed
