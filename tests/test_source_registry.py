"""Adding a source is one package plus one registry entry: a toy source, registered here, is
found by the beat schedule, the Celery task, `healthscore sync`/`sources` and the cycle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.contract import Source, SyncContext, SyncOptions
from connectors.registry import enabled, register, unregister
from healthscore.cli.main import app
from healthscore.config import load_config
from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel
from healthscore.pipeline.runtime import load_runtime
from healthscore.worker.schedule import beat_schedule_for
from store import SignalRow
from tests.test_accounts_outcomes import file_config

TOY = "toy_nps"


class ToyConfig(StrictModel):
    enabled: bool = False
    sync_every: Duration = timedelta(minutes=7)
    score: float = 8.0


@dataclass
class ToyReport:
    records: int = 0
    cursor: str | None = None


def toy_sync(ctx: SyncContext, opts: SyncOptions) -> ToyReport:
    """Gives every account the section's NPS, and keeps a cursor like a real pull."""
    started = ctx.clock()
    section = ctx.section(TOY)
    ids = ctx.store.account_ids()
    progress = opts.progress("toy accounts")
    ctx.store.record_signals(SignalRow(a, "toy_nps", section.score, started, TOY) for a in ids)
    if progress is not None:
        progress(len(ids))
    return ToyReport(len(ids), ctx.advance_cursor(TOY, "answers", started))


@pytest.fixture
def toy() -> Iterator[Source]:
    entry = register(
        Source(
            name=TOY,
            config=ToyConfig,
            default=ToyConfig(),
            sync=toy_sync,
            describe="a toy NPS survey tool",
            metrics=lambda section: [("toy_nps", f"sources.{TOY}")],
        ),
        after=("accounts_file",),  # its answers are matched to the accounts
    )
    yield entry
    unregister(TOY)


@pytest.fixture
def toy_yaml(tmp_path: Path, toy: Source) -> Path:
    path = file_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["sources"][TOY] = {"enabled": True, "sync_every": "7m", "score": 9}
    data["scorecard"]["measures"]["toy_nps"] = {
        "label": "Toy NPS",
        "group": next(iter(data["scorecard"]["groups"])),
        "weight": 1,
        "metric": "toy_nps",
        "linear": {"from": 4, "to": 9},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_toy_source_is_in_the_config_and_the_schedule(toy_yaml: Path) -> None:
    config = load_config(toy_yaml)
    assert getattr(config.sources, TOY).score == 9
    assert "toy_nps" in config.metrics  # the scorecard may name its metric
    order = [s.name for s in enabled(config.sources)]
    assert order.index(TOY) > order.index("accounts_file")
    schedule = beat_schedule_for(config)
    assert schedule[f"sync-{TOY}"] == {
        "task": "tasks.sync_source",
        "schedule": 7 * 60.0,
        "args": (TOY,),
    }


def test_a_misspelt_key_in_the_toy_section_names_its_line(toy_yaml: Path) -> None:
    from healthscore.core.errors import ConfigError

    toy_yaml.write_text(toy_yaml.read_text().replace("score: 9", "scroe: 9"))
    with pytest.raises(ConfigError, match=rf"healthscore.yaml:\d+ sources.{TOY}.scroe"):
        load_config(toy_yaml)


def test_the_celery_task_syncs_the_toy_source(
    toy_yaml: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str
) -> None:
    from healthscore.worker import tasks

    monkeypatch.setenv("HEALTHSCORE_CONFIG", str(toy_yaml))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hs.db'}")
    monkeypatch.setenv("REDIS_URL", redis_url)
    tasks.runtime.cache_clear()
    try:
        assert tasks.sync_source.apply(args=("accounts_file",)).get()["records"] == 2
        result = tasks.sync_source.apply(args=(TOY,)).get()
    finally:
        if tasks.runtime.cache_info().currsize:
            tasks.runtime().store.close()
        tasks.runtime.cache_clear()
    assert result["records"] == 2 and result["cursor"]


def test_the_cli_syncs_and_lists_the_toy_source(
    toy_yaml: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hs.db'}")
    runner = CliRunner()
    synced = runner.invoke(app, ["sync", "--config", str(toy_yaml)])
    assert synced.exit_code == 0, synced.output
    results = json.loads(synced.stdout.strip().splitlines()[-1])
    assert list(results)[:2] == ["accounts_file", TOY]  # in dependency order
    assert results[TOY]["records"] == 2
    listed = runner.invoke(app, ["sources", "--config", str(toy_yaml)])
    assert listed.exit_code == 0, listed.output
    assert TOY in listed.stdout and "answers" in listed.stdout


def test_the_cycle_syncs_the_toy_source_and_scores_its_metric(
    toy_yaml: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'hs.db'}")
    rt = load_runtime(toy_yaml)
    try:
        pipeline = rt.pipeline()
        cycle = pipeline.run_cycle()
        assert cycle.syncs[TOY].records == 2
        assert cycle.scoring.scored == 2
        _account, explanation = pipeline.explain("a1")
        measure = next(m for m in explanation.as_dict()["measures"] if m["name"] == "toy_nps")
        assert float(measure["value"]) == 9 and measure["points"] == 100
    finally:
        rt.store.close()
