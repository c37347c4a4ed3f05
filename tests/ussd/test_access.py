"""Who may call the USSD webhooks: a callback token, source networks, trusted proxies.

Africa's Talking signs nothing, so without these anyone who can reach the endpoint can
pose as any phone. Configured, a request without them gets 403 and changes nothing."""
from __future__ import annotations

import pytest

from app import create_app
from state import journal
from tests.ussd.conftest import ONE_METER

HOP = {"sessionId": "ATUid_access", "serviceCode": "*384#", "phoneNumber": ONE_METER, "networkCode": "62401",
       "text": ""}


def make_client(redis_client, **config):
    app = create_app({"TESTING": True, "REDIS_CLIENT": redis_client, **config})
    return app.test_client()


def keys_now(redis_client) -> set[str]:
    return set(redis_client.keys("*"))


def test_a_hop_without_the_callback_token_is_refused_and_changes_nothing(fake_redis):
    client = make_client(fake_redis, CALLBACK_TOKEN="s3cret-from-the-dashboard")
    before = keys_now(fake_redis)
    for query in ("", "?token=wrong", "?token=s3cret-from-the-dashboar", "?token=%C3%A9"):
        response = client.post("/ussd/africastalking" + query, data=HOP)
        assert response.status_code == 403
        assert response.get_data(as_text=True) == "forbidden: missing or wrong callback token\n"
    assert keys_now(fake_redis) == before


def test_the_callback_token_in_the_url_or_a_header_lets_the_hop_through(fake_redis):
    client = make_client(fake_redis, CALLBACK_TOKEN="s3cret-from-the-dashboard")
    assert client.post("/ussd/africastalking?token=s3cret-from-the-dashboard", data=HOP).status_code == 200
    response = client.post("/ussd/africastalking", data={**HOP, "text": "4"},
                           headers={"X-Guichet-Token": "s3cret-from-the-dashboard"})
    assert response.status_code == 200 and response.get_data(as_text=True).startswith("CON ")


def test_tokens_per_gateway(fake_redis):
    client = make_client(fake_redis, CALLBACK_TOKEN={"africastalking": "at-secret", "hubtel": "hubtel-secret"})
    assert client.post("/ussd/africastalking?token=hubtel-secret", data=HOP).status_code == 403
    assert client.post("/ussd/africastalking?token=at-secret", data=HOP).status_code == 200
    hubtel = {"Type": "Initiation", "Mobile": "233244000001", "SessionId": "h1", "ServiceCode": "*384#",
              "Message": "*384#", "Operator": "MTN", "Sequence": 1}
    assert client.post("/ussd/hubtel?token=at-secret", json=hubtel).status_code == 403
    assert client.post("/ussd/hubtel?token=hubtel-secret", json=hubtel).status_code == 200


def test_only_the_gateways_networks_may_call(fake_redis):
    client = make_client(fake_redis, GATEWAY_IPS="196.201.214.0/24, 2001:db8::/32")
    assert client.post("/ussd/africastalking", data=HOP).status_code == 403  # from 127.0.0.1
    assert client.post("/ussd/africastalking", data=HOP,
                       environ_base={"REMOTE_ADDR": "196.201.214.77"}).status_code == 200
    assert client.post("/ussd/africastalking", data={**HOP, "sessionId": "v6"},
                       environ_base={"REMOTE_ADDR": "2001:db8::1"}).status_code == 200


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(fake_redis):
    client = make_client(fake_redis, GATEWAY_IPS="196.201.214.0/24", TRUSTED_PROXIES="10.0.0.0/8")
    forwarded = {"X-Forwarded-For": "196.201.214.77"}
    # Written by the caller itself, not by our proxy: ignored.
    assert client.post("/ussd/africastalking", data=HOP, headers=forwarded,
                       environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403
    # Through our proxy: the right-most address that is not a proxy of ours.
    assert client.post("/ussd/africastalking", data=HOP, headers=forwarded,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    spoofed = {"X-Forwarded-For": "196.201.214.77, 203.0.113.9"}  # the client prepended a gateway address
    assert client.post("/ussd/africastalking", data=HOP, headers=spoofed,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403
    garbage = {"X-Forwarded-For": "not-an-address"}
    assert client.post("/ussd/africastalking", data=HOP, headers=garbage,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


def test_both_rules_together(fake_redis):
    client = make_client(fake_redis, GATEWAY_IPS="196.201.214.0/24", CALLBACK_TOKEN="k")
    inside = {"REMOTE_ADDR": "196.201.214.77"}
    assert client.post("/ussd/africastalking", data=HOP, environ_base=inside).status_code == 403
    assert client.post("/ussd/africastalking?token=k", data=HOP).status_code == 403
    assert client.post("/ussd/africastalking?token=k", data=HOP, environ_base=inside).status_code == 200


def test_bad_access_settings_fail_at_start_up(fake_redis):
    with pytest.raises(ValueError):
        make_client(fake_redis, GATEWAY_IPS="196.201.214.0/33")


def test_an_open_server_says_so():
    from ussd.views import open_warning

    app = create_app({"TESTING": True})
    assert "OPEN to anyone" in open_warning(app)
    assert "africastalking" in open_warning(app) and "hubtel" in open_warning(app)
    app = create_app({"TESTING": True, "CALLBACK_TOKEN": {"africastalking": "k"}})
    assert "africastalking" not in open_warning(app) and "hubtel" in open_warning(app)
    assert open_warning(create_app({"TESTING": True, "CALLBACK_TOKEN": "k"})) is None


# -- the session-end notification ---------------------------------------------------------------
END = {"sessionId": "ATUid_1", "phoneNumber": ONE_METER, "status": "Incomplete", "hopsCount": "3",
       "durationInMillis": "9000", "serviceCode": "*384#", "networkCode": "62401"}


def test_the_session_end_notification_is_authenticated_like_the_hops(fake_redis):
    client = make_client(fake_redis, CALLBACK_TOKEN="k")
    assert client.post("/ussd/africastalking/events", data=END).status_code == 403
    assert journal.read(fake_redis) == []
    assert client.post("/ussd/africastalking/events?token=k", data=END).status_code == 200
    assert [e["kind"] for e in journal.read(fake_redis)] == ["ussd.session_end"]


def test_a_huge_session_end_notification_is_refused_and_not_journaled(fake_redis):
    """The probe: three 20 MB bodies took Redis from 12 MB to 138 MB (journaled as is)."""
    client = make_client(fake_redis)
    response = client.post("/ussd/africastalking/events", data={**END, "errorMessage": "x" * 20_000_000})
    assert response.status_code == 400 and response.get_data(as_text=True) == "body over 4096 bytes\n"
    assert journal.read(fake_redis) == []


def test_long_fields_of_a_session_end_are_cut_before_the_journal(fake_redis):
    client = make_client(fake_redis)
    assert client.post("/ussd/africastalking/events", data={**END, "errorMessage": "e" * 3000}).status_code == 200
    (entry,) = journal.read(fake_redis)
    assert entry["error"] == "e" * 200 and entry["status"] == "Incomplete"
