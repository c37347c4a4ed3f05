"""`guichet sts token|decode`: issue and take apart STS tokens with the built-in engine.

Support staff use `decode` to answer "why does my meter reject this token?". Neither
command touches Redis. A bad option value prints one ``Error: ...`` line on stderr and exits
with status 2, like any click usage error (the usage banner is left out on purpose: these
commands are run from scripts and support desks, where one line reads better).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

import click
from flask import Flask

from utility.vending import sts
from utility.vending.sts_crypto import DEFAULT_TABLES, decoder_key_from_hex, decoder_key_hex, table_names

DKGA_OPTIONS = ("vending_key", "key_type", "sgc", "tariff_index", "krn", "pan")


class OneLineUsageError(click.UsageError):
    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", file=file, err=file is None)


class OneLineErrorCommand(click.Command):
    """Reports usage errors (click's own and the engine's StsError) as one stderr line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), ctx) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), ctx) from exc
        except sts.StsError as exc:
            raise OneLineUsageError(str(exc), ctx) from exc


class HexKey(click.ParamType):
    name = "HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            raw = bytes.fromhex(str(value))
        except ValueError:
            self.fail(f"{value!r} is not hexadecimal", param, ctx)
        if len(raw) != 8:
            self.fail(f"{value!r} must be 16 hex digits", param, ctx)
        return raw


class DecimalUnits(click.ParamType):
    name = "DECIMAL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Decimal:
        try:
            units = Decimal(str(value))
        except InvalidOperation:
            self.fail(f"{value!r} is not a decimal number", param, ctx)
        if not units.is_finite() or units < 0:
            self.fail(f"{value!r} must be zero or more", param, ctx)
        return units


def _key_options(command: Any) -> Any:
    options = [
        click.option("--decoder-key", type=HexKey(),
                     help="Meter decoder key as vending systems print it (e.g. 6ff35b9d1f3453e6); "
                          "replaces the six DKGA02 options."),
        click.option("--vending-key", type=HexKey(), help="DKGA02 vending key, 16 hex digits."),
        click.option("--key-type", type=click.IntRange(0, 3), help="Key type, 0-3."),
        click.option("--sgc", help="Supply group code, 6 digits."),
        click.option("--tariff-index", help="Tariff index, 2 digits."),
        click.option("--krn", type=click.IntRange(1, 9), help="Key revision number, 1-9."),
        click.option("--pan", help="Meter PAN, 18 digits (IIN + DRN + check digit)."),
        click.option("--tables", type=click.Choice(table_names()), default=DEFAULT_TABLES, show_default=True,
                     help="EA07 table set."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _decoder_key(opts: dict[str, Any], base_date: date | None) -> int:
    given = [name for name in DKGA_OPTIONS if opts[name] is not None]
    if opts["decoder_key"] is not None:
        if given:
            raise click.UsageError("give --decoder-key or the DKGA02 options (--vending-key ...), not both")
        return decoder_key_from_hex(opts["decoder_key"].hex())
    missing = [f"--{name.replace('_', '-')}" for name in DKGA_OPTIONS if opts[name] is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or give --decoder-key)")
    meter = sts.MeterKeyData(
        vending_key=opts["vending_key"], key_type=opts["key_type"], sgc=opts["sgc"],
        tariff_index=opts["tariff_index"], krn=opts["krn"], pan=opts["pan"],
        # The base date does not enter DKGA02; any valid one will do when decoding without it.
        base_date=base_date or sts.BASE_2014, tables=opts["tables"],
    )
    return sts.decoder_key(meter)


@click.group("sts")
def sts_group() -> None:
    """STS prepaid tokens (IEC 62055-41) with the built-in engine."""


@sts_group.command("token", cls=OneLineErrorCommand)
@_key_options
@click.option("--issued", required=True, type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
              help="Date and time of issue, YYYY-MM-DDTHH:MM.")
@click.option("--base-date", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="The meter's TID base date: 1993-01-01, 2014-01-01 or 2035-01-01.")
@click.option("--units", required=True, type=DecimalUnits(), help="kWh or m3, in 0.1 steps (finer rounds up).")
@click.option("--subclass", type=click.IntRange(0, 3), default=0, show_default=True,
              help="0 electricity, 1 water, 2 gas, 3 time.")
@click.option("--rnd", type=click.IntRange(0, 15), help="Random field 0-15 (default: random).")
def token_command(issued: datetime, base_date: datetime, units: Decimal, subclass: int, rnd: int | None,
                  **opts: Any) -> None:
    """Print a 20-digit credit token."""
    key = _decoder_key(opts, base_date.date())
    click.echo(sts.credit_token(key, units, issued, subclass, rnd, base_date=base_date.date(), tables=opts["tables"]))


@sts_group.command("decode", cls=OneLineErrorCommand)
@click.argument("token")
@_key_options
@click.option("--base-date", type=click.DateTime(["%Y-%m-%d"]),
              help="The meter's TID base date; without it the TID is read against each base date.")
def decode_command(token: str, base_date: datetime | None, **opts: Any) -> None:
    """Decrypt TOKEN with a meter's key and print its fields, one `name: value` per line."""
    key = _decoder_key(opts, base_date.date() if base_date else None)
    decoded = sts.decode_token(token, key, base_date=base_date.date() if base_date else None, tables=opts["tables"])
    for name, value in decoded.fields():
        click.echo(f"{name}: {_show(name, value)}")
    if decoded.tid is not None and base_date is None:
        for base in sts.BASE_DATES[:2]:
            click.echo(f"issued_if_base_{base.year}: {sts.tid_datetime(decoded.tid, base):%Y-%m-%d %H:%M}")
    click.echo(f"decoder_key: {decoder_key_hex(key)}")
    if not decoded.crc_valid:
        click.echo("hint: CRC fails: this key is not the one the token was made for "
                   "(other meter, KRN, SGC or tariff index), or a digit was mistyped")


def _show(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if name == "data_block":
        return f"{value:016x}"
    if name in ("new_key_high", "new_key_low"):
        return f"{value:08x}"
    if name == "amount_field":
        return f"{value:016b}"
    return str(value)


def init_app(app: Flask) -> None:
    app.cli.add_command(sts_group)
