"""`guichet customers import FILE` and `guichet demo seed`: load a customer base into Redis."""
from __future__ import annotations

from typing import BinaryIO, NoReturn

import click
from flask import Flask
from flask.cli import AppGroup

from state.store import Store, get_store
from utility import customer_csv, demo
from utility.customer_csv import FileRefused
from utility.customers import ImportResult, RedisCustomerBase

EMBEDDED_REFUSAL = (
    "REDIS_URL is not set, so this command would write to an embedded store that lives only\n"
    "as long as the command: the customers would vanish with it, and `guichet serve` (which\n"
    "has its own embedded store) would never see them. Set REDIS_URL=redis://host:6379/0 to\n"
    "write to the Redis the server uses, or upload the file to the running server with\n"
    "POST /admin/customers."
)

customers_cli = AppGroup("customers", help="The customer base.")
demo_cli = AppGroup("demo", help="A made-up customer base in Cameroon and Gabon, to try Guichet.")


def init_app(app: Flask) -> None:
    app.cli.add_command(customers_cli)
    app.cli.add_command(demo_cli)


@customers_cli.command("import")
@click.argument("file", type=click.File("rb"))
def import_customers(file: BinaryIO) -> None:
    """Add or update the customers in FILE (CSV, UTF-8; - reads standard input).

    The header names the columns account_number, meter_number, name, phone, region,
    tariff, balance_due and due_date. Every line is checked first: one bad line refuses
    the whole file, and nothing is imported.
    """
    base = _shared_base()
    try:
        accounts = customer_csv.parse_customers(customer_csv.decode(file.read()))
    except customer_csv.CustomerFileError as exc:
        echo_refused(exc, file.name, "nothing was imported")
    _echo_result(base.upsert(accounts))


@demo_cli.command("seed")
@click.option(
    "--customers",
    "count",
    type=click.IntRange(min=demo.MIN_CUSTOMERS),
    default=500,
    show_default=True,
    help="How many customers, the demo phones' own accounts included.",
)
def seed(count: int) -> None:
    """Write the demo customers to Redis (running it again updates the same customers)."""
    _echo_result(demo.seed_demo(_shared_base(), count))
    click.echo("Dial with these phones:")
    for phone, what in demo.DEMO_PHONES.items():
        click.echo(f"  {phone}  {what}")


def shared_store(refusal: str = EMBEDDED_REFUSAL) -> Store:
    """The Redis the server uses; a command that would write to an embedded store (gone when
    the command ends, never seen by `guichet serve`) stops with ``refusal`` instead."""
    store = get_store()
    if store.embedded:
        click.echo(refusal, err=True)
        raise click.exceptions.Exit(2)
    return store


def echo_refused(exc: FileRefused, name: str, outcome: str) -> NoReturn:
    """Report a file refused line by line, then what it means (``outcome``), and exit 1."""
    for error in exc.errors:
        click.echo(str(error), err=True)
    if exc.more:
        click.echo(f"... and {exc.more} more bad lines", err=True)
    click.echo(f"{name}: refused, {outcome}", err=True)
    raise click.exceptions.Exit(1) from exc


def _shared_base() -> RedisCustomerBase:
    return RedisCustomerBase(shared_store().data)


def _echo_result(result: ImportResult) -> None:
    click.echo(f"imported {result.imported}, updated {result.updated}")
