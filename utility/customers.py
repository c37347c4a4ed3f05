"""The customer base: which accounts and meters a phone number may act on.

``CustomerBase`` is what the menus ask. ``RedisCustomerBase`` answers from Guichet's
own copy of the utility's customers (imported from CSV, see utility.customer_csv); a
utility that would rather answer from its own systems writes another implementation.

Layout (state.keys): one hash per account, a set of account numbers per phone number
and a string per meter naming its account. The hash is the truth; the two indexes are
checked against it on every read, so a stale index entry can only hide an account,
never show a stranger's.
"""
from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from state import keys

if TYPE_CHECKING:
    from state.store import TextPipeline, TextRedis

CHUNK_SIZE = 1_000  # accounts per pipeline: two round trips per chunk, not per account

# Release a meter's index entry only while it still names this account: an earlier
# chunk of the same import may already have given the meter to another account.
_RELEASE_METER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Account:
    account_number: str
    meter_number: str  # "" for postpaid accounts
    name: str
    phone: str  # E.164
    region: str
    tariff: str  # "prepaid", "postpaid" or another tariff code
    balance_due: int  # whole XAF, >= 0
    due_date: datetime.date | None

    @property
    def prepaid(self) -> bool:
        return bool(self.meter_number)


@dataclass(frozen=True)
class ImportResult:
    imported: int  # accounts that were not in the base
    updated: int  # accounts that were, rewritten with the new values


def account_digits(account_number: str) -> str:
    """The digits of an account number, in order: what a customer types on a keypad."""
    return "".join(char for char in account_number if char.isdigit())


def mask_tail(number: str, keep: int = 4) -> str:
    """``number`` as "****1234": enough to tell one's own meters apart, not to copy one.

    The prefix is always four stars, so the mask does not give the length away, and a
    number of ``keep`` characters or fewer is masked whole: showing it would not mask it.
    """
    if len(number) <= keep:
        return "****"
    return "****" + number[len(number) - keep :]


def mask_phone(phone: str) -> str:
    """``+237699000001`` as ``****001`` for logs: the last 3 digits tell one caller's lines
    from another's, not how to call them (the log's own net, state.logs, masks likewise)."""
    return mask_tail(phone, keep=3)


class CustomerBase(Protocol):
    def accounts_for_phone(self, phone: str) -> list[Account]:
        """The accounts linked to ``phone``, sorted by account number."""
        ...

    def account(self, account_number: str) -> Account | None: ...

    def account_for_meter(self, meter_number: str) -> Account | None: ...

    def accounts_typed(self, typed: str) -> list[Account]: ...


