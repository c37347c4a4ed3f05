"""Incidents: create, update, resolve, read; who is told; late payments. Built once per app
(utility.services).

The USSD main menu asks `active()` on every dial: it answers from a copy of the incidents
kept in this process for CACHE_SECONDS (a change made here is seen at once, elsewhere
within that time), so showing a notice costs no round trip.

Each change is one Lua script over the incident's keys ({incident:ID}): the record and, when
the incident broadcasts, the new event's broadcast record, together or not at all. The
incident's id is indexed before (keys.incidents), its broadcast too (keys.incident_broadcasts):
a crash in between leaves an index entry with nothing behind it, which readers skip, never
a record nobody can find.

A broadcast (utility.incidents.jobs runs it) goes through these states, each step a script:

    selecting   the phones of the incident's regions and their subscribers are chosen a
                chunk at a time (SSCAN of the region sets), each phone once (a set of the
                event's recipients), into the event's line (pending);
    sending     the line is handed to jobs on the bulk queue at the SMS bulk share of the
                rate (`claim`); each job texts its phones through the outbox (one message
                per incident, event and phone, ever) and `finish`es them; the messages are
                then watched until the outbox sent or gave them up (`settle`);
    done        every phone of the line handled and every message settled;
    superseded  a newer event of the incident broadcasts: this one texts no one more (those
                not reached get the newer, truer SMS) and ends once what it queued settles.

A phone handed to a job is due again HOLD seconds later unless finished: a job killed half
way is done again by another, which the outbox's reference keeps from texting anyone twice.
"""
from __future__ import annotations

import datetime
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from sms import optout, outbox
from sms.catalogue import DEFAULT_LANGUAGE
from sms.gsm import clip, sms_segments, to_gsm7
from sms.receipts import UTILITY_WIDTH
from state import journal, keys
from state.copies import KeyedCopy
from state.store import TextRedis
from utility.customers import PROFILE_REGIONS, RedisCustomerBase, mask_tail, region_key
from utility.incidents import texts
from utility.incidents.model import Incident, merge, parse_definition, stored
from utility.phones import is_e164

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0  # how stale the in-process copy behind active() may be
MISS_REFRESH_SECONDS = 1.0  # an unknown id re-reads the incidents at most this often
ID_PREFIX = "INC-"
ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/1/I/O: read out on the phone without a doubt
ID_LENGTH = 4  # a million ids: incidents are a few a week
CREATED, RESOLVED = "created", "resolved"
SCAN_CHUNK = 1_000  # phones per SSCAN while choosing the recipients
CHECK_CHUNK = 1_000  # phones whose profile one pipeline reads (a dry run)
EXPORT_CHUNK = 1_000  # late payments read per round trip
RECIPIENTS_KEPT = 30 * 86400  # seconds the recipients of a finished broadcast are kept (the outbox's retention)
ORPHAN_AFTER = 60.0  # seconds an indexed broadcast may wait for its record before the index forgets it
RECHECK = 5.0  # seconds before a message not yet sent is looked at again
RATE_MINUTES = 5  # the sending rate behind the expected end is measured over this long
OPTED_OUT, MOVED, SUPERSEDED = "-optout", "-moved", "-superseded"  # a phone's outcome that is no message


class UnknownIncident(LookupError):
    """No incident has this id."""


class IncidentResolved(Exception):
    """The incident is resolved already: it cannot be updated or resolved again."""

    def __init__(self, incident_id: str, wanted: str) -> None:
        super().__init__(f"incident {incident_id} is resolved: it cannot be {wanted}")


class UnknownRegion(ValueError):
    """A region the customer base does not know (a subscription to it would hear nothing)."""


@dataclass(frozen=True)
class IncidentSettings:
    utility: str = "Guichet"  # the name the SMS start with (GUICHET_UTILITY_NAME, GSM-7, UTILITY_WIDTH at most)
    default_lang: str = DEFAULT_LANGUAGE  # of a phone that never chose one (GUICHET_DEFAULT_LANGUAGE)
    bulk_rate: float = 5.0  # bulk SMS a second (the outbox's rate x bulk share): the expected end before any is sent

    @classmethod
    def from_config(cls, config: Mapping[str, Any], sms: outbox.Settings | None = None) -> IncidentSettings:
        """``sms``: the app's outbox settings when parsed already (outbox.settings_of)."""
        sms = sms or outbox.Settings.from_config(config)
        return cls(utility=clip(to_gsm7(str(config.get("UTILITY_NAME") or "")), UTILITY_WIDTH),
                   default_lang=str(config.get("DEFAULT_LANGUAGE") or DEFAULT_LANGUAGE),
                   bulk_rate=sms.rate_per_second * sms.bulk_share)


