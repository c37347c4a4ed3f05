from __future__ import annotations

import datetime

import fakeredis
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from state import keys
from tests.conftest import ADMIN_KEY
from utility.customer_csv import COLUMNS
from utility.customers import RedisCustomerBase

HEADER = ",".join(COLUMNS)
JEAN = "CM-1000001,01400000012,Jean Mbarga,+237699000001,Centre,prepaid,0,"
SYLVIE = "GA-1000005,,Sylvie Nze,+24107000003,Estuaire,postpaid,27300,2025-07-01"
CUSTOMERS = f"{HEADER}\n{JEAN}\n{SYLVIE}\n"


def upload(
    client: FlaskClient, body: str | bytes, key: str | None = ADMIN_KEY, content_type: str = "text/csv"
) -> TestResponse:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return client.post("/admin/customers", data=body, headers=headers, content_type=content_type)


def audit_trail(redis_client: fakeredis.FakeRedis) -> list[dict[str, str]]:
    return [fields for _id, fields in redis_client.xrange(keys.audit())]


def test_the_operator_uploads_the_customer_file(client: FlaskClient, fake_redis: fakeredis.FakeRedis) -> None:
    response = upload(client, CUSTOMERS)
    assert (response.status_code, response.json) == (200, {"imported": 2, "updated": 0})
    base = RedisCustomerBase(fake_redis)
    assert [account.name for account in base.accounts_for_phone("+24107000003")] == ["Sylvie Nze"]


def test_uploading_again_updates_the_customers(client: FlaskClient, fake_redis: fakeredis.FakeRedis) -> None:
    upload(client, CUSTOMERS)
    paid = SYLVIE.replace("27300,2025-07-01", "0,")
    response = upload(client, f"{HEADER}\n{paid}\nCM-7,,Paul Fotso,+237677000007,Ouest,postpaid,0,\n")
    assert response.json == {"imported": 1, "updated": 1}
    assert RedisCustomerBase(fake_redis).account("GA-1000005").balance_due == 0  # type: ignore[union-attr]


def test_a_bad_file_is_refused_line_by_line_and_nothing_is_imported(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis
) -> None:
    paul = "CM-2,,Paul Fotso,0677000007,Ouest,postpaid,0,"
    no_name = "CM-3,,,+237677000008,Ouest,postpaid,0,"
    response = upload(client, f"{HEADER}\n{JEAN}\n{paul}\n{SYLVIE}\n{no_name}\n")
    assert response.status_code == 422
    assert response.json == {
        "errors": [
            {"line": 3, "error": "phone '0677000007' must be in international form, like +237699000001"},
            {"line": 5, "error": "name is empty"},
        ],
        "more": 0,
    }
    assert RedisCustomerBase(fake_redis).account("CM-1000001") is None


def test_a_file_not_in_utf8_is_refused(client: FlaskClient) -> None:
    response = upload(client, f"{HEADER}\n{JEAN.replace('Jean', 'Jérôme')}\n".encode("latin-1"))
    assert response.status_code == 422
    assert response.json["errors"][0]["line"] == 2  # type: ignore[index]
    assert "not UTF-8" in response.json["errors"][0]["error"]  # type: ignore[index]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"])
def test_only_csv_is_accepted(client: FlaskClient, content_type: str) -> None:
    response = upload(client, CUSTOMERS, content_type=content_type)
    assert response.status_code == 415
    assert "text/csv" in response.json["error"]  # type: ignore[index]


def test_csv_with_a_charset_is_csv(client: FlaskClient) -> None:
    assert upload(client, CUSTOMERS, content_type="text/csv; charset=utf-8").status_code == 200


@pytest.mark.parametrize("key", [None, "", "wrong-key", ADMIN_KEY + "x", "Jérôme"])
def test_without_the_key_the_call_is_refused(
    client: FlaskClient, fake_redis: fakeredis.FakeRedis, key: str | None
) -> None:
    response = upload(client, CUSTOMERS, key=key)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["error"]  # type: ignore[index]
    assert RedisCustomerBase(fake_redis).account("CM-1000001") is None


def test_another_scheme_than_bearer_is_refused(client: FlaskClient) -> None:
    response = client.post(
        "/admin/customers", data=CUSTOMERS, content_type="text/csv", headers={"Authorization": f"Basic {ADMIN_KEY}"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("admin_key", [None, ""])
def test_without_an_admin_key_configured_there_is_no_admin_api(
    monkeypatch: pytest.MonkeyPatch, fake_redis: fakeredis.FakeRedis, admin_key: str | None
) -> None:
    monkeypatch.delenv("GUICHET_ADMIN_KEY", raising=False)
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis, "ADMIN_KEY": admin_key})
    response = upload(app.test_client(), CUSTOMERS, key="")
    assert response.status_code == 404


