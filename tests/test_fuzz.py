"""10,000 fuzzed requests across every endpoint the app has, and not one 5xx.

Every rule of the app's URL map is hit, with and without the admin key, with its path's
variables filled with known values (a gateway, a provider) or garbage, every method it takes,
and bodies of every shape: form fields (the gateways' and providers' own names, with values
that are too long, empty, binary or hostile), JSON (objects, arrays, nested, wrong types),
raw bytes, an oversized body, a content type that lies. What comes back may be a 2xx, a 400
saying why, 401/403/404/405/409/413/415/422/429: never a server error. The generator is
seeded, so a failure is reproducible: the message names the request.
"""
from __future__ import annotations

import json
import random
import string
from collections import Counter
from typing import Any

import pytest
from flask import Flask

from app import create_app
from tests.conftest import ADMIN_KEY
from tests.ussd.conftest import ONE_METER, customers  # noqa: F401 (fixture)

REQUESTS = 10_000
SEED = 20261202

KNOWN = {
    "gateway": ["africastalking", "hubtel", "nalo", "arkesel", "twilio", "none"],
    "name": ["demo", "mtn_momo", "buy", "bill", "campaigns", "x"],
    "backend": ["vending", "billing", "payments", "sms"],
    "system": ["vending", "billing", "payments:demo", "sms:console"],
    "code": ["GRATUIT", "gratuit", "NOPE"],
    "action": ["pause", "resume", "close", "resolve", "delete"],
    "incident_id": ["INC-AAAA", "inc-zzzz"],
    "filename": ["x.js", "../../etc/passwd"],
}
FIELDS = ["sessionId", "serviceCode", "phoneNumber", "networkCode", "text", "from", "to", "id", "date", "linkId",
          "status", "phoneNumber", "hopsCount", "durationInMillis", "errorMessage", "From", "To", "Body",
          "MessageSid", "MessageStatus", "AccountSid", "SmsSid", "failureReason", "retryCount", "provider_ref",
          "order_ref", "reason", "Mobile", "SessionId", "Message", "Type", "ServiceCode", "Operator", "Sequence",
          "ClientState", "msisdn", "userid", "msg", "sessionid", "network", "newsession", "USERID", "MSISDN",
          "USERDATA", "MSGTYPE", "NETWORK", "SESSIONID"]


def garbage(rng: random.Random) -> str:
    kind = rng.randrange(12)
    if kind == 0:
        return ""
    if kind == 1:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 40)))
    if kind == 2:
        return "x" * rng.choice([200, 2_000, 20_000])
    if kind == 3:
        return "".join(chr(rng.randrange(0x80, 0x2FFF)) for _ in range(rng.randrange(1, 20)))
    if kind == 4:
        return rng.choice(["*384#", "*384*1*2#", "1*2*3*98*0*00", "\x00\x01", "%00", "'; DROP TABLE x;--", "{{7*7}}",
                           "../../", "\r\nSet-Cookie: x=y", "NaN", "-1", "1e309", "null", "true"])
    if kind == 5:
        return rng.choice([ONE_METER, "+237699000101", "237699000101", "0699000101", "+999", "+" + "9" * 30])
    if kind == 6:
        return str(rng.randrange(-10**12, 10**12))
    if kind == 7:
        return "*".join(str(rng.randrange(0, 100)) for _ in range(rng.randrange(0, 30)))
    if kind == 8:
        return rng.choice(["Success", "Failed", "Incomplete", "Sent", "Submitted", "Buffered", "Rejected", "delivered",
                           "SUCCESSFUL", "FAILED", "queued"])
    if kind == 9:
        return "ATUid_" + "".join(rng.choice(string.hexdigits) for _ in range(rng.randrange(1, 40)))
    if kind == 10:
        return rng.choice(["GRATUIT 10000000017", "SOLDE", "BAL C-1", "JETON", "INFO", "STOP", "START", "AIDE", "help"])
    return "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 25)))