@dataclass(frozen=True)
class Preview:
    """What an action would do, writing nothing (a dry run): the incident as it would stand,
    the event it makes, and, when it broadcasts, who would be texted and what it costs."""

    action: str  # create | update | resolve
    incident: Incident
    event: str
    broadcast: bool  # whether the action texts anyone (the incident's "broadcast")
    audience: Audience

    def summary(self) -> str:
        """The dry run in a line, as the audit keeps it."""
        return (f"dry run {self.action} {self.incident.id}: {self.audience.recipients} recipient(s), "
                f"{self.audience.total_segments} segment(s){'' if self.broadcast else ', no broadcast'}")

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": True, "action": self.action, "event": self.event, "broadcast": self.broadcast,
                "incident": self.incident.to_json(), **self.audience.to_json()}


@dataclass(frozen=True)
class Audience:
    """Who a broadcast reaches: recipients by language, and the phones left out."""

    recipients: int  # texted
    opted_out: int  # in the regions, but asked for no notices
    by_language: dict[str, int]  # recipients per language
    bodies: dict[str, str]  # the SMS per language

    def segments(self, lang: str) -> int:
        return sms_segments(self.bodies[lang])

    @property
    def total_segments(self) -> int:
        return sum(count * self.segments(lang) for lang, count in self.by_language.items())

    def to_json(self) -> dict[str, Any]:
        return {"recipients": self.recipients, "opted_out": self.opted_out,
                "languages": {lang: {"recipients": self.by_language.get(lang, 0), "segments": self.segments(lang),
                                     "sms": body} for lang, body in self.bodies.items()},
                "total_segments": self.total_segments}


@dataclass(frozen=True)
class LatePayment:
    """A bill paid after its due date (utility.orders.note_late_payment), as exported."""

    account: str
    phone: str
    amount: int
    due_date: datetime.date
    paid_at: datetime.datetime  # the utility's time
    reference: str
    region: str


class _Commands(Protocol):
    """Commands this module sends that state.store.TextCommands does not declare."""

    def sscan(self, name: str, cursor: int = 0, match: str | None = None,
              count: int | None = None) -> tuple[int, list[str]]: ...
    def scard(self, name: str) -> int: ...
    def smembers(self, name: str) -> set[str]: ...
    def hmget(self, name: str, keys: str | Iterable[str], *args: str) -> list[str | None]: ...
    def zrangebyscore(self, name: str, min: float | str, max: float | str, start: int | None = None,
                      num: int | None = None, withscores: bool = False) -> list[Any]: ...


# -- the scripts --------------------------------------------------------------------------------
# Create, update or resolve an incident; with a broadcast, write its event's record with it.
# KEYS: 1 the incident, 2 the event's broadcast. ARGV: 1 create | update | resolve, 2 the
# updates the change was made over (update: another update in between is a conflict, the
# caller merges again), 3 how many incident fields follow, then the incident's field/value
# pairs, then the broadcast's (none: no broadcast).
# {1}: done; {0}: the id is taken (create); {-1}: no such incident; {-2}: resolved; {-3}: changed meanwhile.
_CHANGE = """
local action = ARGV[1]
if action == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
else
  local status = redis.call('HGET', KEYS[1], 'status')
  if not status then return {-1} end
  if status ~= 'active' then return {-2} end
  if action == 'update' and (redis.call('HGET', KEYS[1], 'updates') or '0') ~= ARGV[2] then return {-3} end
end
local n = tonumber(ARGV[3])
local fields = {}
for i = 4, 3 + 2 * n do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if action == 'update' then redis.call('HINCRBY', KEYS[1], 'updates', 1) end
if #ARGV > 3 + 2 * n then
  local broadcast = {}
  for i = 4 + 2 * n, #ARGV do broadcast[#broadcast + 1] = ARGV[i] end
  redis.call('HSET', KEYS[2], unpack(broadcast))
end
return {1}
"""

# Add a chunk of chosen phones to the line, each once, and move the selection's place on.
# KEYS: 1 broadcast, 2 recipients, 3 pending. ARGV: 1 the source and 2 the cursor the chunk
# was read from (another round moved on meanwhile: nothing done), 3 the next source, 4 the
# next cursor, 5 "1" when that was the last chunk, 6... the phones. Returns how many were new, or -1.
_SELECT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'selecting' then return -1 end
if redis.call('HGET', KEYS[1], 'source') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[2] then
  return -1
end
local added = 0
for i = 6, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[3], ARGV[i])
    added = added + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'recipients', added)
