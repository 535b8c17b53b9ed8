"""`healthscore demo` and `healthscore run` as a person runs them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from healthscore.cli import main as cli
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from store import Store

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)
PATCHES = r"/composite/sobjects"
POSTS = r"chat\.postMessage"
CYCLE_KEYS = {
    "scored",
    "grades",
    "crm_records_updated",
    "crm_write_requests",
    "slack_messages",
    "tasks_created",
    "emails_sent",
    "seconds",
}


def test_demo_prints_each_cycle_as_json(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, wherever pytest runs
    proc = subprocess.run(
        [sys.executable, "-m", "healthscore.cli", "demo", "--accounts", "40"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["accounts"] == 40 and len(result["cycles"]) == 2
    for cycle in result["cycles"]:
        assert set(cycle) >= CYCLE_KEYS, cycle
        assert {"red", "yellow", "green"} <= set(cycle["grades"])
        assert cycle["scored"] == 40 == sum(cycle["grades"].values())
        assert isinstance(cycle["seconds"], float) and cycle["seconds"] > 0
    first, second = result["cycles"]
    assert first["crm_records_updated"] == 40
    assert first["crm_write_requests"] == math.ceil(first["crm_records_updated"] / 200)
    assert first["grades"]["red"] > 0
    # every red account entered red in the first cycle, and each got one message
    assert first["slack_messages"] == first["entered_red"] == first["grades"]["red"]
    assert (
        second["crm_records_updated"],
        second["crm_write_requests"],
        second["slack_messages"],
    ) == (0, 0, 0)
    assert second["grades"] == first["grades"]
    # the actions: a task per red account, emails to contacts; nothing again on cycle 2
    assert first["tasks_created"] == first["entered_red"] and first["emails_sent"] > 0
    assert (second["tasks_created"], second["emails_sent"]) == (0, 0)
    assert result["exactly_once"] == {
        "slack": True,
        "tasks": True,
        "emails": True,
        "slack_429s": 0,
        "unknown": 0,
    }
    assert "✗" not in proc.stdout and proc.stdout.count("✓") == 7
    # both CRMs seeded from one org: HubSpot signals, the prospects unmatched, the mirror
    assert result["signals_by_source"]["salesforce"] > 0
    assert result["signals_by_source"]["hubspot"] > 0
    assert result["unmatched_by_source"]["hubspot"] == 4
    assert result["signals_by_source"]["sendgrid"] == 40 * 5  # every account, five signals
    assert result["signals_by_source"]["mailchimp"] == 40 * 5
    assert result["unmatched_by_source"]["sendgrid"] == 3  # the free-mail / unknown readers
    assert result["unmatched_by_source"]["mailchimp"] == 3
    assert first["hubspot_records_updated"] == 40
    assert first["hubspot_write_requests"] == math.ceil(40 / 100)
    assert (second["hubspot_records_updated"], second["hubspot_write_requests"]) == (0, 0)
    # a sync on unchanged data: one request per object type and source
    assert result["resync_requests"] == {"salesforce": 6, "hubspot": 1}  # Contacts too
    assert list(tmp_path.iterdir()) == []  # the demo leaves nothing behind


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_run_dry_run_writes_nothing_to_salesforce_or_slack(
    sandbox_env: dict[str, str], sf_emu: SalesforceEmulator, slack_emu: SlackEmulator
) -> None:
    org = generate_org(30, seed=51, now=NOW)
    sf_emu.seed(org)
    slack_emu.add_users(org.users)
    before = {r["Id"]: r for r in sf_emu.records("Account")}

    dry = _run("run", "--dry-run")
    assert dry["dry_run"] is True
    assert (dry["accounts_pulled"], dry["scored"]) == (30, 30)
    assert dry["grades"].get("red", 0) > 0  # there was something to alert on
    assert sf_emu.requests("PATCH") == [] and sf_emu.write_history == []
    assert {r["Id"]: r for r in sf_emu.records("Account")} == before
    assert slack_emu.requests("POST", POSTS) == [] and slack_emu.messages == []
    store = Store(sandbox_env["DATABASE_URL"])
    try:
        assert store.runs() == [] and store.actions() == []
        assert store.pending_writes("salesforce") == []

        # the same command without --dry-run does write and post; once
        real = _run("run")
        assert real["crm_records_updated"] == 30 and real["crm_write_requests"] == 1
        assert real["slack_messages"] == real["entered_red"] == dry["grades"]["red"]
        assert len(sf_emu.requests("PATCH", PATCHES)) == 1
        assert len(slack_emu.messages) == real["slack_messages"]
        again = _run("run")
        assert (again["crm_records_updated"], again["slack_messages"]) == (0, 0)
        assert len(store.runs()) == 2
    finally:
        store.close()
