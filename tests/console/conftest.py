"""A signed-in operator's browser, as the Flask test client: ``console`` signs in as "alice"
through the sign-in form (its CSRF cookie and field), like a person would."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ADMIN_KEY

# The customer base and the phone of the USSD tests: an operator looks at what customers did.
from tests.ussd.conftest import customers, dial  # noqa: F401 (fixtures)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    client: FlaskClient
    csrf: str

    def get(self, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
        """A form post carrying the session's CSRF token, as every console form does."""
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: FlaskClient, key: str = ADMIN_KEY) -> Console:
    form = client.get("/console/signin")
    answer = client.post("/console/signin", data={"csrf_token": csrf_of(form.text), "key": key})
    assert answer.status_code == 303, answer.text
    return Console(client, csrf_of(client.get("/console/").text))


@pytest.fixture
def console(app: Flask) -> Console:
    return sign_in(app.test_client())
