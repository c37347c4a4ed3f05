"""Campaigns: define, steer, register, count. Built once per app (utility.services).

A registration is exact under any concurrency: the one-per-account-and-meter check, the
quota, the record and the counters are ONE Lua script (_REGISTER) over keys that share the
campaign's hash tag ({campaign:CODE}, state.keys), so Redis runs it whole or not at all
and two registrants never both take the last place. What needs the customer base (which
account a typed number is, its tariff and region) is looked up before, in Python, and
passed in; the allow-list lives under the campaign's tag and is checked inside.

The USSD main menu asks `active()` on every hop: it answers from a copy of the campaigns
kept in this process for CACHE_SECONDS (definitions never change once created; the
operator's pause or close reaches every process within that time, and the script checks
the state anyway, so a registration never slips past a pause).

Fulfilment (utility.campaigns.jobs) takes registrations from the pending list with
`claim`, and ends each with `finish`: pending -> fulfilled | failed, counted once.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from state import journal, keys, metrics
from state.copies import KeyedCopy
from state.store import TextRedis
from utility.calls import backoff
from utility.campaigns import DEFAULTS
from utility.campaigns.model import (
    CHANNELS,
    REASONS,
    Campaign,
    Registration,
    Verdict,
    parse_definition,
    stored,
)
from utility.campaigns.texts import LANGUAGES
from utility.customer_csv import MAX_REPORTED_ERRORS, FileRefused, LineError
from utility.customers import Account, RedisCustomerBase, mask_tail
from utility.meters import is_valid_meter
from utility.orders import new_reference
from utility.phones import is_e164

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0  # how stale the in-process copy behind active() may be
MISS_REFRESH_SECONDS = 1.0  # an unknown code re-reads the campaigns at most this often
EXPORT_CHUNK = 1_000  # registrations read per round trip by the export
ALLOWLIST_CHUNK = 1_000  # allow-list numbers checked and written per round trip
DRAFT_TTL = 3600  # seconds a half-written allow-list (a crash mid-upload) is kept
RECENT_MINUTES = 15  # registrations per minute shown by stats
RATE_MINUTES = 5  # the fulfilment rate behind the expected end is measured over this long
ALLOWLIST_HEADERS = frozenset({"number", "numero", "account", "account_number", "meter", "meter_number",
                               "compte", "compteur"})


class UnknownCampaign(LookupError):
    """No campaign has this code."""


class CampaignExists(Exception):
    """A campaign with this code exists already (codes are never reused)."""


class StateConflict(Exception):
    """The operator's change does not apply to the campaign's state (resuming a closed one)."""

    def __init__(self, code: str, state: str, wanted: str) -> None:
        self.state = state
        super().__init__(f"campaign {code} is {state}: it cannot be {wanted}")


class AllowlistError(FileRefused):
    """An allow-list file refused whole."""

    what = "the allow-list"


@dataclass(frozen=True)
class CampaignSettings:
    delivery_hours: int = DEFAULTS["CAMPAIGN_DELIVERY_HOURS"]  # promised to an accepted registrant

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CampaignSettings:
        """The campaigns' settings; one that ``config`` lacks takes its default from DEFAULTS."""
        hours = int(config.get("CAMPAIGN_DELIVERY_HOURS", DEFAULTS["CAMPAIGN_DELIVERY_HOURS"]))
        if not 1 <= hours <= 999:  # three digits: what the verdict texts have room for
            raise ValueError(f"CAMPAIGN_DELIVERY_HOURS must be from 1 to 999, not {hours}")
        return cls(delivery_hours=hours)


# -- the scripts --------------------------------------------------------------------------------
# Create a campaign once: its hash decides (a code is never reused).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'definition', ARGV[1], 'state', 'active', 'created_at', ARGV[2])
return 1
"""

# The operator's switch. KEYS[1] the campaign; ARGV[1] the state wanted, ARGV[2..] the states
# it may come from. {1, previous}: changed; {0, state}: it is so already; {-2, state}: not from
# there; {-1, ''}: no campaign.
_SET_STATE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
if state == ARGV[1] then return {0, state} end
for i = 2, #ARGV do
  if state == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    return {1, state}
  end
end
return {-2, state}
"""