class RedisCustomerBase:
    """The built-in customer base, on Guichet's Redis (a client with decode_responses=True)."""

    def __init__(self, redis_client: TextRedis) -> None:
        self._redis = redis_client
        self._release_meter = redis_client.register_script(_RELEASE_METER)

    def accounts_for_phone(self, phone: str) -> list[Account]:
        numbers = sorted(self._redis.smembers(keys.phone_accounts(phone)))
        if not numbers:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hgetall(keys.account(number))
        found = [_from_hash(fields) for fields in pipe.execute() if fields]
        return [account for account in found if account.phone == phone]

    def account(self, account_number: str) -> Account | None:
        fields = self._redis.hgetall(keys.account(account_number))
        return _from_hash(fields) if fields else None

    def accounts_typed(self, typed: str) -> list[Account]:
        """The accounts a customer may mean by what they typed on a keypad: the number as
        written ("GA-1000005"), without its dash ("GA1000005"), or its digits alone
        ("1000005"); several when those digits belong to more than one account."""
        written = typed.strip().upper().replace(" ", "")
        if not written or len(written) > 24:
            return []
        candidates = [written]
        prefix = written.rstrip("0123456789")
        if prefix and prefix.isalpha() and prefix != written:
            candidates.append(f"{prefix}-{written[len(prefix):]}")  # the dash a keypad leaves out
        for number in candidates:
            found = self.account(number)
            if found is not None:
                return [found]
        digits = "".join(char for char in written if char.isdigit())
        if digits != written:
            return []  # letters typed, and no such number: not a digits-only lookup
        numbers = sorted(self._redis.smembers(keys.account_digits(digits)))
        return [account for account in (self.account(number) for number in numbers[:5]) if account is not None]

    def account_for_meter(self, meter_number: str) -> Account | None:
        account_number = self._redis.get(keys.meter_account(meter_number))
        if account_number is None:
            return None
        account = self.account(account_number)
        if account is None or account.meter_number != meter_number:
            return None
        return account

    def add_to_balance(self, account_number: str, delta: int, pipe: TextPipeline | None = None) -> None:
        """Change an account's balance due by ``delta`` XAF (negative: a payment or a
        debt recovered). With ``pipe``, queued with the change that causes it."""
        (pipe or self._redis).hincrby(keys.account(account_number), "balance_due", delta)

    def upsert(self, accounts: Sequence[Account]) -> ImportResult:
        """Add new accounts and rewrite existing ones, moving them out of indexes they left.

        Chunks are not transactions: if Redis fails midway, the chunks before are
        written and the rest are not, and importing the same file again completes it.
        """
        numbers = [account.account_number for account in accounts]
        if len(set(numbers)) != len(numbers):
            raise ValueError("an account number appears twice in one import")
        imported = updated = 0
        for start in range(0, len(accounts), CHUNK_SIZE):
            chunk = accounts[start : start + CHUNK_SIZE]
            read = self._redis.pipeline(transaction=False)
            for account in chunk:
                read.hmget(keys.account(account.account_number), "phone", "meter_number")
            phones = list(dict.fromkeys(account.phone for account in chunk))
            for phone in phones:  # the region index: in the same round trip
                read.hgetall(keys.phone_regions(phone))
            replies = read.execute()
            previous, regions_of = replies[: len(chunk)], dict(zip(phones, replies[len(chunk) :], strict=True))

            write = self._redis.pipeline(transaction=False)
            self._index_regions(chunk, [old_phone for old_phone, _ in previous], regions_of, write)
            for account, (old_phone, old_meter) in zip(chunk, previous, strict=True):
                if old_phone is None:
                    imported += 1
                else:
                    updated += 1
                    if old_phone != account.phone:
                        write.srem(keys.phone_accounts(old_phone), account.account_number)
                    if old_meter and old_meter != account.meter_number:
                        self._release_meter(
                            keys=[keys.meter_account(old_meter)], args=[account.account_number], client=write
                        )
                write.hset(keys.account(account.account_number), mapping=_to_hash(account))
                write.sadd(keys.phone_accounts(account.phone), account.account_number)
                write.sadd(keys.account_digits(account_digits(account.account_number)), account.account_number)
                if account.meter_number:
                    write.set(keys.meter_account(account.meter_number), account.account_number)
            write.execute()
        return ImportResult(imported=imported, updated=updated)

    # -- the region index (incident notices: utility.incidents) --------------------------------
    def _index_regions(
        self, chunk: Sequence[Account], old_phones: list[str | None], regions_of: dict[str, dict[str, str]],
        write: TextPipeline,
    ) -> None:
        """Queue on ``write`` what keeps the region index right for ``chunk``: each phone's
        accounts and their regions (keys.phone_regions), the ``regions`` field of its profile
        derived from them (what a new USSD session reads with the language, no round trip of
        its own), and the phones of each region (keys.region_phones). ``regions_of``: the
        phones' account -> region maps as read with the chunk.

        An account that left a phone, or a region, takes the phone out of that region only
        when no other account keeps it there. The old phone's map costs one more round trip,
        only when an account changed phone. Like the rest of an import this is no
        transaction, so it is queued before the accounts' own writes: a crash in between
        leaves the accounts as they were, and the next import of the file sees the same
        moves and makes them again (each write is idempotent). A region set may hold a phone
        too many at worst; a broadcast checks each phone's profile before it texts."""
        missing = [old for old, account in zip(old_phones, chunk, strict=True)
                   if old and old != account.phone and old not in regions_of]
        if missing:
            read = self._redis.pipeline(transaction=False)
            for phone in dict.fromkeys(missing):
                read.hgetall(keys.phone_regions(phone))
            regions_of.update(zip(dict.fromkeys(missing), read.execute(), strict=True))
        before = {phone: {region_key(name) for name in regions.values()} for phone, regions in regions_of.items()}
        touched: set[str] = set()
        for account, old_phone in zip(chunk, old_phones, strict=True):
            if old_phone and old_phone != account.phone:
                regions_of[old_phone].pop(account.account_number, None)
                write.hdel(keys.phone_regions(old_phone), account.account_number)
                touched.add(old_phone)
            name = region_name(account.region)
            regions_of[account.phone][account.account_number] = name
            write.hset(keys.phone_regions(account.phone), account.account_number, name)
            touched.add(account.phone)
        names: dict[str, str] = {}
        for phone in touched:
            now = {region_key(name): name for name in sorted(regions_of[phone].values())}
            for gone in before[phone] - now.keys():
                write.srem(keys.region_phones(gone), phone)
            for key in now:  # every time, not only when new: a crashed import is mended by the next
                write.sadd(keys.region_phones(key), phone)
            if now:
                write.hset(keys.profile(phone), PROFILE_REGIONS, ",".join(sorted(now.values())))
            else:
                write.hdel(keys.profile(phone), PROFILE_REGIONS)
            names.update(now)
        if names:
            write.hset(keys.regions(), mapping=names)


PROFILE_REGIONS = "regions"  # the profile's field: the phone's regions, sorted, comma-joined


def region_name(region: str) -> str:
    """A region as the profile's ``regions`` field lists it: as the customer file writes it,
    spaces collapsed, a comma (the field's separator) made a space."""
    return " ".join(region.replace(",", " ").split())


def region_key(region: str) -> str:
    """A region as the indexes key it and incidents compare it: case, accents, commas and
    extra spaces ignored ("Extrême-Nord" is "extreme-nord"), no brace (a key's hash tag)."""
    decomposed = unicodedata.normalize("NFKD", region_name(region).casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char) and char not in "{}")


def _to_hash(account: Account) -> dict[str, str]:
    return {
        "account_number": account.account_number,
        "meter_number": account.meter_number,
        "name": account.name,
        "phone": account.phone,
        "region": account.region,
        "tariff": account.tariff,
        "balance_due": str(account.balance_due),
        "due_date": account.due_date.isoformat() if account.due_date else "",
    }


def _from_hash(fields: dict[str, str]) -> Account:
    due_date = fields["due_date"]
    return Account(
        account_number=fields["account_number"],
        meter_number=fields["meter_number"],
        name=fields["name"],
        phone=fields["phone"],
        region=fields["region"],
        tariff=fields["tariff"],
        balance_due=int(fields["balance_due"]),
        due_date=datetime.date.fromisoformat(due_date) if due_date else None,
    )
