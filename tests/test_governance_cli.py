"""`healthscore override`, `explain`, `history` and `diff-scorecard` as a new user runs them
on the demo's data (`healthscore demo --keep DIR`, then the two variables it prints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from healthscore.cli import main as cli

from .conftest import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
LEAD = "cs.lead@example.com"


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    keep = tmp_path_factory.mktemp("demo") / "kept"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "healthscore.cli", "demo", "--accounts", "40", "--keep", str(keep)],
        cwd=keep.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"export HEALTHSCORE_CONFIG={keep / 'healthscore.yaml'}" in proc.stdout
    return keep, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def user_env(kept, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    keep, _ = kept
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{keep / 'healthscore-demo.db'}")
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(keep / "healthscore.yaml"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return keep


def _run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == code, result.output
    return result


def _json(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_demo_json_reports_overrides_and_stale_accounts(kept) -> None:
    _, result = kept
    assert result["overrides_active"] == 2  # the intern's was refused
    assert all(c["overrides_active"] == 2 for c in result["cycles"])
    stopped = result["governance"]["hubspot_stopped"]
    assert result["stale_accounts"] == stopped["stale_accounts"] == 40  # all have HubSpot data
    assert stopped["stale_sources"] == ["hubspot"]
    assert stopped["ops_alerts"] == stopped["ops_alerts_after_second_run"] == 1


def test_override_from_the_command_line_shows_in_explain_and_history(user_env) -> None:
    listed = _json(_run("override", "--list"))["overrides"]
    assert sorted(o["state"] for o in listed) == ["active", "active", "refused"]
    refused = next(o for o in listed if o["state"] == "refused")
    assert refused["set_by"] == "intern@example.com" and "may not override" in refused["note"]
    explained = _json(_run("explain", listed[-1]["account_id"], "--json"))
    name = explained["name"]
    # an account without an override: the lead sets one
    plain = _json(_run("explain", "Northnet Networks", "--json"))
    assert plain["override"] is None
    said = _json(
        _run(
            "override",
            "Northnet Networks",
            "--grade",
            "red",
            "--reason",
            "Renewal call went badly",
            "--expires",
            "30d",
            "--by",
            LEAD,
        )
    )
    assert said["grade"] == "red" and said["set_by"] == LEAD
    shown = _json(_run("explain", "Northnet Networks", "--json"))
    assert shown["grade"] == "red" and shown["computed_grade"] == plain["grade"]
    assert shown["override"]["reason"] == "Renewal call went badly"
    assert shown["reasons"][0]["kind"] == "override"
    text = " ".join(_run("explain", "Northnet Networks").output.split())
    assert f"override: red by {LEAD}" in text and "Renewal call went badly" in text
    # the demo's own CRM override is in the score history
    history = _json(_run("history", name, "--json"))["history"]
    assert history and all(h["override"]["set_by"] == listed[-1]["set_by"] for h in history)
    # someone without the right: refused, reported, not applied
    denied = _run(
        "override",
        "Northnet Networks",
        "--grade",
        "green",
        "--reason",
        "x",
        "--by",
        "intern@example.com",
        code=2,
    )
    assert "override refused" in denied.output
    assert _json(_run("explain", "Northnet Networks", "--json"))["grade"] == "red"
    assert (
        "clearing refused"
        in _run(
            "override", "Northnet Networks", "--clear", "--by", "intern@example.com", code=2
        ).output
    )
    cleared = _json(_run("override", "Northnet Networks", "--clear", "--by", LEAD))
    assert cleared["cleared"] == 1
    assert _json(_run("explain", "Northnet Networks", "--json"))["override"] is None


def test_override_errors_are_clear(user_env) -> None:
    assert (
        "give --by EMAIL"
        in _run("override", "Northnet Networks", "--grade", "red", "--reason", "x", code=2).output
    )
    assert (
        "no account with id or name"
        in _run(
            "override", "Nope Ltd", "--grade", "red", "--reason", "x", "--by", LEAD, code=2
        ).output
    )
    assert (
        "--grade must be one of"
        in _run(
            "override",
            "Northnet Networks",
            "--grade",
            "purple",
            "--reason",
            "x",
            "--by",
            LEAD,
            code=2,
        ).output
    )
    assert "at most 90d" in " ".join(
        _run(
            "override",
            "Northnet Networks",
            "--grade",
            "red",
            "--reason",
            "x",
            "--expires",
            "200d",
            "--by",
            LEAD,
            code=2,
        ).output.split()
    )
    assert (
        "--expires must be a duration"
        in _run(
            "override",
            "Northnet Networks",
            "--grade",
            "red",
            "--reason",
            "x",
            "--expires",
            "soon",
            "--by",
            LEAD,
            code=2,
        ).output
    )


def test_diff_scorecard_previews_a_change_on_the_demo_data(user_env) -> None:
    current = user_env / "healthscore.yaml"
    stricter = user_env.parent / "stricter.yaml"
    stricter.write_text(current.read_text().replace("red: 50.0", "red: 60.0"))
    same = _json(_run("diff-scorecard", str(current), str(current), "--json"))
    assert same["grade_changes"] == 0 and same["old_version"] == same["new_version"]
    diff = _json(_run("diff-scorecard", str(current), str(stricter), "--json"))
    assert diff["old_version"] != diff["new_version"]
    assert diff["grade_changes"] == len(diff["changes"]) == sum(diff["transitions"].values())
    assert diff["grade_changes"] > 0
    assert set(diff["transitions"]) == {"yellow → red"}
    assert all(c["old_score"] <= 60.5 for c in diff["changes"])
    text = " ".join(_run("diff-scorecard", str(current), str(stricter)).output.split())
    assert f"{diff['grade_changes']} change grade" in text and "yellow → red" in text
    bad = user_env.parent / "bad.yaml"
    bad.write_text(current.read_text().replace("red: 50.0", "red: 90.0"))
    error = _run("diff-scorecard", str(current), str(bad), code=2).output
    assert "bad.yaml:" in error and "must be below yellow" in error