# One registration, whole or not at all.
# KEYS: 1 campaign, 2 subjects, 3 records, 4 states, 5 order, 6 pending, 7 counters, 8 minutes,
#       9 allow-list (all tagged {campaign:CODE})
# ARGV: 1 reference, 2 the account's subject "a:<account>", 3 the meter's "m:<meter>" or "",
#       4 the record (JSON), 5 quota (-1: none), 6 this minute's field "r:<minute>",
#       7 what the clock says ("not_open" | "ended" | ""), 8 what eligibility says ("tariff" |
#       "region" | ""), 9 the account number, 10 the meter number or ""
# Returns {"accepted", reference} | {"already", first reference, its record} | {reason}, reason
# among closed, ended, paused, not_open, tariff, region, not_listed, quota | {"collision"} (the
# reference is taken: draw another) | {"unknown"} (no such campaign).
# Order: an account already registered hears so whatever else is true (with the date and
# reference of its registration); then the campaign's own state, then the account's.
# The quota compares the count of registrations kept in the same script, so it is never
# passed by one. Every refusal is counted by reason.
_REGISTER = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown'} end
local function refuse(reason, counted)
  redis.call('HINCRBY', KEYS[7], 'refused:' .. (counted or reason), 1)
  return {reason}
end
local first = redis.call('HGET', KEYS[2], ARGV[2])
if not first and ARGV[3] ~= '' then first = redis.call('HGET', KEYS[2], ARGV[3]) end
if first then
  redis.call('HINCRBY', KEYS[7], 'refused:already', 1)
  return {'already', first, redis.call('HGET', KEYS[3], first) or ''}
end
if state == 'closed' then return refuse('closed') end
if ARGV[7] == 'ended' then return refuse('ended', 'closed') end
if state == 'paused' then return refuse('paused') end
if ARGV[7] == 'not_open' then return refuse('not_open') end
if ARGV[8] ~= '' then return refuse(ARGV[8]) end
if redis.call('EXISTS', KEYS[9]) == 1 and redis.call('SISMEMBER', KEYS[9], ARGV[9]) == 0
    and (ARGV[10] == '' or redis.call('SISMEMBER', KEYS[9], ARGV[10]) == 0) then
  return refuse('not_listed')
