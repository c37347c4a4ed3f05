"""The built-in vending engine: real STS tokens, tariffs, and every vend kept in Redis.

It makes Guichet a working vending system on its own (demos, pilots, and utilities
whose vending server is down), and it is the reference behaviour for adapters:
- a vend is idempotent by its reference (asking again returns the stored receipt);
- a vend is written to Redis before it is returned;
- two vends on one meter never run at once (its monthly usage decides the price).
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from state import journal, keys, locks
from state.store import TextRedis, redis_failure_means
from utility.customers import Account, CustomerBase, RedisCustomerBase, mask_tail
from utility.meters import meter_problem, pan_for
from utility.vending import DEFAULTS, sts
from utility.vending.base import (
    AmountTooHigh,
    AmountTooLow,
    BackendUnavailable,
    MeterBlocked,
    MeterInfo,
    Quote,
    ReferenceConflict,
    UnknownMeter,
    Vend,
)
from utility.vending.tariffs import Pricing, Tariff, load_tariffs, price_purchase

log = logging.getLogger(__name__)

REPRINT_COUNT = 3
HISTORY_KEPT = 10
MONTH_KEPT_SECONDS = 40 * 24 * 3600  # a month's usage matters until the month is over
LOCK_WAIT = 5.0


@dataclass(frozen=True)
class StsSettings:
    """The utility's STS key data: what every meter should have (the target). Parsed from
    the configuration by utility.vending.sts_settings; the defaults are utility.vending's."""

    vending_key: bytes
    key_type: int = DEFAULTS["STS_KEY_TYPE"]
    sgc: str = DEFAULTS["STS_SGC"]
    tariff_index: str = DEFAULTS["STS_TARIFF_INDEX"]
    krn: int = DEFAULTS["STS_KRN"]
    base_date: datetime.date = datetime.date.fromisoformat(DEFAULTS["STS_BASE_DATE"])
    tables: str = DEFAULTS["STS_TABLES"]

    def meter(self, meter_number: str, **installed: object) -> sts.MeterKeyData:
        fields: dict[str, object] = dict(
            vending_key=self.vending_key,
            key_type=self.key_type,
            sgc=self.sgc,
            tariff_index=self.tariff_index,
            krn=self.krn,
            base_date=self.base_date,
            tables=self.tables,
        )
        fields.update(installed)
        return sts.MeterKeyData(pan=pan_for(meter_number), **fields)  # type: ignore[arg-type]


