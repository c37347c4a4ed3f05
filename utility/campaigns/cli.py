"""`guichet campaign ...`: define, list, show and steer campaigns against REDIS_URL."""
from __future__ import annotations

import json
from typing import BinaryIO

import click
from flask import Flask
from flask.cli import AppGroup

from utility.campaigns.model import DefinitionError
from utility.campaigns.service import (
    AllowlistError,
    CampaignExists,
    Campaigns,
    StateConflict,
    UnknownCampaign,
)
from utility.cli import echo_refused, shared_store

EMBEDDED_REFUSAL = (
    "REDIS_URL is not set, so this command would work on an embedded store that lives only\n"
    "as long as the command: `guichet serve` (which has its own) would never see it. Set\n"
    "REDIS_URL=redis://host:6379/0 to reach the Redis the server uses, or use the running\n"
    "server's /admin/campaigns API."
)

campaign_cli = AppGroup("campaign", help="Free-credit campaigns.")


def init_app(app: Flask) -> None:
    app.cli.add_command(campaign_cli)


def _campaigns() -> Campaigns:
    shared_store(EMBEDDED_REFUSAL)
    from utility.services import services

    return services().campaigns


@campaign_cli.command("create")
@click.argument("file", type=click.File("rb"))
def create(file: BinaryIO) -> None:
    """Create the campaign FILE defines (JSON; - reads standard input). Every bad field is
    named, and nothing is created."""
    campaigns = _campaigns()
    try:
        data = json.loads(file.read())
    except (ValueError, UnicodeDecodeError) as exc:
        click.echo(f"{file.name}: not JSON ({exc})", err=True)
        raise click.exceptions.Exit(1) from exc
    try:
        campaign = campaigns.create(data)
    except DefinitionError as exc:
        for path, why in exc.errors.items():
            click.echo(f"{path}: {why}", err=True)
        click.echo(f"{file.name}: refused, nothing was created", err=True)
        raise click.exceptions.Exit(1) from exc
    except CampaignExists as exc:
        click.echo(f"a campaign {exc} exists already: choose another code", err=True)
        raise click.exceptions.Exit(1) from exc
    click.echo(f"created {campaign.code}: {campaign.status(campaigns.now())}")


@campaign_cli.command("list")
def list_campaigns() -> None:
    """Every campaign: code, status, registrations, dates."""
    campaigns = _campaigns()
    now = campaigns.now()
    for campaign in campaigns.all():
        stats = campaigns.stats(campaign.code, now)
        quota = f"/{campaign.quota}" if campaign.quota is not None else ""
        click.echo(f"{campaign.code:<12}  {campaign.status(now):<8}  {stats['registered']}{quota} registered  "
                   f"{campaign.starts_at.astimezone(campaigns.tz):%Y-%m-%d %H:%M} -> "
                   f"{campaign.ends_at.astimezone(campaigns.tz):%Y-%m-%d %H:%M}  {campaign.name('fr')}")


@campaign_cli.command("show")
@click.argument("code")
def show(code: str) -> None:
    """The campaign CODE and its figures, as JSON (what GET /admin/campaigns/CODE answers)."""
    try:
        stats = _campaigns().stats(code.upper())
    except UnknownCampaign as exc:
        click.echo(f"no campaign {code.upper()}", err=True)
        raise click.exceptions.Exit(1) from exc
    click.echo(json.dumps(stats, indent=2, ensure_ascii=False))


def _switch(code: str, action: str) -> None:
    campaigns = _campaigns()
    steps = {"pause": campaigns.pause, "resume": campaigns.resume, "close": campaigns.close}
    try:
        campaign = steps[action](code.upper())
    except UnknownCampaign as exc:
        click.echo(f"no campaign {code.upper()}", err=True)
        raise click.exceptions.Exit(1) from exc
    except StateConflict as exc:
        click.echo(str(exc), err=True)
        raise click.exceptions.Exit(1) from exc
    click.echo(f"{campaign.code}: {campaign.state}")


@campaign_cli.command("pause")
@click.argument("code")
def pause(code: str) -> None:
    """Stop registrations for now (those accepted are still fulfilled)."""
    _switch(code, "pause")


@campaign_cli.command("resume")
@click.argument("code")
def resume(code: str) -> None:
    """Take registrations again after a pause."""
    _switch(code, "resume")


@campaign_cli.command("close")
@click.argument("code")
def close(code: str) -> None:
    """Stop registrations for good (those accepted are still fulfilled)."""
    _switch(code, "close")


@campaign_cli.command("allowlist")
@click.argument("code")
@click.argument("file", type=click.File("rb"))
def allowlist(code: str, file: BinaryIO) -> None:
    """Restrict CODE to the account and meter numbers in FILE (CSV, one a line). Every line
    is checked first: one bad line refuses the whole file."""
    campaigns = _campaigns()
    try:
        count = campaigns.set_allowlist(code.upper(), file.read())
    except UnknownCampaign as exc:
        click.echo(f"no campaign {code.upper()}", err=True)
        raise click.exceptions.Exit(1) from exc
    except AllowlistError as exc:
        echo_refused(exc, file.name, "the allow-list is unchanged")
    click.echo(f"{code.upper()}: allow-list of {count}")
