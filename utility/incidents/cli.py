"""`guichet incident ...`: declare, update, resolve, list and show incidents against REDIS_URL.

``--dry-run`` checks and prints what would happen (who would be texted, the SMS and their
segments) and writes nothing, as ``?dry_run=1`` does on the admin API.
"""
from __future__ import annotations

import json
from typing import Any, BinaryIO

import click
from flask import Flask
from flask.cli import AppGroup

from utility.cli import shared_store
from utility.incidents.model import DefinitionError, Incident
from utility.incidents.service import IncidentResolved, Incidents, Preview, UnknownIncident

EMBEDDED_REFUSAL = (
    "REDIS_URL is not set, so this command would work on an embedded store that lives only\n"
    "as long as the command: `guichet serve` (which has its own) would never see it. Set\n"
    "REDIS_URL=redis://host:6379/0 to reach the Redis the server uses, or use the running\n"
    "server's /admin/incidents API."
)

incident_cli = AppGroup("incident", help="Incidents: notices to the customers of the regions concerned.")


def init_app(app: Flask) -> None:
    app.cli.add_command(incident_cli)


def _incidents() -> Incidents:
    shared_store(EMBEDDED_REFUSAL)
    from utility.services import services

    return services().incidents


def _read(file: BinaryIO) -> Any:
    try:
        return json.loads(file.read())
    except (ValueError, UnicodeDecodeError) as exc:
        click.echo(f"{file.name}: not JSON ({exc})", err=True)
        raise click.exceptions.Exit(1) from exc


def _refused(exc: DefinitionError, name: str, outcome: str) -> click.exceptions.Exit:
    for path, why in exc.errors.items():
        click.echo(f"{path}: {why}", err=True)
    click.echo(f"{name}: refused, {outcome}", err=True)
    return click.exceptions.Exit(1)


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _preview(preview: Preview) -> None:
    _echo_json(preview.to_json())


def _done(incident: Incident, what: str) -> None:
    told = "its regions are told by SMS" if incident.broadcast else "no SMS (broadcast is false)"
    click.echo(f"{what} {incident.id}: {incident.status}, {told}")


@incident_cli.command("create")
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check it and say who would be texted; write nothing.")
def create(file: BinaryIO, dry_run: bool) -> None:
    """Declare the incident FILE defines (JSON; - reads standard input). Every bad field is
    named, and nothing is created."""
    incidents = _incidents()
    data = _read(file)
    try:
        if dry_run:
            _preview(incidents.preview_create(data))
            return
        incident = incidents.create(data)
    except DefinitionError as exc:
        raise _refused(exc, file.name, "nothing was created") from exc
    _done(incident, "created")


@incident_cli.command("update")
@click.argument("incident_id")
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Check it and say who would be texted; write nothing.")
def update(incident_id: str, file: BinaryIO, dry_run: bool) -> None:
    """Change the fields FILE holds (JSON) of the incident INCIDENT_ID; the others stay."""
    incidents = _incidents()
    data = _read(file)
    try:
        if dry_run:
            _preview(incidents.preview_update(incident_id, data))
            return
        incident = incidents.update(incident_id, data)
    except DefinitionError as exc:
        raise _refused(exc, file.name, "nothing was changed") from exc
    except (UnknownIncident, IncidentResolved) as exc:
        raise _failed(incident_id, exc) from exc
    _done(incident, "updated")


@incident_cli.command("resolve")
@click.argument("incident_id")
@click.option("--dry-run", is_flag=True, help="Say who would be texted; write nothing.")
def resolve(incident_id: str, dry_run: bool) -> None:
    """End the incident INCIDENT_ID: the service is back."""
    incidents = _incidents()
    try:
        if dry_run:
            _preview(incidents.preview_resolve(incident_id))
            return
        incident = incidents.resolve(incident_id)
    except (UnknownIncident, IncidentResolved) as exc:
        raise _failed(incident_id, exc) from exc
    _done(incident, "resolved")


@incident_cli.command("list")
def list_incidents() -> None:
    """Every incident, those under way first: id, status, regions, since, title."""
    incidents = _incidents()
    for incident in incidents.all():
        since = incident.created_at.astimezone(incidents.tz) if incident.created_at else None
        click.echo(f"{incident.id:<8}  {incident.status:<8}  {','.join(incident.regions):<20}  "
                   f"{since:%Y-%m-%d %H:%M}  {incident.title('fr')}" if since else incident.id)


@incident_cli.command("show")
@click.argument("incident_id")
def show(incident_id: str) -> None:
    """The incident INCIDENT_ID and its broadcasts, as JSON (what GET /admin/incidents/ID answers)."""
    incidents = _incidents()
    incident = incidents.get(incident_id)
    if incident is None:
        raise _failed(incident_id, UnknownIncident(incident_id))
    _echo_json({**incident.to_json(), "broadcasts": incidents.broadcasts(incident)})


def _failed(incident_id: str, exc: Exception) -> click.exceptions.Exit:
    click.echo(str(exc) if isinstance(exc, IncidentResolved) else f"no incident {incident_id.upper()}", err=True)
    return click.exceptions.Exit(1)
