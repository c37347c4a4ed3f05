"""`guichet incident ...`: the same operations from a terminal, against REDIS_URL."""
from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from tests.incidents.conftest import TOLD, background, definition
from tests.sms.standin_africastalking import AfricasTalkingStandin
from utility.incidents.service import Incidents


def test_the_operator_declares_updates_and_resolves_from_a_terminal(
    runner: FlaskCliRunner, app: Flask, incidents: Incidents, tmp_path: Path,
    africastalking_standin: AfricasTalkingStandin,
) -> None:
    outage = tmp_path / "outage.json"
    outage.write_text(json.dumps(definition()), encoding="utf-8")
    dry = runner.invoke(args=["incident", "create", str(outage), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    figures = json.loads(dry.stdout)
    assert (figures["dry_run"], figures["recipients"], figures["opted_out"], figures["total_segments"]) == (
        True, 4, 1, 4)
    assert incidents.all() == []  # nothing written

    created = runner.invoke(args=["incident", "create", str(outage)])
    assert created.exit_code == 0, created.output
    incident_id = created.stdout.split()[1].rstrip(":")
    assert created.stdout == f"created {incident_id}: active, its regions are told by SMS\n"
    background(app)
    assert len(africastalking_standin.received) == len(TOLD)

    listed = runner.invoke(args=["incident", "list"])
    assert listed.stdout.split()[:3] == [incident_id, "active", "Littoral"]
    shown = json.loads(runner.invoke(args=["incident", "show", incident_id.lower()]).stdout)
    assert (shown["id"], shown["broadcasts"][0]["sent"]) == (incident_id, 4)

    change = tmp_path / "change.json"
    change.write_text(json.dumps({"expected_end": "2099-05-13T08:00"}), encoding="utf-8")
    dry = runner.invoke(args=["incident", "update", incident_id, str(change), "--dry-run"])
    assert json.loads(dry.stdout)["event"] == "update-1"
    assert len(africastalking_standin.received) == len(TOLD)
    updated = runner.invoke(args=["incident", "update", incident_id, str(change)])
    assert updated.stdout == f"updated {incident_id}: active, its regions are told by SMS\n"
    background(app)

    assert json.loads(runner.invoke(args=["incident", "resolve", incident_id, "--dry-run"]).stdout)["event"] == (
        "resolved")
    assert incidents.get(incident_id).active  # type: ignore[union-attr]
    resolved = runner.invoke(args=["incident", "resolve", incident_id])
    assert resolved.stdout == f"resolved {incident_id}: resolved, its regions are told by SMS\n"
    again = runner.invoke(args=["incident", "resolve", incident_id])
    assert (again.exit_code, again.stderr) == (1, f"incident {incident_id} is resolved: it cannot be resolved again\n")
    background(app)
    assert len(africastalking_standin.received) == 3 * len(TOLD)


def test_a_bad_file_is_refused_naming_each_field(runner: FlaskCliRunner, incidents: Incidents, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(definition(regions=["Atlantis"], services=[])), encoding="utf-8")
    refused = runner.invoke(args=["incident", "create", str(bad)])
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0].startswith("regions: not a region of the customer base: Atlantis")
    assert refused.stderr.splitlines()[1].startswith("services: required")
    assert refused.stderr.splitlines()[-1] == f"{bad}: refused, nothing was created"
    bad.write_text("{not json", encoding="utf-8")
    assert runner.invoke(args=["incident", "create", str(bad)]).exit_code == 1
    missing = runner.invoke(args=["incident", "show", "INC-NOPE"])
    assert (missing.exit_code, missing.stderr) == (1, "no incident INC-NOPE\n")
    assert incidents.all() == []
