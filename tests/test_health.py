import fakeredis
from app import create_app


def test_healthz_answers_while_serving(client):
    assert client.get("/healthz").status_code == 200


def test_readyz_follows_redis():
    server = fakeredis.FakeServer()
    app = create_app({"TESTING": True, "REDIS_CLIENT": fakeredis.FakeRedis(server=server, decode_responses=True)})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    server.connected = False
    response = client.get("/readyz")
    assert response.status_code == 503
    assert b"redis" in response.data