end
local quota = tonumber(ARGV[5])
if quota >= 0 and tonumber(redis.call('HGET', KEYS[7], 'registered') or '0') >= quota then
  return refuse('quota')
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return {'collision'} end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[1], 'pending')
redis.call('RPUSH', KEYS[5], ARGV[1])
redis.call('RPUSH', KEYS[6], ARGV[1])
redis.call('HINCRBY', KEYS[7], 'registered', 1)
redis.call('HINCRBY', KEYS[8], ARGV[6], 1)
return {'accepted', ARGV[1]}
"""

# Hand out registrations to fulfil. KEYS: 1 pending, 2 claimed, 3 states. ARGV: 1 now, 2 when a
# claim made now is due again if its job never finishes it, 3 how many at most, 4 how many
# may be in flight at most. Claims that fell due (their job crashed, or a backend was down)
# come first, then new ones from the pending list while there is room in flight; a claimed
# registration finished meanwhile is dropped. Returns the references.
_CLAIM = """
local out = {}
local most = tonumber(ARGV[3])
if most <= 0 then return out end
for _, ref in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, most)) do
  if redis.call('HGET', KEYS[3], ref) == 'pending' then
    redis.call('ZADD', KEYS[2], ARGV[2], ref)
    out[#out + 1] = ref
  else
    redis.call('ZREM', KEYS[2], ref)
  end
end
local room = math.min(most - #out, tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[2]))
while room > 0 do
  local ref = redis.call('LPOP', KEYS[1])
  if not ref then break end
  redis.call('ZADD', KEYS[2], ARGV[2], ref)
  out[#out + 1] = ref
  room = room - 1
end
return out
"""

# End a registration's fulfilment, once. KEYS: 1 states, 2 claimed, 3 counters, 4 minutes.
# ARGV: 1 reference, 2 its final state ("fulfilled" | "failed:<reason>"), 3 the counter
# ("fulfilled" | "failed"), 4 this minute's field "f:<minute>". 1: ended now; 0: it was not
# pending (a job run twice), nothing counted again.
_FINISH = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= 'pending' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
return 1
"""

# Everything stats shows, in one round trip. KEYS: 1 counters, 2 pending, 3 claimed, 4 minutes.
# ARGV: the minute fields wanted. Returns {counters (flat), waiting, in flight, {counts}}.
_STATS = """
local minutes = {}
for i = 1, #ARGV do minutes[i] = redis.call('HGET', KEYS[4], ARGV[i]) or '0' end
return {redis.call('HGETALL', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('ZCARD', KEYS[3]), minutes}
"""

# Put a whole new allow-list in place of the old one. KEYS: 1 the draft, 2 the allow-list,
# 3 the campaign. ARGV[1] how many numbers.
_INSTALL_ALLOWLIST = """
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
if tonumber(ARGV[1]) > 0 then redis.call('RENAME', KEYS[1], KEYS[2]) else redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[3], 'allowlist', ARGV[1])
return 1
"""

# What each switch may come from.
_SWITCHES = {"pause": ("paused", ("active",)), "resume": ("active", ("paused",)),
             "close": ("closed", ("active", "paused"))}


def minute_of(moment: datetime.datetime) -> int:
    return int(moment.timestamp() // 60)


class Campaigns:
    def __init__(
        self,
        client: TextRedis,
        customers: RedisCustomerBase,
        tz: datetime.tzinfo = datetime.UTC,
        settings: CampaignSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = client
        self.customers = customers
        self.tz = tz
        self.settings = settings or CampaignSettings()
        self.clock = clock  # of the in-process copy's age only
        self._create = client.register_script(_CREATE)
        self._set_state = client.register_script(_SET_STATE)
        self._register = client.register_script(_REGISTER)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._stats = client.register_script(_STATS)
        self._install_allowlist = client.register_script(_INSTALL_ALLOWLIST)
        self._copy: KeyedCopy[Campaign] = KeyedCopy("campaigns", lambda: {item.code: item for item in self.all()}, clock,
                                                CACHE_SECONDS, MISS_REFRESH_SECONDS)

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(self.tz)

    # -- defining and steering ----------------------------------------------------------------
    def create(self, data: object) -> Campaign:
        """Create the campaign ``data`` defines (model.parse_definition: DefinitionError names
        each bad field); CampaignExists when its code is taken. Open at once (state active):
        customers may register from its starts_at."""
        campaign = parse_definition(data, self.tz, LANGUAGES)
        created_at = datetime.datetime.now(datetime.UTC)
        definition = json.dumps(campaign.definition(), separators=(",", ":"))
        if not self._create(keys=[keys.campaign(campaign.code)], args=[definition, created_at.isoformat()]):
            raise CampaignExists(campaign.code)
        # The index after the campaign: a crash in between leaves it out of the lists, and
        # the operator sees "exists" on a retry; its hash is the truth.
        self.redis.sadd(keys.campaigns(), campaign.code)
        journal.append(self.redis, "campaign.created", campaign=campaign.code, benefit=campaign.benefit.kind,
                       amount=campaign.benefit.amount, quota=campaign.quota)
        self._forget()
        return replace(campaign, created_at=created_at)

    def get(self, code: str) -> Campaign | None:
        """The campaign as Redis has it now (the admin's view)."""
        fields = self.redis.hgetall(keys.campaign(code))
        return stored(fields) if fields else None

    def all(self) -> list[Campaign]:
        """Every campaign, soonest first."""
        codes = sorted(self.redis.smembers(keys.campaigns()))
        if not codes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for code in codes:
            pipe.hgetall(keys.campaign(code))
        found = [stored(fields) for fields in pipe.execute() if fields]
        return sorted(found, key=lambda campaign: (campaign.starts_at, campaign.code))

    def pause(self, code: str) -> Campaign:
        return self._switch(code, "pause")

    def resume(self, code: str) -> Campaign:
        return self._switch(code, "resume")

    def close(self, code: str) -> Campaign:
        """For good: a closed campaign takes no registration again (those accepted are still
        fulfilled)."""
        return self._switch(code, "close")

    def _switch(self, code: str, action: str) -> Campaign:
        wanted, sources = _SWITCHES[action]
        outcome, previous = self._set_state(keys=[keys.campaign(code)], args=[wanted, *sources])
        if outcome == -1:
            raise UnknownCampaign(code)
        if outcome == -2:
            raise StateConflict(code, previous, {"pause": "paused", "resume": "resumed", "close": "closed"}[action])
        if outcome == 1:
            journal.append(self.redis, f"campaign.{wanted}", campaign=code, previous=previous)
        self._forget()
        campaign = self.get(code)
        if campaign is None:
            raise UnknownCampaign(code)
        return campaign

    def set_allowlist(self, code: str, data: bytes) -> int:
        """Restrict the campaign to the account and meter numbers of a CSV file (one number a
        line, an optional header such as ``number``); how many it holds. The whole file is
        checked first, the numbers against the customer base too: one bad line refuses it
        (AllowlistError, each bad line with its number) and nothing changes. A file that
        only has a header lifts the restriction."""
        if self.get(code) is None:
            raise UnknownCampaign(code)
        numbers = parse_allowlist(data)
        self._check_known(numbers)
        unique = list(dict.fromkeys(number for _line, number in numbers))
        draft = keys.campaign_allowlist_draft(code, secrets.token_hex(4))
        for start in range(0, len(unique), ALLOWLIST_CHUNK):
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(draft, *unique[start : start + ALLOWLIST_CHUNK])
            pipe.expire(draft, DRAFT_TTL)
            pipe.execute()
        if not self._install_allowlist(keys=[draft, keys.campaign_allowlist(code), keys.campaign(code)],
                                       args=[len(unique)]):
            raise UnknownCampaign(code)
        journal.append(self.redis, "campaign.allowlist", campaign=code, numbers=len(unique))
        return len(unique)

    def _check_known(self, numbers: list[tuple[int, str]]) -> None:
        """Every number must be an account or a meter of the customer base."""
        errors: list[LineError] = []
        more = 0
        for start in range(0, len(numbers), ALLOWLIST_CHUNK):
            chunk = numbers[start : start + ALLOWLIST_CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for _line, number in chunk:
                pipe.hget(keys.account(number), "account_number")
                pipe.get(keys.meter_account(number))
            found = pipe.execute()
            for index, (line, number) in enumerate(chunk):
                if found[2 * index] is None and found[2 * index + 1] is None:
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append(LineError(line, f"no account or meter {number} in the customer base"))
                    else:
                        more += 1
        if errors:
            raise AllowlistError(errors, more)

    # -- the in-process copy ----------------------------------------------------------------------
    def active(self, now: datetime.datetime | None = None) -> list[Campaign]:
        """The campaigns customers may register for now, soonest first. Cheap: from this
        process's copy (at most CACHE_SECONDS old), no Redis round trip on most calls."""
        now = now or self.now()
        return [campaign for campaign in self._copy.get().values() if campaign.is_open(now)]

    def cached(self) -> list[Campaign]:
        """Every campaign, from this process's copy (at most CACHE_SECONDS old)."""
        return list(self._copy.get().values())

    def lookup(self, code: str) -> Campaign | None:
        """The campaign of ``code`` from this process's copy (open or not): what an SMS
        keyword or a menu asks. A code not in the copy reads the campaigns again (one made
        in another process a moment ago), at most once every MISS_REFRESH_SECONDS."""
        code = code.strip().upper()
        return self._copy.lookup(code)

    def _forget(self) -> None:
        """This process changed a campaign: its next read is fresh (others catch up within
        CACHE_SECONDS)."""
        self._copy.forget()

    # -- registering --------------------------------------------------------------------------
    def _journal(self, later: list[dict[str, str]] | None, kind: str, **fields: Any) -> None:
        if later is None:
            journal.append(self.redis, kind, **fields)
        else:
            later.append(journal.entry(kind, **fields))

    def register(
        self, code: str, number: str, phone: str, channel: str, lang: str, now: datetime.datetime | None = None,
        account: Account | None = None, journal_to: list[dict[str, str]] | None = None,
    ) -> Verdict:
        """Register the meter or account ``number`` (as the customer typed or picked it) for
        the campaign ``code``, asked by ``phone`` (E.164) through ``channel`` (ussd | sms) in
        ``lang``. Accepted, or refused with one reason (model.REASONS); texts.verdict_text
        says it. UnknownCampaign when no campaign has this code.

        ``account``: the account ``number`` names, when the caller read it from the customer
        base a moment ago (a USSD list of the caller's accounts): two round trips saved.
        ``journal_to``: where to leave the journal entry, when the caller writes it with its
        own change (a USSD hop's session save): one round trip saved. Should that write
        fail, the registration stands without its entry: the registration record says it all."""
        verdict = self._decide(code, number, phone, channel, lang, now, account, journal_to)
        metrics.verdict(code, channel, verdict.reason or "accepted")
        return verdict

    def _decide(
        self, code: str, number: str, phone: str, channel: str, lang: str, now: datetime.datetime | None,
        account: Account | None, journal_to: list[dict[str, str]] | None,
    ) -> Verdict:
        if not is_e164(phone):
            raise ValueError(f"not an E.164 phone number: {mask_tail(phone)}")
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
        campaign = self.lookup(code)
        if campaign is None:
            raise UnknownCampaign(code)
        now = (now or self.now()).astimezone(self.tz)
        code = campaign.code
        known = account is not None and number in (account.meter_number, account.account_number)
        matches = [account] if known and account is not None else self._accounts(number, phone)
        if len(matches) != 1:
            # Nothing to register: what the campaign's own state says comes first (typing
            # again is no use while it is closed), else what was wrong with the number.
            status = campaign.status(now)
            reason = {"ended": "closed"}.get(status, status) if status != "active" else (
                "ambiguous" if matches else "unknown_number")
            self.redis.hincrby(keys.campaign_counters(code), f"refused:{reason}", 1)
            self._journal(journal_to, "campaign.refused", campaign=code, reason=reason, phone=phone,
                          channel=channel)
            return Verdict(code, reason, number=" ".join(number.split()),
                           ended_at=campaign.ends_at.astimezone(self.tz) if status == "ended" else None,
                           opens_at=campaign.starts_at.astimezone(self.tz) if status == "not_open" else None)
        account = matches[0]
        by_time = campaign.refusal_by_time(now)
        eligibility = campaign.eligibility_refusal(account.tariff, account.region, account.prepaid)
        at = now.astimezone(datetime.UTC).replace(microsecond=0)
        for _ in range(5):  # 40 random bits: among 250,000 registrations a clash happens now and then
            registration = Registration(new_reference(), account.account_number, account.meter_number, phone,
                                        channel, lang, at)
            result = self._register(
                keys=self._registration_keys(code),
                args=[registration.reference, f"a:{account.account_number}",
                      f"m:{account.meter_number}" if account.meter_number else "", registration.to_json(),
                      campaign.quota if campaign.quota is not None else -1, f"r:{minute_of(now)}",
                      by_time, eligibility, account.account_number, account.meter_number],
            )
            if result[0] != "collision":
                break
        else:
            raise RuntimeError("no free registration reference after 5 draws")
        outcome = result[0]
        if outcome == "unknown":
            self._forget()
            raise UnknownCampaign(code)
        found = Verdict(code, account=account.account_number, meter=account.meter_number)
        if outcome == "accepted":
            self._journal(journal_to, "campaign.registered", campaign=code, reference=registration.reference,
                          account=account.account_number, meter=account.meter_number, phone=phone,
                          channel=channel)
            return replace(found, reference=registration.reference, registered_at=now, benefit=campaign.benefit,
                           within_hours=self.settings.delivery_hours)
        reason = "closed" if outcome == "ended" else outcome
        self._journal(journal_to, "campaign.refused", campaign=code, reason=reason, account=account.account_number,
                      phone=phone, channel=channel)
        if outcome == "already":
            first = Registration.from_json(result[2]) if result[2] else None
            return replace(found, reason=reason, reference=result[1],
                           registered_at=first.at.astimezone(self.tz) if first else None)
        return replace(
            found, reason=reason, tariff=account.tariff if reason == "tariff" else "",
            region=account.region if reason == "region" else "",
            ended_at=campaign.ends_at.astimezone(self.tz) if outcome == "ended" else None,
            opens_at=campaign.starts_at.astimezone(self.tz) if outcome == "not_open" else None,
        )

    @staticmethod
    def _registration_keys(code: str) -> list[str]:
        return [keys.campaign(code), keys.campaign_subjects(code), keys.campaign_records(code),
                keys.campaign_states(code), keys.campaign_order(code), keys.campaign_pending(code),
                keys.campaign_counters(code), keys.campaign_minutes(code), keys.campaign_allowlist(code)]

    def _accounts(self, number: str, phone: str) -> list[Account]:
        """The accounts ``number`` may mean: a meter's, or an account typed as a keypad allows
        (utility.customers.accounts_typed). Digits shared by several accounts mean the
        caller's own when exactly one of them is."""
        written = "".join(number.split()).upper()
        if not written:
            return []
        if is_valid_meter(written):
            account = self.customers.account_for_meter(written)
            if account is not None:
                return [account]
        found = self.customers.accounts_typed(written)
        if len(found) > 1:
            mine = [account for account in found if account.phone == phone]
            if len(mine) == 1:
                return mine
        return found

    # -- fulfilment's bookkeeping (utility.campaigns.jobs) -------------------------------------------
    def registration(self, code: str, reference: str) -> Registration | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.campaign_records(code), reference)
        pipe.hget(keys.campaign_states(code), reference)
        raw, state = pipe.execute()
        return Registration.from_json(raw, state) if raw else None

    def claim(self, code: str, most: int, in_flight: int, hold: float, now: float | None = None) -> list[str]:
        """Up to ``most`` registrations to fulfil now: those whose claim fell due first, then
        pending ones while fewer than ``in_flight`` are claimed. Each is due again ``hold``
        seconds on unless finished (its job crashed: it is handed out again)."""
        now = time.time() if now is None else now
        claimed: list[str] = self._claim(
            keys=[keys.campaign_pending(code), keys.campaign_claimed(code), keys.campaign_states(code)],
            args=[repr(now), repr(now + hold), most, in_flight],
        )
        return claimed

    def retry_later(self, code: str, reference: str, first: float, cap: float, now: float | None = None) -> float:
        """A backend could not serve it now: hand it out again after a backoff that grows
        with each retry of this registration (utility.calls.backoff: ``first`` seconds,
        doubling, at most ``cap``). Returns the delay."""
        now = time.time() if now is None else now
        attempt = self.redis.hincrby(keys.campaign_retries(code), reference, 1)
        delay = backoff(attempt, first, cap)
        self.redis.zadd(keys.campaign_claimed(code), {reference: now + delay}, xx=True)
        return delay

    def finish(self, code: str, reference: str, reason: str = "", now: datetime.datetime | None = None) -> bool:
        """End a registration's fulfilment: fulfilled, or failed for ``reason``. False when it
        had ended already (a job run twice): nothing is counted again."""
        state, counter = (f"failed:{reason}", "failed") if reason else ("fulfilled", "fulfilled")
        done = self._finish(
            keys=[keys.campaign_states(code), keys.campaign_claimed(code), keys.campaign_counters(code),
                  keys.campaign_minutes(code)],
            args=[reference, state, counter, f"f:{minute_of(now or self.now())}"],
        )
        if done:
            journal.append(self.redis, f"campaign.{counter}", campaign=code, reference=reference, reason=reason)
        return bool(done)

    def units_for(self, code: str, reference: str, decide: Callable[[], Decimal]) -> Decimal:
        """The units of a registration's free issue, decided once (``decide``: a quote of the
        benefit's XAF) and kept: a retry asks the vending backend for the very same issue."""
        field_key = keys.campaign_units(code)
        kept = self.redis.hget(field_key, reference)
        if kept is None:
            self.redis.hsetnx(field_key, reference, str(decide()))
            kept = self.redis.hget(field_key, reference)
        assert kept is not None
        return Decimal(kept)

    # -- watching ----------------------------------------------------------------------------------
    def stats(self, code: str, now: datetime.datetime | None = None) -> dict[str, Any]:
        """What GET /admin/campaigns/<code> shows: counts, refusals by reason, registrations per
        minute (the last RECENT_MINUTES), and the fulfilment's progress and expected end (at
        the rate of the last RATE_MINUTES)."""
        campaign = self.get(code)
        if campaign is None:
            raise UnknownCampaign(code)
        now = (now or self.now()).astimezone(self.tz)
        minute = minute_of(now)
        recent = list(range(minute - RECENT_MINUTES + 1, minute + 1))
        fields = [f"r:{m}" for m in recent] + [f"f:{m}" for m in recent]
        flat, waiting, in_flight, counts = self._stats(
            keys=[keys.campaign_counters(code), keys.campaign_pending(code), keys.campaign_claimed(code),
                  keys.campaign_minutes(code)],
            args=fields,
        )
        counters = {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
        registrations, fulfilments = [int(c) for c in counts[: len(recent)]], [int(c) for c in counts[len(recent) :]]
        registered, fulfilled, failed = (counters.get(name, 0) for name in ("registered", "fulfilled", "failed"))
        to_do = registered - fulfilled - failed
        # The rate of the last RATE_MINUTES, the current minute counted for the part gone by.
        seconds = (RATE_MINUTES - 1) * 60 + (now.timestamp() % 60 or 60)
        rate = sum(fulfilments[-RATE_MINUTES:]) / seconds  # per second
        expected_end = None
        if to_do == 0:
            expected_end = now.isoformat(timespec="seconds") if registered else None
        elif rate > 0:
            expected_end = (now + datetime.timedelta(seconds=to_do / rate)).isoformat(timespec="seconds")
        return {
            "campaign": campaign.to_json(now),
            "registered": registered,
            "fulfilled": fulfilled,
            "failed": failed,
            "remaining_quota": max(campaign.quota - registered, 0) if campaign.quota is not None else None,
            "refusals": {reason: counters.get(f"refused:{reason}", 0) for reason in REASONS},
            "registrations_per_minute": [
                {"minute": datetime.datetime.fromtimestamp(m * 60, self.tz).isoformat(timespec="minutes"),
                 "registrations": count}
                for m, count in zip(recent, registrations, strict=True)
            ],
            "fulfilment": {
                "to_do": to_do,
                "waiting": int(waiting),
                "in_flight": int(in_flight),
                "progress": round((fulfilled + failed) / registered, 4) if registered else None,
                "per_minute": round(rate * 60, 1),
                "expected_end": expected_end,
            },
        }

    def registrations(self, code: str, chunk: int | None = None) -> Iterator[Registration]:
        """Every registration, in the order registered, read ``chunk`` (EXPORT_CHUNK) at a time:
        an export of 250,000 never holds more than one chunk in memory."""
        chunk = chunk or EXPORT_CHUNK
        start = 0
        while True:
            references = self.redis.lrange(keys.campaign_order(code), start, start + chunk - 1)
            if not references:
                return
            pipe = self.redis.pipeline(transaction=False)
            pipe.hmget(keys.campaign_records(code), references)
            pipe.hmget(keys.campaign_states(code), references)
            records, states = pipe.execute()
            for raw, state in zip(records, states, strict=True):
                if raw:
                    yield Registration.from_json(raw, state)
            if len(references) < chunk:
                return  # the end (registrations made meanwhile are in the next export)
            start += len(references)


# -- the allow-list file ---------------------------------------------------------------------------
ACCOUNT_OR_METER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/")


def parse_allowlist(data: bytes) -> list[tuple[int, str]]:
    """(line, number) of each account or meter number in an allow-list file: UTF-8 CSV, one
    number a line (a spreadsheet's trailing empty cells are fine), an optional header line
    (``number``, ``account_number``, ``meter_number``...), blank lines skipped. Every bad line
    is reported (AllowlistError), by its number in the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AllowlistError([LineError(line, "this line is not UTF-8 text: export the file as 'CSV UTF-8'")]) from exc
    errors: list[LineError] = []
    more = 0
    numbers: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    seen = header = False  # a line with something on it; the header line
    try:
        for fields in reader:
            line = reader.line_num
            values = [field.strip() for field in fields if field.strip()]
            if not values:
                continue
            if not seen and len(values) == 1 and values[0].lower() in ALLOWLIST_HEADERS:
                seen = header = True
                continue
            seen = True
            problem = _number_problem(values)
            if problem is None:
                numbers.append((line, values[0]))
            elif len(errors) < MAX_REPORTED_ERRORS:
                errors.append(LineError(line, problem))
            else:
                more += 1
    except csv.Error as exc:
        errors.append(LineError(reader.line_num + 1, f"the CSV cannot be read from this line on ({exc})"))
    if not numbers and not header and not errors:
        # An empty upload (a wrong file, a failed export) must not lift a restriction by mistake.
        errors.append(LineError(1, "the file holds no number (send a header line alone, such as "
                                   "'number', to lift the allow-list)"))
    if errors:
        raise AllowlistError(errors, more)
    return numbers


def _number_problem(values: list[str]) -> str | None:
    if len(values) > 1:
        return f"one number a line, found {len(values)} values"
    number = values[0]
    shown = repr(number if len(number) <= 30 else number[:27] + "...")
    if len(number) > 20 or not ACCOUNT_OR_METER.issuperset(number):
        return f"{shown} is not an account number (letters, digits, '-' and '/', 20 at most) nor a meter number"
    return None
