"""The gate in front of every route (utility.gate): a request rate per source address and
route group, counted in this process; a bound on every body, 413 past it."""
from __future__ import annotations

import io
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from state import keys
from utility import gate
from utility.customer_csv import COLUMNS

ADMIN_KEY = "gate-test-admin-key-0001"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
HOP = {"sessionId": "ATUid_gate", "serviceCode": "*384#", "phoneNumber": "+237699000001", "networkCode": "62401",
       "text": ""}
HUBTEL = {"SessionId": "hub-gate", "Mobile": "237699000102", "ServiceCode": "*384#", "Operator": "mtn",
          "Type": "Initiation", "Message": "*384#", "Sequence": 1}
AGGREGATOR, STRANGER = "196.201.214.10", "203.0.113.66"
BUSY = "Service très demandé en ce moment. Merci de rappeler dans quelques minutes."


def make_app(fake_redis: fakeredis.FakeRedis, **config: Any) -> Flask:
    return create_app({"TESTING": True, "REDIS_CLIENT": fake_redis, "ADMIN_KEY": ADMIN_KEY, **config})


def from_(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


# -- request rates ---------------------------------------------------------------------------------
def test_a_burst_of_hops_over_the_limit_gets_a_polite_end_while_the_aggregator_is_served(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    client = make_app(fake_redis, RATE_LIMIT_USSD="3/60").test_client()
    answers = [client.post("/ussd/africastalking", data={**HOP, "sessionId": f"s{n}"}, **from_(STRANGER))
               for n in range(5)]
    assert [a.get_data(as_text=True)[:4] for a in answers] == ["CON ", "CON ", "CON ", "END ", "END "]
    assert answers[3].status_code == 200  # what the gateway expects: the handset shows the text
    assert answers[3].get_data(as_text=True) == f"END {BUSY}"

    served = client.post("/ussd/africastalking", data={**HOP, "sessionId": "agg"}, **from_(AGGREGATOR))
    assert served.get_data(as_text=True).startswith("CON ")


def test_hubtel_is_turned_away_with_a_release(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, RATE_LIMIT_USSD="1/60").test_client()
    assert client.post("/ussd/hubtel", json=HUBTEL, **from_(STRANGER)).json["Type"] == "Response"
    refused = client.post("/ussd/hubtel", json={**HUBTEL, "SessionId": "hub-2"}, **from_(STRANGER))
    assert (refused.status_code, refused.json["Type"], refused.json["Message"]) == (200, "Release", BUSY)


@pytest.mark.parametrize(("path", "setting", "kwargs"), [
    ("/sms/africastalking/delivery", "RATE_LIMIT_SMS", {"data": {"id": "ATX-1", "status": "Success"}}),
    ("/payments/demo/callback", "RATE_LIMIT_PAYMENTS", {"json": {}}),
    ("/admin/services", "RATE_LIMIT_ADMIN", {"headers": AUTH}),
    ("/ussd/africastalking/events", "RATE_LIMIT_USSD", {"data": {"sessionId": "s1", "status": "Success"}}),
])
def test_other_routes_answer_429_with_retry_after_and_serve_other_addresses(
    fake_redis: fakeredis.FakeRedis, path: str, setting: str, kwargs: dict[str, Any]
) -> None:
    client = make_app(fake_redis, **{setting: "2/30"}).test_client()
    send = client.get if path == "/admin/services" else client.post
    first = [send(path, **kwargs, **from_(STRANGER)).status_code for _ in range(2)]
    assert 429 not in first
    refused = send(path, **kwargs, **from_(STRANGER))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 15  # one request refills in 15 s
    text = refused.json["error"] if path.startswith("/admin") else refused.get_data(as_text=True)
    assert text.startswith(f"too many requests from {STRANGER}: at most 2/30s here; retry in ")
    assert send(path, **kwargs, **from_(AGGREGATOR)).status_code != 429


def test_a_limited_admin_call_is_not_audited(fake_redis: fakeredis.FakeRedis) -> None:
    """A flood of them would write what the limit spares Redis, and push real entries out."""
    client = make_app(fake_redis, RATE_LIMIT_ADMIN="1/60").test_client()
    client.get("/admin/services", headers=AUTH, **from_(STRANGER))
    assert client.get("/admin/services", headers=AUTH, **from_(STRANGER)).status_code == 429
    assert len(fake_redis.xrange(keys.audit())) == 1


def test_health_probes_are_never_limited(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, **{name: "1/60" for name in gate.GROUPS.values()}).test_client()
    assert {client.get("/healthz").status_code for _ in range(5)} == {200}


def test_a_limit_of_zero_is_none(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, RATE_LIMIT_SMS=0).test_client()
    answers = {client.post("/sms/africastalking/delivery", data={"id": "x", "status": "Success"}).status_code
               for _ in range(20)}
    assert 429 not in answers


def test_behind_a_trusted_proxy_each_client_is_counted_not_the_proxy(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, RATE_LIMIT_SMS="1/60", TRUSTED_PROXIES="10.0.0.0/8").test_client()

    def report(client_address: str) -> int:
        return client.post("/sms/africastalking/delivery", data={"id": "x", "status": "Success"},
                           headers={"X-Forwarded-For": client_address}, **from_("10.0.0.2")).status_code

    assert report(AGGREGATOR) != 429
    assert report(STRANGER) != 429  # another client through the same proxy
    assert report(STRANGER) == 429


def test_a_bad_limit_stops_the_app_from_being_made(fake_redis: fakeredis.FakeRedis) -> None:
    with pytest.raises(ValueError, match="GUICHET_RATE_LIMIT_USSD is 'lots'"):
        make_app(fake_redis, RATE_LIMIT_USSD="lots")
    with pytest.raises(ValueError, match="above 0"):
        make_app(fake_redis, RATE_LIMIT_ADMIN="5/0")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = gate.Limiter({"sms": gate.Rate(2, 10)}, clock=clock)
    assert [limiter.wait("sms", "a") for _ in range(2)] == [0, 0]
    assert limiter.wait("sms", "a") == pytest.approx(5.0)  # one request every 5 s
    clock.now += 5
    assert limiter.wait("sms", "a") == 0
    assert limiter.wait("ussd", "a") == 0  # a group without a limit


def test_the_buckets_kept_are_bounded() -> None:
    clock = Clock()
    limiter = gate.Limiter({"sms": gate.Rate(1, 10)}, clock=clock, max_sources=4)
    for n in range(4):
        limiter.wait("sms", f"old-{n}")
    clock.now += 10  # the old buckets are full again: as good as new, dropped first
    limiter.wait("sms", "busy")
    assert len(limiter) == 1
    for n in range(10):
        limiter.wait("sms", f"flood-{n}")  # past the bound with every bucket in use: the oldest go
        assert len(limiter) <= 4


def test_ipv6_addresses_count_by_their_64() -> None:
    assert gate._counted_as("2001:db8:1:2:aaaa::1") == gate._counted_as("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert gate._counted_as("2001:db8:1:3::1") != gate._counted_as("2001:db8:1:2::1")
    assert gate._counted_as("196.201.214.10") == "196.201.214.10"


# -- body sizes ------------------------------------------------------------------------------------
def chunked(client: FlaskClient, path: str, body: bytes, content_type: str, **kwargs: Any) -> TestResponse:
    """A body without a Content-Length, as a server that terminates chunked input passes it on."""
    return client.post(path, input_stream=io.BytesIO(body), content_type=content_type,
                       environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
                       **kwargs)


FORM = "application/x-www-form-urlencoded"
OVERSIZED = 64 * 1024 + 1


@pytest.mark.parametrize(("path", "content_type"), [
    ("/ussd/africastalking", FORM),
    ("/ussd/hubtel", "application/json"),
    ("/sms/africastalking/inbound", FORM),
    ("/sms/twilio/status", FORM),
    ("/payments/demo/callback", "application/json"),
])
def test_an_oversized_callback_sent_chunked_gets_413_not_its_first_64_kb(
    fake_redis: fakeredis.FakeRedis, path: str, content_type: str
) -> None:
    client = make_app(fake_redis).test_client()
    response = chunked(client, path, b"text=" + b"9" * OVERSIZED, content_type)
    assert response.status_code == 413
    assert response.get_data(as_text=True) == "body over 65536 bytes (sent without a Content-Length)\n"


def test_a_chunked_body_within_the_bound_reaches_the_view_whole(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis).test_client()
    body = "&".join(f"{k}={v}" for k, v in {**HOP, "phoneNumber": "%2B237699000001"}.items()).encode()
    assert chunked(client, "/ussd/africastalking", body, FORM).get_data(as_text=True).startswith("CON ")


@pytest.mark.parametrize("path", ["/admin/backends/vending", "/admin/campaigns", "/admin/incidents",
                                  "/admin/services/buy"])
def test_an_oversized_admin_body_gets_413_and_is_audited(fake_redis: fakeredis.FakeRedis, path: str) -> None:
    client = make_app(fake_redis).test_client()
    response = client.post(path, json={"state": "down", "pad": "x" * OVERSIZED}, headers=AUTH)
    assert (response.status_code, response.json) == (413, {"error": "body over 65536 bytes"})
    (entry,) = [fields for _id, fields in fake_redis.xrange(keys.audit())]
    assert (entry["who"], entry["outcome"], entry["detail"]) == ("admin", "rejected", "413 Request Entity Too Large")


def test_the_customer_file_and_allow_lists_take_more_than_other_bodies(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis).test_client()
    rows = [f"CM-{n},,Client {n},+2376990{n:05d},Centre,postpaid,0," for n in range(1, 1500)]
    customers = "\n".join([",".join(COLUMNS), *rows]) + "\n"
    assert len(customers) > OVERSIZED
    answer = client.post("/admin/customers", data=customers, content_type="text/csv", headers=AUTH)
    assert (answer.status_code, answer.json) == (200, {"imported": 1499, "updated": 0})

    campaign = {"code": "GRATUIT", "name": {"fr": "Offert", "en": "Free"}, "starts_at": "2026-01-01T08:00",
                "ends_at": "2027-06-30T20:00", "benefit": {"kind": "kwh", "amount": 50}}
    assert client.post("/admin/campaigns", json=campaign, headers=AUTH).status_code == 201
    allowlist = "\n".join(["number", *(f"CM-{n}" for n in range(1, 9000))]) + "\n"
    assert len(allowlist) > OVERSIZED
    answer = client.post("/admin/campaigns/GRATUIT/allowlist", data=allowlist, content_type="text/csv", headers=AUTH)
    # Read whole, not refused for its size: the numbers past the customer base are each named.
    assert answer.status_code == 422
    assert len(answer.json["errors"]) + answer.json["more"] == 9000 - 1500


def test_an_upload_has_its_own_bound(fake_redis: fakeredis.FakeRedis) -> None:
    client = make_app(fake_redis, MAX_UPLOAD_LENGTH=1000).test_client()
    answer = client.post("/admin/customers", data="x" * 1001, content_type="text/csv", headers=AUTH)
    assert (answer.status_code, answer.json) == (413, {"error": "body over 1000 bytes"})