# Redis is this engine's storage: when it fails, the vending backend is unavailable.
_redis_is_the_backend = redis_failure_means(BackendUnavailable, "vending storage")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class BuiltinVending:
    def __init__(
        self,
        client: TextRedis,
        customers: CustomerBase,
        settings: StsSettings,
        tariffs: dict[str, Tariff] | None = None,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.redis = client
        self.customers = customers
        self.settings = settings
        self.tariffs = tariffs if tariffs is not None else load_tariffs()
        self.clock = clock

    # -- the interface ------------------------------------------------------------------
    @_redis_is_the_backend
    def confirm(self, meter: str) -> MeterInfo:
        account, tariff = self._account(meter)
        blocked = self.redis.hget(keys.meter_keys(meter), "blocked")
        return MeterInfo(
            meter=meter,
            name=account.name,
            can_vend=not blocked,
            min_amount=tariff.min_purchase,
            max_amount=tariff.max_purchase,
            utility="water" if tariff.unit == "m3" else "electricity",
            tariff=tariff.code,
            reason=MeterBlocked.code if blocked else "",
        )

    @_redis_is_the_backend
    def quote(self, meter: str, amount: int) -> Quote:
        _account, tariff, pricing = self._price(meter, amount, self.clock())
        return Quote(meter, amount, pricing.units, pricing.unit, pricing.charges, tariff.code)

    @_redis_is_the_backend
    def vend(self, meter: str, amount: int, reference: str) -> Vend:
        return self._issue(meter, reference, amount=amount, free_units=None)

    @_redis_is_the_backend
    def free_issue(self, meter: str, units: Decimal, reference: str) -> Vend:
        return self._issue(meter, reference, amount=0, free_units=Decimal(units))

    @_redis_is_the_backend
    def reprint(self, meter: str) -> list[Vend]:
        references = self.redis.lrange(keys.meter_vends(meter), 0, REPRINT_COUNT - 1)
        if not references:
            return []
        records = self.redis.mget([keys.vend(ref) for ref in references])
        return [Vend.from_json(raw) for raw in records if raw]

    # -- operators ----------------------------------------------------------------------
    def block(self, meter: str, reason: str) -> None:
        self.redis.hset(keys.meter_keys(meter), "blocked", reason or "blocked")

    def unblock(self, meter: str) -> None:
        self.redis.hdel(keys.meter_keys(meter), "blocked")

    def set_installed_keys(self, meter: str, *, krn: int | None = None, base_date: datetime.date | None = None,
                           sgc: str | None = None, tariff_index: str | None = None) -> None:
        """Record key data a meter still has that differs from the target: its next
        purchase then carries the two key-change tokens before the credit token."""
        fields = {"krn": krn, "base_date": base_date.isoformat() if base_date else None, "sgc": sgc,
                  "tariff_index": tariff_index}
        self.redis.hset(keys.meter_keys(meter), mapping={k: str(v) for k, v in fields.items() if v is not None})

    # -- the work -----------------------------------------------------------------------
    def _account(self, meter: str) -> tuple[Account, Tariff]:
        # (An operator's switch, POST /admin/backends/vending, is the seam's: utility.calls.)
        if meter_problem(meter):
            raise UnknownMeter(meter_problem(meter) or "", meter=mask_tail(meter))
        account = self.customers.account_for_meter(meter)
        if account is None:
            raise UnknownMeter("no prepaid account has this meter", meter=mask_tail(meter))
        tariff = self.tariffs.get(account.tariff) or self.tariffs.get("prepaid")
        if tariff is None:
            raise UnknownMeter(f"no vending tariff {account.tariff!r}", meter=mask_tail(meter))
        return account, tariff

    def _open_for_sale(self, meter: str) -> tuple[Account, Tariff]:
        account, tariff = self._account(meter)
        if self.redis.hget(keys.meter_keys(meter), "blocked"):
            raise MeterBlocked("vending to this meter is stopped", meter=mask_tail(meter))
        return account, tariff

    def _price(self, meter: str, amount: int, when: datetime.datetime) -> tuple[Account, Tariff, Pricing]:
        """What ``amount`` buys on ``meter`` now: limits checked, this month's usage counted."""
        account, tariff = self._sellable(meter, amount)
        month_units, purchases = self._month(meter, when)
        pricing = price_purchase(tariff, amount, month_units, purchases == 0, max(account.balance_due, 0))
        return account, tariff, pricing

    def _sellable(self, meter: str, amount: int) -> tuple[Account, Tariff]:
        account, tariff = self._open_for_sale(meter)
        if amount < tariff.min_purchase:
            raise AmountTooLow(f"minimum {tariff.min_purchase}", minimum=tariff.min_purchase)
        if amount > tariff.max_purchase:
            raise AmountTooHigh(f"maximum {tariff.max_purchase}", maximum=tariff.max_purchase)
        return account, tariff

    def _month(self, meter: str, when: datetime.datetime) -> tuple[Decimal, int]:
        tenths, purchases = self.redis.hmget(keys.meter_month(meter, f"{when:%Y-%m}"), "tenths", "purchases")
        return Decimal(int(tenths or 0)) / 10, int(purchases or 0)

    def _already(self, meter: str, reference: str, amount: int, free_units: Decimal | None) -> Vend | None:
        raw = self.redis.get(keys.vend(reference))
        if raw is None:
            return None
        done = Vend.from_json(raw)
        same = done.meter == meter and done.amount == amount and (free_units is None or done.units == free_units)
        if not same:
            raise ReferenceConflict("this reference was used for another vend", reference=reference)
        return done

    def _issue(self, meter: str, reference: str, amount: int, free_units: Decimal | None) -> Vend:
        done = self._already(meter, reference, amount, free_units)
        if done:
            return done
        try:
            with locks.hold(self.redis, keys.meter_lock(meter), wait=LOCK_WAIT):
                # Checked again under the lock: a concurrent call may have just made it.
                return self._already(meter, reference, amount, free_units) or self._make(
                    meter, reference, amount, free_units
                )
        except locks.LockTimeout as exc:
            raise BackendUnavailable("the meter is busy with another vend") from exc

    def _make(self, meter: str, reference: str, amount: int, free_units: Decimal | None) -> Vend:
        now = self.clock()
        if free_units is None:
            account, tariff, pricing = self._price(meter, amount, now)
            units, charges = pricing.units, pricing.charges
        else:
            account, tariff = self._open_for_sale(meter)
            units, charges = free_units, ()
        installed = self._installed(meter)
        tokens = sts.purchase_tokens(
            self.settings.meter(meter), units, now, installed=installed, subclass=1 if tariff.unit == "m3" else 0
        )
        sequence = self.redis.incr(keys.receipt_sequence())
        vend = Vend(
            reference=reference,
            receipt_no=f"{now:%y%m%d}{sequence:07d}",
            meter=meter,
            name=account.name,
            amount=amount,
            units=units,
            unit=tariff.unit,
            charges=tuple(charges),
            tokens=tokens,
            tariff=tariff.code,
            issued_at=now,
            free=free_units is not None,
        )
        self._record(vend, account)
        return vend

    def _installed(self, meter: str) -> sts.MeterKeyData | None:
        fields = self.redis.hgetall(keys.meter_keys(meter))
        installed: dict[str, object] = {}
        if "krn" in fields:
            installed["krn"] = int(fields["krn"])
        if "base_date" in fields:
            installed["base_date"] = datetime.date.fromisoformat(fields["base_date"])
        for name in ("sgc", "tariff_index"):
            if name in fields:
                installed[name] = fields[name]
        return self.settings.meter(meter, **installed) if installed else None

    def _record(self, vend: Vend, account: Account) -> None:
        """Write the vend and everything it changes, in one round trip, before returning it."""
        meter = vend.meter
        month = keys.meter_month(meter, f"{vend.issued_at:%Y-%m}")
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.vend(vend.reference), vend.to_json())
        pipe.lpush(keys.meter_vends(meter), vend.reference)
        pipe.ltrim(keys.meter_vends(meter), 0, HISTORY_KEPT - 1)
        pipe.hincrby(month, "tenths", int(vend.units * 10))
        if not vend.free:
            pipe.hincrby(month, "purchases", 1)
        pipe.expire(month, MONTH_KEPT_SECONDS)
        # The customer keys the key-change tokens in with the credit: the meter then has the target keys.
        pipe.hdel(keys.meter_keys(meter), "krn", "base_date", "sgc", "tariff_index")
        recovered = sum(c.amount for c in vend.charges if c.code == "debt_recovery")
        if recovered and isinstance(self.customers, RedisCustomerBase):
            self.customers.add_to_balance(account.account_number, -recovered, pipe)
        journal.append(
            pipe,
            "vend.free_issue" if vend.free else "vend.credit",
            reference=vend.reference,
            receipt=vend.receipt_no,
            meter=meter,
            amount=vend.amount,
            units=vend.units,
            tokens=len(vend.tokens),
        )
        pipe.execute()
        log.info("vend %s meter %s units %s tokens %d", vend.receipt_no, mask_tail(meter), vend.units, len(vend.tokens))
