"""The session store against fakeredis and a real redis-server: TTL, lock, replay, concurrency."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from state import journal, keys
from state.sessions import Change, Session, SessionBusy, SessionStore
from tests.ussd.conftest import SEVERAL, Phone


@pytest.fixture
def redis_client(any_redis):
    """Every test here runs the app on fakeredis and on a real redis-server."""
    return any_redis


def session(**kw) -> Session:
    return Session(**{"session_id": "S1", "phone": SEVERAL, "gateway": "africastalking", "service_code": "*384#",
                      "network": "", "lang": "fr", **kw})


def test_session_expires_after_its_ttl_and_each_hop_refreshes_it(redis_client):
    store = SessionStore(redis_client, ttl=180)
    store.save(Change(session(), "t:", "CMenu"))
    assert 170 < redis_client.ttl(keys.session(SEVERAL, "S1")) <= 180
    redis_client.expire(keys.session(SEVERAL, "S1"), 5)
    store.save(Change(session(state="language"), "t:6", "CLang"))
    assert redis_client.ttl(keys.session(SEVERAL, "S1")) > 170


def test_load_reads_session_reply_language_and_resume_point_together(redis_client):
    store = SessionStore(redis_client)
    store.save(Change(session(state="account", lang="en"), "t:5", "CDetail", remember_language=True, resumable=True))
    loaded = store.load(SEVERAL, "S1", "t:5")
    assert loaded.session.state == "account"
    assert loaded.reply == "CDetail"
    assert loaded.language == "en"
    assert loaded.resume.state == "account"
    assert redis_client.ttl(keys.profile(SEVERAL)) == -1  # the language never expires
    assert store.load(SEVERAL, "S1", "t:other").reply is None


def test_session_keys_share_the_phone_hash_tag():
    tags = {key.split("{")[1].split("}")[0] for key in (
        keys.session(SEVERAL, "S1"), keys.session_lock(SEVERAL, "S1"),
        keys.resume_point(SEVERAL), keys.profile(SEVERAL), keys.phone_accounts(SEVERAL))}
    assert tags == {SEVERAL}


def test_lock_serialises_holders_and_is_released(redis_client):
    store = SessionStore(redis_client, lock_timeout=2)
    inside, overlaps = [], []

    def hold():
        with store.lock(SEVERAL, "S1"):
            if inside:
                overlaps.append(1)
            inside.append(1)
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps
    assert redis_client.get(keys.session_lock(SEVERAL, "S1")) is None


def test_a_held_lock_makes_the_other_hop_give_up_in_time(redis_client):
    store = SessionStore(redis_client, lock_timeout=0.2)
    with store.lock(SEVERAL, "S1"):
        started = time.monotonic()
        with pytest.raises(SessionBusy):
            with store.lock(SEVERAL, "S1"):
                pass
        assert time.monotonic() - started < 1


def test_a_lock_taken_over_after_expiry_is_not_freed_by_the_old_holder(redis_client):
    store = SessionStore(redis_client)
    key = keys.session_lock(SEVERAL, "S1")
    with store.lock(SEVERAL, "S1"):
        redis_client.set(key, "someone-else")  # our lock expired and another hop took it
    assert redis_client.get(key) == "someone-else"


def test_busy_session_gets_a_polite_end_screen(app, client, customers, redis_client):
    app.config["LOCK_TIMEOUT"] = 0.1
    redis_client.set(keys.session_lock(SEVERAL, "S-busy"), "held", px=5000)
    response = client.post("/ussd/africastalking", data={"sessionId": "S-busy", "serviceCode": "*384#",
                                                         "phoneNumber": SEVERAL, "networkCode": "", "text": ""})
    assert response.get_data(as_text=True) == "END Service occupé. Merci de réessayer dans un instant."


def test_the_same_hop_ten_times_at_once_acts_once(app, customers, redis_client):
    Phone(app.test_client(), SEVERAL, session_id="S-dup").dial()

    def same_hop(_):
        return Phone(app.test_client(), SEVERAL, session_id="S-dup").post("3").body

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(same_hop, range(10)))
    assert len(set(answers)) == 1 and answers[0].startswith("CON Mon compte:")
    moves = [e for e in journal.read(redis_client) if e["kind"] == "ussd.transition" and e["session"] == "S-dup"]
    assert len(moves) == 1


def test_two_different_hops_at_once_are_serialised(app, customers, redis_client):
    Phone(app.test_client(), SEVERAL, session_id="S-race").dial()
    texts = ["3*1", "3*1*3"]

    def hop(text):
        return Phone(app.test_client(), SEVERAL, session_id="S-race").post(text).body

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hop, texts))
    # Whatever the order, the session ends on the account (inputs are never applied twice
    # and never lost), with a history that leads back through the list.
    final = Phone(app.test_client(), SEVERAL, session_id="S-race").post("3*1*3").body
    assert final.startswith("CON Compte C-2000000003")
    assert Phone(app.test_client(), SEVERAL, session_id="S-race").post("3*1*3*0").body.startswith("CON Vos comptes:")