def json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return garbage(rng)
    if kind == 1:
        return rng.choice([0, -1, 1.5, 10**20, True, False, None])
    if kind == 2:
        return rng.choice(["down", "up", "fr", "en", "Littoral", "2026-12-31T18:00", "kwh", "units"])
    if kind == 3:
        return {"fr": garbage(rng), "en": garbage(rng)}
    if kind == 4:
        return []
    if kind == 5:
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["state", "enabled", "message", "title", "regions", "services", "expected_end", "waive_penalties",
            "broadcast", "code", "name", "starts_at", "ends_at", "benefit", "eligibility", "quota", "provider_ref",
            "order_ref", "status", "reason", garbage(rng)]
    return {rng.choice(keys): json_value(rng, depth + 1) for _ in range(rng.randrange(0, 8))}


def request_for(rng: random.Random, rule: Any) -> dict[str, Any]:
    path = rule.rule
    for argument in rule.arguments:
        value = rng.choice(KNOWN.get(argument, ["x"])) if rng.random() < 0.7 else garbage(rng) or "x"
        value = value.replace("/", "%2F") if argument != "filename" else value
        path = path.replace(f"<{argument}>", value).replace(f"<path:{argument}>", value)
    methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
    method = rng.choice(methods) if rng.random() < 0.95 else rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
    headers: dict[str, str] = {}
    roll = rng.random()
    if roll < 0.6:  # mostly the right key: the admin views themselves are what is fuzzed
        headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    elif roll < 0.8:
        headers["Authorization"] = rng.choice([f"Bearer {ADMIN_KEY}x", "Bearer", "Basic eDp5", garbage(rng)[:200]])
    if rng.random() < 0.2:
        headers[rng.choice(["X-Twilio-Signature", "X-Guichet-Signature", "X-Forwarded-For"])] = garbage(rng)[:300]
    query = f"?{rng.choice(['token', 'dry_run', 'limit', 'before'])}={garbage(rng)[:50]}" if rng.random() < 0.3 else ""
    shape = rng.randrange(6)
    body: dict[str, Any]
    if shape == 0:
        body = {"data": {rng.choice(FIELDS): garbage(rng) for _ in range(rng.randrange(0, 10))}}
    elif shape == 1:
        body = {"data": json.dumps(json_value(rng)), "content_type": "application/json"}
    elif shape == 2:
        body = {"data": bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))),
                "content_type": rng.choice(["application/octet-stream", "application/json", "text/csv",
                                            "application/x-www-form-urlencoded", "multipart/form-data"])}
    elif shape == 3:
        body = {"data": "a=" + "b" * rng.choice([70_000, 300_000, 3_000_000]),
                "content_type": "application/x-www-form-urlencoded"}
    elif shape == 4:
        body = {"data": "number,phone\n" + "\n".join(garbage(rng)[:40] for _ in range(rng.randrange(0, 20))),
                "content_type": "text/csv"}
    else:
        body = {}
    # HTTP cannot carry a newline in a header (the test client refuses it, as servers do).
    headers = {name: value.replace("\r", " ").replace("\n", " ") for name, value in headers.items()}
    return {"method": method, "path": path + query, "headers": headers, **body}


@pytest.fixture
def app(redis_client) -> Flask:
    # Every request comes from one address: with the per-address limits on, most would stop at
    # the 429 gate (tests/test_gate.py proves it) and never reach the handlers fuzzed here.
    return create_app({"TESTING": True, "REDIS_CLIENT": redis_client, "ADMIN_KEY": ADMIN_KEY, "UTILITY_NAME": "Eneo",
                       **{f"RATE_LIMIT_{group}": "0" for group in ("USSD", "SMS", "PAYMENTS", "ADMIN")}})


def test_ten_thousand_fuzzed_requests_and_not_one_server_error(app: Flask, customers) -> None:  # noqa: F811
    rng = random.Random(SEED)
    client = app.test_client()
    rules = [rule for rule in app.url_map.iter_rules()]
    statuses: Counter[int] = Counter()
    hit: Counter[str] = Counter()
    for n in range(REQUESTS):
        rule = rules[n % len(rules)]
        asked = request_for(rng, rule)
        answer = client.open(**asked)
        statuses[answer.status_code] += 1
        hit[rule.rule] += 1
        assert answer.status_code < 500, (n, {k: (v[:200] if isinstance(v, str | bytes) else v)
                                              for k, v in asked.items()}, answer.get_data(as_text=True)[:300])
    assert set(hit) == {rule.rule for rule in rules}  # every endpoint was fuzzed
    assert sum(count for status, count in statuses.items() if status < 300) > REQUESTS // 20, statuses  # not all refused
