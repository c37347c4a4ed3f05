"""`guichet campaign ...`: the same operations from a terminal, against REDIS_URL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner

from app import create_app
from tests.campaigns.conftest import JEAN, JEAN_METER, OPEN, definition
from utility.campaigns.service import Campaigns


@pytest.fixture
def campaign_file(tmp_path: Path) -> Path:
    path = tmp_path / "gratuit.json"
    path.write_text(json.dumps(definition(quota=100)), encoding="utf-8")
    return path


def test_the_operator_creates_lists_shows_and_steers(
    runner: FlaskCliRunner, campaigns: Campaigns, campaign_file: Path
) -> None:
    created = runner.invoke(args=["campaign", "create", str(campaign_file)])
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("created GRATUIT: ")
    campaigns.register("GRATUIT", JEAN_METER, JEAN.phone, "sms", "fr", now=OPEN)

    listed = runner.invoke(args=["campaign", "list"])
    assert listed.stdout.split()[:4] == ["GRATUIT", created.stdout.split()[-1], "1/100", "registered"]
    shown = json.loads(runner.invoke(args=["campaign", "show", "gratuit"]).stdout)
    assert (shown["registered"], shown["remaining_quota"]) == (1, 99)

    assert runner.invoke(args=["campaign", "pause", "GRATUIT"]).stdout == "GRATUIT: paused\n"
    assert runner.invoke(args=["campaign", "resume", "GRATUIT"]).stdout == "GRATUIT: active\n"
    assert runner.invoke(args=["campaign", "close", "GRATUIT"]).stdout == "GRATUIT: closed\n"
    refused = runner.invoke(args=["campaign", "resume", "GRATUIT"])
    assert (refused.exit_code, refused.stderr) == (1, "campaign GRATUIT is closed: it cannot be resumed\n")


def test_a_bad_file_names_each_field_and_creates_nothing(
    runner: FlaskCliRunner, campaigns: Campaigns, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(definition(code="AIDE", quota=0)), encoding="utf-8")
    result = runner.invoke(args=["campaign", "create", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "code: AIDE is a word the SMS channel answers itself: choose another code",
        "quota: must be a whole number from 1 to 100,000,000, or left out for no limit",
        f"{path}: refused, nothing was created",
    ]
    path.write_text("{not json", encoding="utf-8")
    assert runner.invoke(args=["campaign", "create", str(path)]).exit_code == 1
    assert campaigns.all() == []


def test_the_allowlist_from_a_file(runner: FlaskCliRunner, campaigns: Campaigns, tmp_path: Path,
                                   campaign_file: Path) -> None:
    runner.invoke(args=["campaign", "create", str(campaign_file)])
    path = tmp_path / "list.csv"
    path.write_text(f"number\n{JEAN_METER}\n01400000099\n", encoding="utf-8")
    refused = runner.invoke(args=["campaign", "allowlist", "GRATUIT", str(path)])
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0] == "line 3: no account or meter 01400000099 in the customer base"
    path.write_text(f"number\n{JEAN_METER}\n", encoding="utf-8")
    assert runner.invoke(args=["campaign", "allowlist", "GRATUIT", str(path)]).stdout == "GRATUIT: allow-list of 1\n"


def test_unknown_campaigns(runner: FlaskCliRunner, campaigns: Campaigns) -> None:
    for command in (["show", "NOPE"], ["pause", "NOPE"]):
        result = runner.invoke(args=["campaign", *command])
        assert (result.exit_code, result.stderr) == (1, "no campaign NOPE\n")


def test_the_embedded_store_is_refused(monkeypatch: pytest.MonkeyPatch, campaign_file: Path) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("GUICHET_REDIS_URL", raising=False)
    result = create_app({"TESTING": True}).test_cli_runner().invoke(args=["campaign", "create", str(campaign_file)])
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr
