"""USSD sessions in Redis: the record, a per-session lock, the replay cache, resume points.

A hop costs two round trips whatever happened before it: one pipeline takes the
session's lock and reads everything the hop needs; one pipeline writes everything
back, journals it and releases the lock (a gateway's retry: the reads, then the release
alone). Nothing else is sent, no SCRIPT EXISTS/LOAD either: the release is a plain EVAL
(see state.locks), and tests/ussd/test_round_trips.py counts the round trips. Every key
of a session shares the phone's hash tag (see state.keys), so they live in one Redis
Cluster slot. On a cluster the write's journal entries (the journal is a slot of its own)
go to their node in the same round: redis-py writes a pipeline's batch to every node it
spans, then reads the answers, so a hop still costs two round trips (tests/ussd/
test_round_trips.py counts them on the cluster too).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from state import journal, keys, locks

if TYPE_CHECKING:
    from state.store import TextPipeline, TextRedis


# A session is one hash: its record, and the answer given to each of its hops (gateways
# retry hops), so that a hop reads both with one command and writes both with one.
SESSION_FIELD = "session"
REPLY_PREFIX = "reply:"
# What a new session reads of the phone's profile (keys.profile): the language the caller
# chose, and the regions of the phone's accounts, which the customer base's import keeps
# there (utility.customers.PROFILE_REGIONS) so that the main menu's incident notice costs
# no round trip of its own.
PROFILE_FIELDS = ("lang", "regions")


class SessionBusy(Exception):
    """Another hop of the same session held the lock for too long."""


@dataclass(eq=False)  # identity equality: the menu machine keeps models in a list
class Session:
    session_id: str
    phone: str
    gateway: str
    service_code: str
    network: str
    lang: str
    state: str = "main"
    history: list[str] = field(default_factory=list)  # screens `0` goes back to
    data: dict[str, Any] = field(default_factory=dict)  # values of the flow under way
    consumed: int = 0  # inputs already taken from an accumulating gateway's text
    invalid: int = 0  # consecutive invalid inputs on the current screen
    hint: str = ""  # catalogue key shown above the screen once (why input was refused)
    notice: str = ""  # catalogue key shown on the next screen once (e.g. language saved)
    started_at: float = field(default_factory=time.time)
    # A resume point of this phone may exist (this session found or wrote one): only then
    # does a hop that leaves no point need to delete one.
    resume_kept: bool = False
    regions: str = ""  # the caller's regions as the dial read them (Loaded.regions)

    def to_json(self) -> str:
        # vars(), not asdict(): asdict deep-copies every value, a cost paid on each hop.
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Session:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class ResumePoint:
    """Where a phone's last session stopped mid-flow, offered on the next dial."""

    session_id: str
    state: str
    history: list[str]
    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))  # as Session.to_json: no deep copy

    @classmethod
    def from_json(cls, raw: str) -> ResumePoint:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Loaded:
    """All a hop reads from Redis, fetched in one round trip."""

    session: Session | None
    reply: str | None  # the answer already given to this very hop (a gateway retry)
    language: str | None  # the phone's remembered language
    resume: ResumePoint | None
    regions: str = ""  # the regions of the phone's accounts, comma-joined (the customer base's import writes them)


@dataclass
class Change:
    """All a hop writes back, in one pipeline under the session lock (SessionStore.save)."""

    session: Session
    hop_key: str
    reply: str
    transitions: list[tuple[str, str, str]] = field(default_factory=list)  # (trigger, from, to)
    remember_language: bool = False
    resumable: bool = False  # the session stopped mid-flow: keep a resume point
    # Entries the hop's domain actions left for this round trip (journal.entry)
    journal: list[dict[str, str]] = field(default_factory=list)




@dataclass
class Held:
    """A session locked for one hop, with everything the hop read."""

    loaded: Loaded
    lock_key: str
    token: str
    released: bool = False


class SessionStore:
    def __init__(
        self,
        client: TextRedis,
        ttl: int = 180,
        resume_ttl: int = 300,
        lock_timeout: float = 5.0,
    ) -> None:
        self.redis = client
        self.ttl = ttl
        self.resume_ttl = resume_ttl
        self.lock_timeout = lock_timeout

    @contextmanager
    def hop(self, phone: str, session_id: str, hop_key: str, opening: bool = True) -> Iterator[Held]:
        """Lock the session and read all a hop needs, in one round trip.

        The lock is taken by the first command of the same pipeline as the reads: the
        reads count only when it was granted. Pass the result to `save`, which releases
        the lock with the writes; leaving the block releases it otherwise. A hop that
        does not open its session (``opening`` False: the gateway says it follows
        another) skips the phone's language and resume point, which only a new session
        reads; should its session be gone after all, they are read then.
        """
        lock_key, token, values = self._acquire(
            phone, session_id, lambda pipe: self._reads(pipe, phone, session_id, hop_key, opening)
        )
        held = Held(self._loaded(values), lock_key, token)
        if held.loaded.session is None and not opening:
            # Gone after all (it expired): what a new session needs, one more round trip.
            pipe = self.redis.pipeline(transaction=False)
            self._phone_reads(pipe, phone)
            held.loaded = self._loaded([values[0], *pipe.execute()])
        try:
            yield held
        finally:
            if not held.released:
                locks.release(self.redis, lock_key, token)

    @contextmanager
    def lock(self, phone: str, session_id: str) -> Iterator[None]:
        """Serialise work on one session (the lock `hop` takes)."""
        lock_key, token, _ = self._acquire(phone, session_id, lambda pipe: None)
        try:
            yield
        finally:
            locks.release(self.redis, lock_key, token)

    def _acquire(
        self, phone: str, session_id: str, reads: Callable[[TextPipeline], None]
    ) -> tuple[str, str, list[Any]]:
        lock_key = keys.session_lock(phone, session_id)
        token = locks.new_token()
        # The lock outlives a crashed holder by a few seconds only: the gateway gives up
        # after ~15 s anyway, and a stale lock must not block the customer's next hop.
        expiry_ms = int((self.lock_timeout + 5) * 1000)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(lock_key, token, nx=True, px=expiry_ms)
            reads(pipe)
            granted, *values = pipe.execute()
            if granted:
                return lock_key, token, values
            try:
                delay = locks.backoff(deadline, delay, lock_key)
            except locks.LockTimeout:
                raise SessionBusy(session_id) from None

    def load(self, phone: str, session_id: str, hop_key: str) -> Loaded:
        """What a hop would read, without locking (for support tools and tests)."""
        pipe = self.redis.pipeline(transaction=False)
        self._reads(pipe, phone, session_id, hop_key)
        return self._loaded(pipe.execute())

    @staticmethod
    def _reads(pipe: TextPipeline, phone: str, session_id: str, hop_key: str, opening: bool = True) -> None:
        pipe.hmget(keys.session(phone, session_id), SESSION_FIELD, REPLY_PREFIX + hop_key)
        if opening:
            SessionStore._phone_reads(pipe, phone)

    @staticmethod
    def _phone_reads(pipe: TextPipeline, phone: str) -> None:
        """What only a new session reads: the phone's language and regions (for the main
        menu's incident notice), and its resume point."""
        pipe.hmget(keys.profile(phone), *PROFILE_FIELDS)
        pipe.get(keys.resume_point(phone))

    @staticmethod
    def _loaded(values: list[Any]) -> Loaded:
        (raw_session, reply), profile, raw_resume = (*values, None, None)[:3]
        language, regions = profile or (None, None)
        return Loaded(
            session=Session.from_json(raw_session) if raw_session else None,
            reply=reply,
            language=language,
            resume=ResumePoint.from_json(raw_resume) if raw_resume else None,
            regions=regions or "",
        )

    def save(self, change: Change, held: Held | None = None) -> None:
        """Write what a hop changed, journal it, and release ``held``: one round trip.

        No MULTI: every writer of a session holds its lock, so nothing interleaves
        with these writes that matters, and the journal (its own slot) can ride along.
        """
        session = change.session
        phone, sid = session.phone, session.session_id
        record = keys.session(phone, sid)
        pipe = self.redis.pipeline(transaction=False)
        point_to_delete = session.resume_kept and not change.resumable
        session.resume_kept = change.resumable
        # The session record stays after END so that a retried last hop still finds it
        # (and its cached reply) instead of starting a new session.
        pipe.hset(record, mapping={SESSION_FIELD: session.to_json(), REPLY_PREFIX + change.hop_key: change.reply})
        pipe.expire(record, self.ttl)
        if change.remember_language:
            pipe.hset(keys.profile(phone), "lang", session.lang)
        if change.resumable:
            point = ResumePoint(sid, session.state, session.history, session.data)
            pipe.set(keys.resume_point(phone), point.to_json(), ex=self.resume_ttl)
        elif point_to_delete:
            pipe.delete(keys.resume_point(phone))
        for trigger, source, dest in change.transitions:
            journal.append(pipe, "ussd.transition", session=sid, phone=phone, trigger=trigger, source=source, dest=dest)
        for entry in change.journal:
            journal.write(pipe, entry)
        if held is not None:
            locks.release(pipe, held.lock_key, held.token)
            held.released = True
        pipe.execute()
