"""The console's figures: counted in process memory, written to Redis every few seconds, read back."""
from __future__ import annotations

import calendar

import fakeredis
import pytest
import redis

from state import keys, tally

NOON = calendar.timegm((2026, 12, 2, 12, 0, 30))


@pytest.fixture
def counted(fake_redis: fakeredis.FakeRedis) -> tally.Tally:
    return tally.Tally(lambda: fake_redis)


def test_nothing_reaches_redis_until_the_flush(counted, fake_redis):
    counted.count(keys.tally("hops:2026-12-02"), "12:00", 60)
    assert fake_redis.hgetall(keys.tally("hops:2026-12-02")) == {}
    counted.flush()
    assert fake_redis.hgetall(keys.tally("hops:2026-12-02")) == {"12:00": "1"}
    assert 0 < fake_redis.ttl(keys.tally("hops:2026-12-02")) <= 60
    counted.flush()  # nothing new: nothing added
    assert fake_redis.hgetall(keys.tally("hops:2026-12-02")) == {"12:00": "1"}


def test_what_a_failed_flush_could_not_write_is_written_by_the_next(fake_redis):
    down = [True]

    def client():
        if down[0]:
            raise redis.ConnectionError("Redis away")
        return fake_redis

    counted = tally.Tally(client)
    counted.count(keys.tally("sms:2026-12-02"), "sent", 60, amount=3)
    counted.member(keys.tally("sessions:2026-12-02T12:00"), "ATUid_1", 60)
    counted.flush()  # logged, not raised: the flusher thread goes on
    down[0] = False
    counted.count(keys.tally("sms:2026-12-02"), "sent", 60)
    counted.flush()
    assert fake_redis.hgetall(keys.tally("sms:2026-12-02")) == {"sent": "4"}
    assert fake_redis.pfcount(keys.tally("sessions:2026-12-02T12:00")) == 1


def test_a_redis_error_during_the_write_keeps_the_counts(counted, fake_redis, monkeypatch):
    counted.count(keys.tally("orders:2026-12-02"), "paid", 60, amount=2)
    monkeypatch.setattr(fakeredis.FakeRedis, "pipeline", lambda *a, **k: (_ for _ in ()).throw(redis.ConnectionError()))
    counted.flush()
    monkeypatch.undo()
    counted.flush()
    assert fake_redis.hgetall(keys.tally("orders:2026-12-02")) == {"paid": "2"}


def test_hops_per_minute_are_read_back_across_midnight(fake_redis):
    counted = tally.Tally(lambda: fake_redis)
    midnight = calendar.timegm((2026, 12, 3, 0, 0, 10))
    for moment in (midnight - 60, midnight - 60, midnight):
        counted.count(keys.tally(f"hops:{tally.day_of(moment)}"), tally.time.strftime("%H:%M", tally.time.gmtime(moment)), 60)
    counted.flush()
    minutes = tally.hops_per_minute(fake_redis, 3, now=midnight)
    assert [count for _, count in minutes] == [0, 2, 1]
    assert minutes[-1][0] == midnight - 10


def test_sessions_in_flight_are_the_distinct_dialogues_of_the_last_minutes(fake_redis):
    counted = tally.Tally(lambda: fake_redis)
    for moment, session in ((NOON - 400, "old"), (NOON - 100, "a"), (NOON - 90, "a"), (NOON, "b")):
        counted.member(keys.tally(f"sessions:{tally.minute_of(moment)}"), session, 600)
    counted.flush()
    assert tally.sessions_in_flight(fake_redis, 180, now=NOON) == 2
    assert [count for _, count in tally.sessions_per_minute(fake_redis, 8, now=NOON)] == [1, 0, 0, 0, 0, 1, 1, 1]  # a dialogue counts in every minute it had a hop


def test_a_hop_counts_in_its_own_minute_and_day_across_midnight(app, fake_redis):
    before, after = calendar.timegm((2026, 12, 2, 23, 59, 59)), calendar.timegm((2026, 12, 3, 0, 0, 1))
    for moment, session in ((before, "a"), (after, "a"), (after, "b")):
        tally.hop(app, session, now=moment)
    tally.of(app).flush()
    assert fake_redis.hgetall(keys.tally("hops:2026-12-02")) == {"23:59": "1"}
    assert fake_redis.hgetall(keys.tally("hops:2026-12-03")) == {"00:00": "2"}
    assert fake_redis.pfcount(keys.tally("sessions:2026-12-03T00:00")) == 2