def test_every_call_is_audited_allowed_or_refused(client: FlaskClient, fake_redis: fakeredis.FakeRedis) -> None:
    upload(client, CUSTOMERS, key="guess")
    upload(client, CUSTOMERS)
    upload(client, CUSTOMERS, content_type="application/json")
    upload(client, f"{HEADER}\nCM-2,,Paul Fotso,0677000007,Ouest,postpaid,0,\n")

    trail = audit_trail(fake_redis)
    assert [(entry["outcome"], entry["detail"]) for entry in trail] == [
        ("refused", "wrong admin key"),
        ("done", "imported 2, updated 0"),
        ("rejected", "content type application/json"),
        ("rejected", "refused: 1 bad line(s), the first on line 2"),
    ]
    for entry in trail:
        assert entry["action"] == "POST /admin/customers"
        assert entry["remote_addr"] == "127.0.0.1"
        at = datetime.datetime.fromisoformat(entry["at"])
        assert at.utcoffset() == datetime.timedelta(0)
        assert abs(datetime.datetime.now(datetime.UTC) - at) < datetime.timedelta(minutes=1)


def test_the_audit_never_holds_a_key(client: FlaskClient, fake_redis: fakeredis.FakeRedis) -> None:
    upload(client, CUSTOMERS, key="my-guessed-key")
    upload(client, CUSTOMERS)
    recorded = " ".join(" ".join(entry.values()) for entry in audit_trail(fake_redis))
    assert ADMIN_KEY not in recorded
    assert "my-guessed-key" not in recorded


def test_a_file_over_the_size_limit_is_refused_and_audited(fake_redis: fakeredis.FakeRedis) -> None:
    app = create_app({"TESTING": True, "REDIS_CLIENT": fake_redis, "ADMIN_KEY": ADMIN_KEY, "MAX_UPLOAD_LENGTH": 100})
    response = upload(app.test_client(), CUSTOMERS)
    assert response.status_code == 413
    assert [(entry["outcome"], entry["detail"]) for entry in audit_trail(fake_redis)] == [
        ("rejected", "413 Request Entity Too Large")
    ]


def test_switching_the_builtin_backends_down_and_up(client, app):
    from state import switches
    from state.store import get_redis

    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    response = client.post("/admin/backends/vending", json={"state": "down"}, headers=auth)
    assert response.status_code == 200 and response.get_json()["backends"]["vending"] == "down"
    assert switches.is_down(get_redis(app), "vending")
    assert client.post("/admin/backends/payments", json={"state": "down"}, headers=auth).status_code == 200
    assert client.post("/admin/backends/vending", json={"state": "up"}, headers=auth).get_json()["state"] == "up"
    assert client.post("/admin/backends/vending", json={"state": "sideways"}, headers=auth).status_code == 400
    assert client.post("/admin/backends/nuclear", json={"state": "down"}, headers=auth).status_code == 404
    assert client.post("/admin/backends/vending", json={"state": "down"}).status_code == 401
    app.config["VENDING_BACKEND"] = "xmlvend"  # the utility's own server is not ours to switch
    assert client.post("/admin/backends/vending", json={"state": "down"}, headers=auth).status_code == 404


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer  {ADMIN_KEY}",  # two spaces
        f"Bearer {ADMIN_KEY} ",  # a trailing space
        f"bearer {ADMIN_KEY}",  # the scheme in lower case
        f"BEARER {ADMIN_KEY}",
        f"Bearer\t{ADMIN_KEY}",
        f" Bearer {ADMIN_KEY}",
        f"Bearer {ADMIN_KEY}\u00a0",
        f"Bearer {ADMIN_KEY[:4]} {ADMIN_KEY[4:]}",
    ],
)
def test_the_bearer_header_is_parsed_strictly(client: FlaskClient, header: str) -> None:
    """The probe found keys accepted with stray whitespace and any case of the scheme."""
    response = client.post("/admin/backends/vending", json={"state": "down"}, headers={"Authorization": header})
    assert response.status_code == 401


def test_the_exact_bearer_header_is_accepted(client: FlaskClient) -> None:
    response = client.post("/admin/backends/vending", json={"state": "down"},
                           headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
