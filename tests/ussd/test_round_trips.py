"""What a hop costs in Redis round trips, counted on the wire (issue 8).

A hop of a menu screen that calls no domain service is two round trips: one pipeline
takes the session's lock and reads everything, one writes everything back and releases
the lock. A gateway's retry is two as well (lock and reads, then release). No hop sends
a command whose only job is bookkeeping, such as the SCRIPT EXISTS that redis-py's
Script objects send before every pipeline that carries them.

A round trip is one batch written to the server by ``Connection.send_packed_command``
(a pipeline is written in one call; its replies are then read). Every test runs on
fakeredis and on the redis-server at REDIS_URL.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from state import keys
from state.sessions import Change, Session, SessionStore
from tests.ussd.conftest import ONE_METER, SEVERAL, Phone

MAX_TRIPS = 2
BOOKKEEPING = {"SCRIPT", "PING", "ECHO", "INFO", "CLIENT", "HELLO", "SELECT"}


@pytest.fixture
def redis_client(any_redis: redis.Redis) -> redis.Redis:
    """The app of these tests runs on fakeredis and on a real redis-server."""
    return any_redis


def _commands(packed: bytes | str | list[bytes]) -> list[list[str]]:
    """The commands of one RESP batch, each as [name, first argument] (for SCRIPT EXISTS)."""
    if isinstance(packed, str):
        packed = packed.encode()
    data = packed if isinstance(packed, bytes) else b"".join(bytes(part) for part in packed)
    commands, at = [], 0
    while at < len(data):
        assert data[at : at + 1] == b"*", data[at : at + 40]
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        args = []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            size = int(data[at + 1 : end])
            args.append(data[end + 2 : end + 2 + size])
            at = end + 2 + size + 2
        commands.append([args[0].decode().upper(), args[1].decode(errors="replace").upper() if count > 1 else ""])
    return commands


class Wire:
    """Records each batch the app's Redis connections send while ``hop()`` is open."""

    def __init__(self) -> None:
        self.trips: list[list[list[str]]] | None = None
        self.answered = True
        self.thread = 0

    def sent(self, packed: bytes | str | list[bytes]) -> None:
        # The hop's own thread: a background thread (state.tally's flusher, a breaker's copy)
        # writing meanwhile is not the hop's cost.
        if self.trips is not None and threading.get_ident() == self.thread:
            if self.trips and not self.answered:
                # A cluster's pipeline writes to each node, then reads them all: one round trip.
                self.trips[-1].extend(_commands(packed))
            else:
                self.trips.append(_commands(packed))
        self.answered = False

    @contextmanager
    def hop(self) -> Iterator[list[list[list[str]]]]:
        self.thread = threading.get_ident()
        self.trips = trips = []
        try:
            yield trips
        finally:
            self.trips = None


@pytest.fixture
def wire(app, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Wire:
    from utility.services import services

    # This process's copies of the campaigns and incidents exist before counting: each is
    # read again every few seconds (their CACHE_SECONDS), not on each hop.
    services(app).campaigns.active()
    services(app).incidents.active()
    recorder = Wire()
    pool = getattr(redis_client, "connection_pool", None)  # none on a cluster: its nodes' are plain Connections
    connection_class = pool.connection_class if pool is not None else redis.connection.Connection
    original = connection_class.send_packed_command

    def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        recorder.sent(command)
        return original(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", send_packed_command)
    original_read = connection_class.read_response

    def read_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        recorder.answered = True
        return original_read(self, *args, **kwargs)

    monkeypatch.setattr(connection_class, "read_response", read_response)
    redis_client.ping()  # the connection exists before counting: its handshake is not a hop's
    return recorder


def names(trip: list[list[str]]) -> list[str]:
    return [name for name, _ in trip]


def shown(trips: list[list[list[str]]]) -> str:
    """One line per round trip: the commands of its batch (e.g. SCRIPT EXISTS, then a pipeline)."""
    return "\n".join(" ".join(f"{name} {arg}" if name == "SCRIPT" else name for name, arg in trip) for trip in trips)


def assert_cheap(trips: list[list[list[str]]]) -> None:
    assert 0 < len(trips) <= MAX_TRIPS, shown(trips)
    sent = {name for trip in trips for name in names(trip)}
    assert not sent & BOOKKEEPING, shown(trips)


def test_menu_hops_and_a_retry_cost_two_round_trips_each(client, customers, wire):
    phone = Phone(client, ONE_METER)
    with wire.hop() as first:
        phone.dial()
    assert phone.screen.splitlines()[-1] == "4. Langue / Language"
    with wire.hop() as language:
        phone.send("4")
    assert phone.screen.splitlines()[1:3] == ["1. Francais", "2. English"]
    with wire.hop() as back:
        phone.send("0")
    main_menu = phone.body
    assert main_menu.endswith("4. Langue / Language")
    with wire.hop() as retry:
        phone.post("4*0")  # the gateway resends the same hop
    assert phone.body == main_menu

    for trips in (first, language, back):
        assert_cheap(trips)
        assert len(trips) == 2, shown(trips)
        locking, saving = trips
        assert locking[0][0] == "SET", shown(trips)  # the lock, with the reads in the same batch
        assert "HMGET" in names(locking), shown(trips)  # the session and this hop's cached reply
        assert names(saving)[-1] in {"EVAL", "EVALSHA"}, shown(trips)  # writes, then the release
        assert "HSET" in names(saving), shown(trips)
    assert_cheap(retry)
    assert len(retry) == 2 and names(retry[1]) in (["EVAL"], ["EVALSHA"]), shown(retry)  # reads, then release


def test_every_phone_pays_the_same_two_round_trips(client, customers, wire):
    """A phone with several accounts pays what a phone with one pays: these screens read no account."""
    for number in (ONE_METER, SEVERAL):
        phone = Phone(client, number)
        with wire.hop() as first:
            phone.dial()
        assert_cheap(first)
        with wire.hop() as choice:
            phone.send("4")
        assert_cheap(choice)


def test_releasing_never_frees_a_lock_another_holder_took(redis_client, wire):
    """The release rides the save's pipeline but still compares before deleting."""
    store = SessionStore(redis_client, lock_timeout=1)
    session = Session(session_id="S1", phone=SEVERAL, gateway="africastalking", service_code="*384#",
                      network="", lang="fr")
    lock_key = keys.session_lock(SEVERAL, "S1")
    with store.hop(SEVERAL, "S1", "t:") as held:
        redis_client.set(lock_key, "someone-else")  # ours expired and another hop took it
        with wire.hop() as saving:
            store.save(Change(session, "t:", "CMenu"), held)
    assert redis_client.get(lock_key) == "someone-else"
    assert len(saving) == 1, shown(saving)
    redis_client.delete(lock_key)
    with store.hop(SEVERAL, "S1", "t:1"):  # left without saving: the plain release
        redis_client.set(lock_key, "someone-else")
    assert redis_client.get(lock_key) == "someone-else"
    redis_client.delete(lock_key)
    with store.hop(SEVERAL, "S1", "t:1") as held:
        store.save(Change(session, "t:1", "CMenu"), held)
    assert redis_client.get(lock_key) is None  # and frees our own


def test_a_script_cache_flushed_under_us_costs_nothing_and_breaks_nothing(redis_client, client, customers, wire):
    """A Redis that restarted or ran SCRIPT FLUSH has no scripts: the next hop still works."""
    phone = Phone(client, ONE_METER).dial()
    redis_client.script_flush()
    with wire.hop() as trips:
        phone.send("4")
    assert phone.screen.splitlines()[1:3] == ["1. Francais", "2. English"]
    assert_cheap(trips)
    assert redis_client.get(keys.session_lock(ONE_METER, phone.session_id)) is None


def test_a_hop_after_the_dial_reads_only_its_session_and_its_reply(client, customers, wire):
    """Only the dial reads the phone's language and resume point; a hop that leaves no
    resume point deletes none unless the session found or wrote one."""
    phone = Phone(client, ONE_METER)
    with wire.hop() as first:
        phone.dial()
    with wire.hop() as choice:
        phone.send("4")
    # lock, session + reply, the profile's language and regions, resume point
    assert names(first[0]) == ["SET", "HMGET", "HMGET", "GET"], shown(first)
    assert names(choice[0]) == ["SET", "HMGET"], shown(choice)
    # session + reply, their expiry, the resume point, the journal, the release
    assert names(choice[1]) == ["HSET", "EXPIRE", "SET", "XADD", "EVAL"], shown(choice)
    assert "DEL" not in names(choice[1]), shown(choice)


def test_a_hop_whose_session_is_gone_still_reads_the_phones_language(client, customers, redis_client, wire):
    """A later hop that finds no session (it expired) opens one as the dial would: in the
    phone's remembered language, at the cost of one more round trip."""
    redis_client.hset(keys.profile(ONE_METER), "lang", "en")
    phone = Phone(client, ONE_METER, session_id="ATUid_expired")
    with wire.hop() as late:
        phone.post("3")
    assert phone.screen.startswith("My account"), phone.screen
    assert len(late) == 3, shown(late)


def test_a_resume_point_is_deleted_once_the_flow_it_marks_is_left(client, customers, redis_client):
    phone = Phone(client, ONE_METER).dial().send("1")  # buy units: a screen mid-flow
    assert redis_client.exists(keys.resume_point(ONE_METER))
    phone.send("00")  # home: nothing left to resume
    assert not redis_client.exists(keys.resume_point(ONE_METER))


def test_a_free_credit_registration_costs_three_round_trips(app, client, customers, wire):
    """dial -> 4 -> 1: the caller's accounts are read on the second hop; the third registers
    the one picked (the script) and saves, its journal entry riding with the save, without
    reading the account again."""
    from tests.ussd.test_campaigns import open_campaign
    from utility.services import services

    open_campaign(app)
    services(app).campaigns.active()  # this process's copy holds the new campaign: no read below
    Phone(client, SEVERAL).dial().send("4").send("1")  # Redis has the registration script since
    phone = Phone(client, ONE_METER).dial()
    with wire.hop() as targets:
        phone.send("4")
    assert phone.screen.startswith("Pour quel compteur ou compte?")
    with wire.hop() as verdict:
        phone.send("1")
    assert phone.ended and "recue" in phone.screen
    assert len(targets) <= 4, shown(targets)  # lock, the phone's accounts (members, then each), save
    assert len(verdict) == 3, shown(verdict)  # lock, the registration script, save with the journal
    assert "XADD" in names(verdict[-1]), shown(verdict)
    assert not any("HGETALL" in names(trip) for trip in verdict), shown(verdict)


def test_a_hop_that_calls_a_backend_reads_its_breaker_once_a_second_at_most(client, customers, wire):
    """The breaker's state is shared through Redis (utility.calls), but a hop does not pay a
    round trip for it: the process reads it at most once a second, and a success writes
    nothing while no failure is counted."""
    Phone(client, ONE_METER).dial().send("1").send("5000").send("00")  # the breakers made, their state read
    phone = Phone(client, ONE_METER).dial().send("1")
    with wire.hop() as amount:
        phone.send("5000")  # quoted by the vending backend, through the seam
    assert phone.screen.startswith("5 000 FCFA"), phone.screen
    assert not [arg for trip in amount for _, arg in trip if "BREAKER" in arg.upper()], shown(amount)