redis.call('HSET', KEYS[1], 'source', ARGV[3], 'cursor', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'state', 'sending') end
return added
"""

# Hand out phones to text. KEYS: 1 pending, 2 claimed, 3 broadcast. ARGV: 1 now, 2 when a claim
# made now is due again if no job finishes it, 3 how many at most, 4 how many may be claimed at
# once. Claims that fell due (a job died) come first, whatever the state; new ones only while
# the broadcast is selecting or sending. Returns the phones.
_CLAIM = """
local out = {}
local most = tonumber(ARGV[3])
if most <= 0 then return out end
for _, phone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, most)) do
  redis.call('ZADD', KEYS[2], ARGV[2], phone)
  out[#out + 1] = phone
end
local state = redis.call('HGET', KEYS[3], 'state')
if state ~= 'selecting' and state ~= 'sending' then return out end
local room = math.min(most - #out, tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[2]))
while room > 0 do
  local phone = redis.call('LPOP', KEYS[1])
  if not phone then break end
  redis.call('ZADD', KEYS[2], ARGV[2], phone)
  out[#out + 1] = phone
  room = room - 1
end
return out
"""

# A job is done with its phones. KEYS: 1 claimed, 2 unsettled, 3 broadcast. ARGV: 1 when to look
# at the new messages, 2... (phone, outcome) pairs: a message id, or -optout | -moved |
# -superseded. A phone no longer claimed (another run finished it) counts nothing again.
# Returns how many were counted.
_FINISH = """
local counted = 0
local counters = {['-optout'] = 'opted_out', ['-moved'] = 'skipped', ['-superseded'] = 'superseded'}
for i = 2, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local outcome = ARGV[i + 1]
    if counters[outcome] then
      redis.call('HINCRBY', KEYS[3], counters[outcome], 1)
    else
      redis.call('ZADD', KEYS[2], ARGV[1], outcome)
      redis.call('HINCRBY', KEYS[3], 'queued', 1)
    end
    counted = counted + 1
  end
end
return counted
"""

# What the outbox did with the messages looked at. KEYS: 1 unsettled, 2 broadcast. ARGV: 1 when
# to look again at one not finished, 2 this minute's field "m:<minute>", 3... (message id,
# sent | failed | unconfirmed | "" for not yet) pairs. Each is counted once.
_SETTLE = """
for i = 3, #ARGV, 2 do
  local outcome = ARGV[i + 1]
  if outcome == '' then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
  elseif redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[2], outcome, 1)
    if outcome == 'sent' then redis.call('HINCRBY', KEYS[2], ARGV[2], 1) end
  end
end
return 0
"""

# End a broadcast once nothing is left: every phone of its line handled, every message settled.
# KEYS: 1 broadcast, 2 pending, 3 claimed, 4 unsettled, 5 recipients. ARGV: 1 now, 2 seconds the
# recipients are kept. 1: ended now.
_COMPLETE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'selecting' or redis.call('HEXISTS', KEYS[1], 'finished_at') == 1 then return 0 end
if state == 'sending' and redis.call('LLEN', KEYS[2]) > 0 then return 0 end
if redis.call('ZCARD', KEYS[3]) > 0 or redis.call('ZCARD', KEYS[4]) > 0 then return 0 end
if state == 'sending' then redis.call('HSET', KEYS[1], 'state', 'done') end
redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
redis.call('EXPIRE', KEYS[5], ARGV[2])
return 1
"""

# A newer event broadcasts: this one texts no one more. KEYS: 1 broadcast, 2 pending. ARGV: 1 the
# newer event. 1: stopped now.
_SUPERSEDE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'selecting' and state ~= 'sending' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'superseded', 'superseded_by', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'superseded', redis.call('LLEN', KEYS[2]))
redis.call('DEL', KEYS[2])
return 1
"""

# A broadcast's figures in one round trip. KEYS: 1 broadcast, 2 pending, 3 claimed, 4 unsettled.
_STATS = """
return {redis.call('HGETALL', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4])}
"""

COUNTERS = ("recipients", "queued", "opted_out", "skipped", "superseded", "sent", "failed", "unconfirmed")


def new_id() -> str:
    return ID_PREFIX + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def minute_of(moment: float) -> int:
    return int(moment // 60)


def _moment(at: datetime.datetime) -> str:
    return at.isoformat(timespec="seconds")


class Incidents:
    def __init__(
        self,
        client: TextRedis,
        customers: RedisCustomerBase,
        tz: datetime.tzinfo = datetime.UTC,
        settings: IncidentSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = client
        self.customers = customers
        self.tz = tz
        self.settings = settings or IncidentSettings()
        self.clock = clock  # of the in-process copy's age only
        self._commands = cast(_Commands, client)
        self._change = client.register_script(_CHANGE)
        self._select = client.register_script(_SELECT)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._settle = client.register_script(_SETTLE)
        self._complete = client.register_script(_COMPLETE)
        self._supersede = client.register_script(_SUPERSEDE)
        self._stats = client.register_script(_STATS)
        self._copy: KeyedCopy[Incident] = KeyedCopy("incidents", lambda: {item.id: item for item in self.all()}, clock,
                                                CACHE_SECONDS, MISS_REFRESH_SECONDS)

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(self.tz)

    # -- regions ---------------------------------------------------------------------------------
    def known_regions(self) -> dict[str, str]:
        """Region key -> name of every region the customer base has had an account in."""
        return self.redis.hgetall(keys.regions())

    def regions(self) -> list[str]:
        """The regions the customer base knows, by name."""
        return sorted(self.known_regions().values())

    # -- defining ------------------------------------------------------------------------------
    def _parse(self, data: object, incident_id: str = "") -> Incident:
        return parse_definition(data, self.known_regions(), self.tz, self.now(), texts.LANGUAGES, incident_id)

    def create(self, data: object) -> Incident:
        """Create the incident ``data`` defines (model.parse_definition: DefinitionError names
        each bad field), active at once; with ``broadcast`` its customers are texted."""
        incident = self._parse(data)
        at = datetime.datetime.now(datetime.UTC)
        for _ in range(5):  # a million ids: a clash is rare, and never reuses one
            incident_id = new_id()
            made = replace(incident, id=incident_id, created_at=at, updated_at=at)
            fields = {"definition": self._definition(made), "status": "active", "created_at": at.isoformat(),
                      "updated_at": at.isoformat(), "updates": "0"}
            # Indexed first: an incident nobody can list could still text its regions.
            self.redis.sadd(keys.incidents(), incident_id)
            if self._write("create", made, CREATED, fields):
                break
        else:
            raise RuntimeError("no free incident id after 5 draws")
        journal.append(self.redis, "incident.created", incident=incident_id, regions=",".join(made.regions),
                       services=",".join(made.services), broadcast=made.broadcast,
                       waive_penalties=made.waive_penalties)
        self._forget()
        return made

    def update(self, incident_id: str, changes: object) -> Incident:
        """Change some fields of an active incident (model.merge: the rest stays); with
        ``broadcast`` its customers are texted the update (a new event: "update-<n>")."""
        incident_id = incident_id.strip().upper()
        for _ in range(5):
            current = self._current(incident_id, "updated")
            incident = self._parse(merge(current, changes), incident_id)
            at = datetime.datetime.now(datetime.UTC)
            made = replace(incident, created_at=current.created_at, updated_at=at, updates=current.updates + 1)
            event = f"update-{made.updates}"
            fields = {"definition": self._definition(made), "updated_at": at.isoformat()}
            if self._write("update", made, event, fields, over=current.updates):
                break
        else:
            raise RuntimeError(f"incident {incident_id} kept changing under 5 updates")
        journal.append(self.redis, "incident.updated", incident=incident_id, event=event,
                       fields=",".join(sorted(changes)) if isinstance(changes, Mapping) else "",
                       broadcast=made.broadcast)
        self._after_event(made, event)
        return made

    def resolve(self, incident_id: str) -> Incident:
        """End an incident: its notice goes from the menu; with ``broadcast`` its customers are
        texted that the service is back."""
        incident_id = incident_id.strip().upper()
        current = self._current(incident_id, "resolved again")
        at = datetime.datetime.now(datetime.UTC)
        made = replace(current, resolved_at=at, updated_at=at)
        fields = {"status": "resolved", "resolved_at": at.isoformat(), "updated_at": at.isoformat()}
        self._write("resolve", made, RESOLVED, fields)
        journal.append(self.redis, "incident.resolved", incident=incident_id, broadcast=made.broadcast)
        self._after_event(made, RESOLVED)
        return made

    def _current(self, incident_id: str, wanted: str) -> Incident:
        current = self.get(incident_id)
        if current is None:
            raise UnknownIncident(incident_id)
        if not current.active:
            raise IncidentResolved(incident_id, wanted)
        return current

    @staticmethod
    def _definition(incident: Incident) -> str:
        return json.dumps(incident.definition(), separators=(",", ":"), ensure_ascii=False)

    def _write(self, action: str, incident: Incident, event: str, fields: dict[str, str], over: int = 0) -> bool:
        """The change, and the event's broadcast when the incident broadcasts, in one script.
        False: the id was taken (create) or the incident changed meanwhile (update)."""
        broadcast: dict[str, str] = {}
        member, indexed = f"{incident.id}/{event}", 0
        if incident.broadcast:
            broadcast = self._broadcast_record(incident, event)
            indexed = self.redis.zadd(keys.incident_broadcasts(), {member: time.time()}, nx=True)  # indexed first
        pairs = [value for pair in fields.items() for value in pair]
        outcome = self._change(
            keys=[keys.incident(incident.id), keys.incident_broadcast(incident.id, event)],
            args=[action, over, len(fields), *pairs, *(value for pair in broadcast.items() for value in pair)],
        )[0]
        if outcome != 1 and indexed:  # only ours: a taken id, or an update that lost the race, has its own
            self.redis.zrem(keys.incident_broadcasts(), member)
        if outcome == -1:
            self._forget()
            raise UnknownIncident(incident.id)
        if outcome == -2:
            self._forget()
            raise IncidentResolved(incident.id, "changed")
        if outcome == 1 and incident.broadcast:
            journal.append(self.redis, "incident.broadcast_started", incident=incident.id, event=event,
                           regions=",".join(incident.regions))
        return bool(outcome == 1)

    def _broadcast_record(self, incident: Incident, event: str) -> dict[str, str]:
        sources = [[kind, region_key(region)] for region in incident.regions for kind in ("phones", "subscribers")]
        record = {"incident": incident.id, "event": event, "state": "selecting",
                  "started_at": _moment(datetime.datetime.now(datetime.UTC)), "sources": json.dumps(sources),
                  "source": "0", "cursor": "0"}
        record.update({name: "0" for name in COUNTERS})
        for lang, body in self.bodies(incident, event).items():
            record[f"body:{lang}"] = body
        return record

    def _after_event(self, incident: Incident, event: str) -> None:
        """A newer event that broadcasts stops the older ones of the incident: who was not
        reached yet gets the newer SMS only, not two of which the first is out of date. So
        does the resolution, broadcast or not: news of an incident that is over is old news."""
        self._forget()
        if not incident.broadcast and event != RESOLVED:
            return
        for incident_id, older in self.under_way():
            if incident_id == incident.id and older != event:
                if self._supersede(keys=[keys.incident_broadcast(incident_id, older),
                                         keys.incident_pending(incident_id, older)], args=[event]):
                    journal.append(self.redis, "incident.broadcast_superseded", incident=incident_id, event=older,
                                   by=event)

    def bodies(self, incident: Incident, event: str) -> dict[str, str]:
        """The SMS of ``event`` in every language."""
        return texts.bodies(incident, event, self.settings.utility, self.tz)

    # -- dry runs ----------------------------------------------------------------------------------
    def preview_create(self, data: object) -> Preview:
        incident = replace(self._parse(data), id="(new)")
        return Preview("create", incident, CREATED, incident.broadcast, self.audience(incident, CREATED))

    def preview_update(self, incident_id: str, changes: object) -> Preview:
        incident_id = incident_id.strip().upper()
        current = self._current(incident_id, "updated")
        incident = replace(self._parse(merge(current, changes), incident_id), created_at=current.created_at,
                           updates=current.updates + 1)
        event = f"update-{incident.updates}"
        return Preview("update", incident, event, incident.broadcast, self.audience(incident, event))

    def preview_resolve(self, incident_id: str) -> Preview:
        incident_id = incident_id.strip().upper()
        current = self._current(incident_id, "resolved again")
        incident = replace(current, resolved_at=datetime.datetime.now(datetime.UTC))
        return Preview("resolve", incident, RESOLVED, incident.broadcast, self.audience(incident, RESOLVED))

    def audience(self, incident: Incident, event: str) -> Audience:
        """Who a broadcast of ``event`` would text now, read without writing anything: the
        phones of the regions and their subscribers, less those who opted out."""
        region_keys = {region_key(region) for region in incident.regions}
        phones: set[str] = set()
        for key in sorted(region_keys):
            for source in (keys.region_phones(key), keys.region_subscribers(key)):
                cursor = -1
                while cursor != 0:
                    cursor, found = self._commands.sscan(source, max(cursor, 0), count=SCAN_CHUNK)
                    phones.update(found)
        ordered = sorted(phones)
        by_language: dict[str, int] = {}
        opted_out = 0
        for start in range(0, len(ordered), CHECK_CHUNK):
            for _phone, outcome in self.classify(ordered[start : start + CHECK_CHUNK], region_keys):
                if outcome == OPTED_OUT:
                    opted_out += 1
                elif outcome != MOVED:
                    by_language[outcome] = by_language.get(outcome, 0) + 1
        return Audience(sum(by_language.values()), opted_out, by_language, self.bodies(incident, event))

    def classify(self, phones: Sequence[str], region_keys: set[str]) -> list[tuple[str, str]]:
        """(phone, what it gets) for ``phones``: the language of its SMS, or OPTED_OUT (it asked
        for no notices: sms.optout), or MOVED (no account in ``region_keys`` any more, nor a
        subscription: a region set may hold a phone too many after a crash). Two round trips."""
        if not phones:
            return []
        allowed = set(optout.allowed_among(self.redis, phones))
        pipe = self.redis.pipeline(transaction=False)
        for phone in phones:
            pipe.hmget(keys.profile(phone), "lang", PROFILE_REGIONS)
            pipe.smembers(keys.phone_subscriptions(phone))
        read = pipe.execute()
        out: list[tuple[str, str]] = []
        for index, phone in enumerate(phones):
            (lang, regions), subscribed = read[2 * index], read[2 * index + 1]
            mine = {region_key(name) for name in (regions or "").split(",") if name} | set(subscribed)
            if phone not in allowed:
                out.append((phone, OPTED_OUT))
            elif not mine & region_keys:
                out.append((phone, MOVED))
            else:
                out.append((phone, self.language(lang)))
        return out

    def language(self, lang: str | None) -> str:
        """The language of a phone's SMS: its own if the texts exist in it, else the app's default."""
        if lang in texts.LANGUAGES:
            return str(lang)
        return self.settings.default_lang if self.settings.default_lang in texts.LANGUAGES else texts.LANGUAGES[0]

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, incident_id: str) -> Incident | None:
        """The incident as Redis has it now (the admin's view)."""
        incident_id = incident_id.strip().upper()
        fields = self.redis.hgetall(keys.incident(incident_id))
        return stored(incident_id, fields) if fields else None

    def all(self) -> list[Incident]:
        """Every incident: those under way first, then the resolved; the newest first in each."""
        ids = sorted(self.redis.smembers(keys.incidents()))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for incident_id in ids:
            pipe.hgetall(keys.incident(incident_id))
        found = [stored(incident_id, fields) for incident_id, fields in zip(ids, pipe.execute(), strict=True)
                 if fields]
        epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        return sorted(found, key=lambda incident: (not incident.active, -(incident.created_at or epoch).timestamp(),
                                                   incident.id))

    # -- the in-process copy -------------------------------------------------------------------------
    def active(self) -> list[Incident]:
        """The incidents under way, the newest first. Cheap: from this process's copy (at most
        CACHE_SECONDS old), no Redis round trip on most calls."""
        return [incident for incident in self._copy.get().values() if incident.active]

    def active_for_regions(self, regions: Iterable[str]) -> list[Incident]:
        """The incidents under way in any of ``regions`` (names as written anywhere: the
        profile's ``regions`` field, a customer file), the newest first. From the copy."""
        wanted = {region_key(region) for region in regions if region.strip()}
        return [incident for incident in self.active() if incident.concerns(wanted)] if wanted else []

    def cached(self) -> list[Incident]:
        """Every incident, from this process's copy."""
        return list(self._copy.get().values())

    def lookup(self, incident_id: str) -> Incident | None:
        """The incident from this process's copy (an id made elsewhere a moment ago reads the
        incidents again, at most once every MISS_REFRESH_SECONDS)."""
        incident_id = incident_id.strip().upper()
        return self._copy.lookup(incident_id)

    def penalties_waived(self, region: str, at: datetime.datetime) -> bool:
        """Whether a late-payment penalty in ``region`` for a payment at ``at`` is waived: an
        incident that waives them was under way there then."""
        return any(incident.waive_penalties and incident.covers(region, at) for incident in self.cached())

    def _forget(self) -> None:
        """This process changed an incident: its next read is fresh (others catch up within
        CACHE_SECONDS)."""
        self._copy.forget()

    # -- subscriptions --------------------------------------------------------------------------------
    def subscribe(self, phone: str, region: str) -> str:
        """``phone`` gets the notices of ``region`` (one it has no account in: a relative's
        village, a shop); the region's name. UnknownRegion when the customer base has none."""
        if not is_e164(phone):
            raise ValueError(f"not an E.164 phone number: {mask_tail(phone)}")
        key = region_key(region)
        name = self.known_regions().get(key)
        if name is None:
            raise UnknownRegion(region)
        # The phone's own set first: subscriptions(phone) says what the broadcast will honour.
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(keys.phone_subscriptions(phone), key)
        journal.append(pipe, "incident.subscribed", phone=phone, region=name)
        pipe.execute()
        self.redis.sadd(keys.region_subscribers(key), phone)
        return name

    def unsubscribe(self, phone: str, region: str) -> bool:
        """``phone`` no longer gets ``region``'s notices (unless it has an account there). True
        when it was subscribed."""
        key = region_key(region)
        pipe = self.redis.pipeline(transaction=False)
        pipe.srem(keys.phone_subscriptions(phone), key)
        journal.append(pipe, "incident.unsubscribed", phone=phone, region=region)
        removed, _ = pipe.execute()
        self.redis.srem(keys.region_subscribers(key), phone)
        return bool(removed)

    def notices_off(self, phone: str) -> bool:
        """Whether ``phone`` asked for no notices (STOP: sms.optout): its subscriptions wait for START."""
        return optout.opted_out(self.redis, phone)

    def subscriptions(self, phone: str) -> list[str]:
        """The regions ``phone`` subscribed to, by name."""
        known = self.known_regions()
        return sorted(known.get(key, key) for key in self.redis.smembers(keys.phone_subscriptions(phone)))

    def regions_of(self, phone: str) -> list[str]:
        """The regions whose notices ``phone`` gets: those of its accounts and its subscriptions
        (region keys), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.profile(phone), PROFILE_REGIONS)
        pipe.smembers(keys.phone_subscriptions(phone))
        regions, subscribed = pipe.execute()
        return sorted({region_key(name) for name in (regions or "").split(",") if name} | set(subscribed))

    # -- broadcasts (run by utility.incidents.jobs) ---------------------------------------------------
    def under_way(self, now: float | None = None) -> list[tuple[str, str]]:
        """(incident id, event) of every broadcast not finished, the oldest first. An index entry
        whose record never came (a crash between the two) is dropped after ORPHAN_AFTER."""
        now = time.time() if now is None else now
        found: list[tuple[str, str]] = []
        members = self._commands.zrangebyscore(keys.incident_broadcasts(), "-inf", "+inf", withscores=True)
        if not members:
            return found
        pipe = self.redis.pipeline(transaction=False)
        for member, _at in members:
            incident_id, _, event = member.partition("/")
            pipe.hmget(keys.incident_broadcast(incident_id, event), "state", "finished_at")
        for (member, at), (state, finished) in zip(members, pipe.execute(), strict=True):
            incident_id, _, event = member.partition("/")
            if finished or (state is None and at < now - ORPHAN_AFTER):
                self.redis.zrem(keys.incident_broadcasts(), member)
            elif state is not None:
                found.append((incident_id, event))
        return found

    def broadcast_record(self, incident_id: str, event: str) -> dict[str, str]:
        return self.redis.hgetall(keys.incident_broadcast(incident_id, event))

    def select(self, incident_id: str, event: str, most: int) -> int:
        """Choose about ``most`` more recipients of a broadcast still selecting (a chunk of
        SCAN_CHUNK at a time, each phone once); how many were new. Resumes where the last
        round stopped, whichever process ran it."""
        state, sources_json, source, cursor = self._commands.hmget(
            keys.incident_broadcast(incident_id, event), "state", "sources", "source", "cursor")
        if state != "selecting" or sources_json is None:
            return 0
        sources = json.loads(sources_json)
        index, at = int(source or 0), int(cursor or 0)
        added = looked = 0
        while looked < most:
            phones: list[str] = []
            following, next_at = index + 1, 0
            if index < len(sources):
                kind, key = sources[index]
                scanned = keys.region_phones(key) if kind == "phones" else keys.region_subscribers(key)
                next_at, phones = self._commands.sscan(scanned, at, count=SCAN_CHUNK)
                if next_at != 0:
                    following = index
            last = following >= len(sources)
            result = self._select(
                keys=[keys.incident_broadcast(incident_id, event), keys.incident_recipients(incident_id, event),
                      keys.incident_pending(incident_id, event)],
                args=[index, at, following, next_at, "1" if last else "0", *phones])
            if result < 0:
                break  # another round moved it on, or it was superseded
            added += int(result)
            looked += max(len(phones), 1)
            index, at = following, next_at
            if last:
                break
        return added

    def claim(self, incident_id: str, event: str, most: int, in_flight: int, hold: float,
              now: float | None = None) -> list[str]:
        """Up to ``most`` phones to text now: those whose claim fell due first (a job died),
        then from the line while fewer than ``in_flight`` are claimed. Each is due again
        ``hold`` seconds on unless finished."""
        now = time.time() if now is None else now
        claimed: list[str] = self._claim(
            keys=[keys.incident_pending(incident_id, event), keys.incident_claimed(incident_id, event),
                  keys.incident_broadcast(incident_id, event)],
            args=[repr(now), repr(now + hold), most, in_flight])
        return claimed

    def finish(self, incident_id: str, event: str, outcomes: Sequence[tuple[str, str]],
               now: float | None = None) -> int:
        """A job is done with these phones: (phone, message id or OPTED_OUT | MOVED |
        SUPERSEDED). How many were counted (a phone finished already counts nothing again)."""
        if not outcomes:
            return 0
        now = time.time() if now is None else now
        counted = self._finish(
            keys=[keys.incident_claimed(incident_id, event), keys.incident_unsettled(incident_id, event),
                  keys.incident_broadcast(incident_id, event)],
            args=[repr(now), *(value for pair in outcomes for value in pair)])  # looked at from the next round
        return int(counted)

    def settle(self, incident_id: str, event: str, most: int, now: float | None = None) -> bool:
        """Count the messages the outbox has finished with (sent, failed, unconfirmed: looked
        at ``most`` at a time, those due), and end the broadcast when nothing is left. True
        when it ended now."""
        now = time.time() if now is None else now
        unsettled = keys.incident_unsettled(incident_id, event)
        due = self.redis.zrangebyscore(unsettled, "-inf", repr(now), start=0, num=most)
        if due:
            pipe = self.redis.pipeline(transaction=False)
            for message_id in due:
                pipe.hget(keys.sms_message(message_id), "state")
            states = pipe.execute()
            pairs: list[str] = []
            for message_id, state in zip(due, states, strict=True):
                # Gone (past the outbox's retention): nobody can tell any more.
                outcome = "unconfirmed" if state is None else state if state in outbox.FINISHED else ""
                pairs += [message_id, outcome]
            self._settle(keys=[unsettled, keys.incident_broadcast(incident_id, event)],
                         args=[repr(now + RECHECK), f"m:{minute_of(now)}", *pairs])
        ended = self._complete(
            keys=[keys.incident_broadcast(incident_id, event), keys.incident_pending(incident_id, event),
                  keys.incident_claimed(incident_id, event), unsettled, keys.incident_recipients(incident_id, event)],
            args=[_moment(datetime.datetime.now(datetime.UTC)), RECIPIENTS_KEPT])
        if not ended:
            return False
        self.redis.zrem(keys.incident_broadcasts(), f"{incident_id}/{event}")
        figures = self.progress(incident_id, event)
        journal.append(self.redis, "incident.broadcast_done", incident=incident_id, event=event,
                       **{name: figures[name] for name in COUNTERS})
        log.info("incident %s %s: broadcast ended, %d recipients, %d sent, %d failed, %d opted out", incident_id,
                 event, figures["recipients"], figures["sent"], figures["failed"], figures["opted_out"])
        return True

    # -- watching ---------------------------------------------------------------------------------------
    def progress(self, incident_id: str, event: str, now: float | None = None) -> dict[str, Any]:
        """One broadcast's figures: recipients chosen, queued to the outbox, sent, failed,
        opted out, waiting, the rate of the last RATE_MINUTES and the expected end."""
        now = time.time() if now is None else now
        flat, waiting, in_flight, unsettled = self._stats(
            keys=[keys.incident_broadcast(incident_id, event), keys.incident_pending(incident_id, event),
                  keys.incident_claimed(incident_id, event), keys.incident_unsettled(incident_id, event)])
        record = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        counts = {name: int(record.get(name) or 0) for name in COUNTERS}
        minute = minute_of(now)
        recent = sum(int(record.get(f"m:{m}") or 0) for m in range(minute - RATE_MINUTES + 1, minute + 1))
        seconds = (RATE_MINUTES - 1) * 60 + (now % 60 or 60)  # the current minute for the part gone by
        started = record.get("started_at")
        if started:  # a broadcast younger than the window: over its own time, not the window's
            seconds = max(1.0, min(seconds, now - datetime.datetime.fromisoformat(started).timestamp()))
        rate = recent / seconds or self.settings.bulk_rate
        handled = sum(counts[name] for name in ("queued", "opted_out", "skipped", "superseded"))
        to_send = max(counts["recipients"] - handled, 0) + int(unsettled)
        finished = record.get("finished_at")
        if finished:
            expected_end: str | None = finished
        elif rate > 0:
            expected_end = _moment(datetime.datetime.fromtimestamp(now + to_send / rate, self.tz))
        else:
            expected_end = None
        settled = counts["sent"] + counts["failed"] + counts["unconfirmed"]
        texted = counts["recipients"] - counts["opted_out"] - counts["skipped"] - counts["superseded"]
        return {
            "event": event, "state": record.get("state"), "started_at": record.get("started_at"),
            "finished_at": finished, "superseded_by": record.get("superseded_by"), **counts,
            "waiting": int(waiting), "in_flight": int(in_flight), "unsettled": int(unsettled),
            "progress": round(settled / texted, 4) if texted > 0 else (1.0 if finished else None),
            "sent_per_minute": round(recent / seconds * 60, 1), "expected_end": expected_end,
            "segments": {name.removeprefix("body:"): sms_segments(body) for name, body in record.items()
                         if name.startswith("body:")},
        }

    def broadcasts(self, incident: Incident) -> list[dict[str, Any]]:
        """The progress of each event's broadcast of ``incident``, in order."""
        events = [CREATED, *(f"update-{n}" for n in range(1, incident.updates + 1))]
        if not incident.active:
            events.append(RESOLVED)
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.hget(keys.incident_broadcast(incident.id, event), "state")
        return [self.progress(incident.id, event) for event, state in zip(events, pipe.execute(), strict=True)
                if state is not None]

    # -- late payments ---------------------------------------------------------------------------------
    def late_payments(self, incident_id: str, chunk: int = EXPORT_CHUNK) -> Iterator[LatePayment]:
        """The bills paid after their due date in the incident's regions during its window
        (created to resolved, or to now), in the order paid: read ``chunk`` at a time from the
        index utility.orders keeps, so an export never holds more than a chunk in memory."""
        incident = self.get(incident_id)
        if incident is None:
            raise UnknownIncident(incident_id)
        assert incident.created_at is not None
        start = incident.created_at.timestamp()
        end = (incident.resolved_at or datetime.datetime.now(datetime.UTC)).timestamp()
        wanted = {region_key(region) for region in incident.regions}
        for month in _months(start, end):
            offset = 0
            while True:
                rows = self._commands.zrangebyscore(keys.late_payments(month), repr(start), repr(end), start=offset,
                                                    num=chunk, withscores=True)
                for member, paid in rows:
                    record = json.loads(member)
                    paid_at = datetime.datetime.fromtimestamp(paid, self.tz)
                    due = datetime.date.fromisoformat(record["due_date"])
                    # The index is a superset (a day in UTC): the utility's own day decides.
                    if region_key(record["region"]) in wanted and paid_at.date() > due:
                        yield LatePayment(record["account"], record["phone"], int(record["amount"]), due, paid_at,
                                          record["reference"], record["region"])
                if len(rows) < chunk:
                    break
                offset += len(rows)


def _months(start: float, end: float) -> list[str]:
    """The months (YYYY-MM, UTC) from ``start`` to ``end``, both included."""
    year, month = map(int, time.strftime("%Y %m", time.gmtime(start)).split())
    last = time.strftime("%Y-%m", time.gmtime(end))
    months = [f"{year:04d}-{month:02d}"]
    while months[-1] < last:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        months.append(f"{year:04d}-{month:02d}")
    return months
