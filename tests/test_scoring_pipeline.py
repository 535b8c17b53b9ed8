"""The scorer inside the pipeline: segments on real synced data, deltas, hysteresis, explain."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.registry import Settings
from connectors.salesforce.sync import sync_accounts
from healthscore.cli.main import app
from healthscore.core.errors import ConfigError
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, generate_org

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()


@pytest.fixture
def synced(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> tuple[Pipeline, dict[str, str]]:
    org = generate_org(60, seed=11, now=NOW)
    sf_emu.seed(org)
    pipeline = make_pipeline()
    sync_accounts(pipeline.context)
    return pipeline, org.archetypes


def test_new_customers_land_in_the_onboarding_segment(synced) -> None:
    pipeline, archetypes = synced
    _, batch = pipeline.score(dry_run=True)
    names = {a.id: a.name for a in pipeline.store.accounts()}
    by_name = dict(
        zip(
            [names[a] for a in batch.account_ids],
            [batch.segment_name(i) for i in range(len(batch))],
            strict=True,
        )
    )
    for name, archetype in archetypes.items():
        if archetype in ("stuck_onboarding", "new_healthy"):
            assert by_name[name] == "onboarding", name
        else:
            assert by_name[name] in ("default", "enterprise"), name
    assert {"onboarding", "default", "enterprise"} <= set(by_name.values())


def test_archetypes_get_the_grades_they_deserve(synced) -> None:
    pipeline, archetypes = synced
    _, batch = pipeline.score(dry_run=True)
    names = {a.id: a.name for a in pipeline.store.accounts()}
    grade = {names[a]: str(batch.grade[i]) for i, a in enumerate(batch.account_ids)}
    for name, archetype in archetypes.items():
        if archetype in ("healthy", "new_healthy"):
            assert grade[name] == "green", (name, archetype)
        if archetype in ("about_to_churn", "stuck_onboarding"):
            assert grade[name] == "red", (name, archetype)


def test_scores_store_segment_and_deltas_vs_7_and_30_days(synced) -> None:
    pipeline, _ = synced
    clock = iter([NOW - timedelta(days=31), NOW - timedelta(days=8), NOW])
    pipeline.clock = lambda: next(clock)
    for _ in range(3):
        pipeline.score()
    account = pipeline.store.accounts()[0]
    history = pipeline.store.score_history(account.id)
    assert len(history) == 3
    latest = history[-1]
    assert latest.reasons["segment"] in ("default", "onboarding", "enterprise")
    # signals did not change, but time did (days since login grows): deltas are real numbers
    assert latest.reasons["delta_7d"] == pytest.approx(latest.score - history[1].score, abs=0.01)
    assert latest.reasons["delta_30d"] == pytest.approx(latest.score - history[0].score, abs=0.01)


def test_hysteresis_holds_a_grade_across_runs(synced) -> None:
    pipeline, _ = synced
    card = pipeline.config.scorecard
    pipeline.score()
    first = pipeline.store.scores_as_of(pipeline.clock())
    # move every border up by 1 point: without hysteresis, accounts at 51 and 76 would flip
    moved = card.model_copy(
        update={
            "grades": card.grades.model_copy(
                update={"red": card.grades.red + 1, "yellow": card.grades.yellow + 1}
            )
        }
    )
    pipeline.config = pipeline.config.model_copy(update={"scorecard": moved})
    _, batch = pipeline.score()
    for i, account_id in enumerate(batch.account_ids):
        if first[account_id].grade != "insufficient_data":
            assert batch.grade[i] == first[account_id].grade


def test_explain_cli_breaks_an_account_down(
    synced, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, _ = synced
    pipeline.score()
    account = pipeline.store.accounts()[0]
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(tmp_path / "healthscore.yaml"))
    (tmp_path / "healthscore.yaml").write_text(EXAMPLE)
    result = CliRunner().invoke(app, ["explain", account.name, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    expected = pipeline.explain(account.id)[1]
    # (a moment later: "days since" grew by a few milliseconds)
    assert data["account_id"] == account.id
    assert data["score"] == pytest.approx(expected.score, abs=0.01)
    assert len(data["measures"]) == len(pipeline.config.scorecard.measures)
    assert data["segment_why"]
    result = CliRunner().invoke(app, ["explain", account.id], env={"COLUMNS": "200"})
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said
    assert "Seat utilization" in said and f"segment {data['segment']}" in said
    result = CliRunner().invoke(app, ["explain", "No Such Account Ltd"])
    assert result.exit_code == 2 and "no account with id or name" in result.output


def test_explain_unknown_account_is_a_clear_error(synced) -> None:
    pipeline, _ = synced
    with pytest.raises(ConfigError, match="no account with id or name 'nope'"):
        pipeline.explain("nope")
