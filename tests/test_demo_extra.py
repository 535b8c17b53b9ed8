"""The development tooling is an extra: the runtime CLI runs without the sandbox, trustme and
matplotlib, says how to install the tooling when asked for it, and the demo's backtest report
goes to a folder of its own each run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from healthscore.backtest import report as report_html
from healthscore.backtest.run import Plan, backtest, score_dates
from healthscore.cli import plugins
from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml
from sandbox.demo.run_demo import backtest_dir

from .backtest_population import CONFIG, population

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "healthscore" / "healthscore.example.yaml"
HINT = "pip install 'healthscore[demo]' (from a checkout: pip install -e ./sandbox)"

# the `healthscore` command in an environment without the tooling and the report extra
WITHOUT_TOOLING = """
import importlib.metadata, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"sandbox", "trustme", "matplotlib"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
importlib.metadata.entry_points = lambda **_: []  # healthscore-sandbox not installed
from healthscore.cli.main import app

app(sys.argv[1:], prog_name="healthscore")
"""


def _without_tooling(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TOOLING, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_runtime_cli_runs_without_the_tooling() -> None:
    helped = _without_tooling("--help")
    assert helped.returncode == 0, helped.stderr
    assert "validate" in helped.stdout
    assert "The sandbox demo end to end (not installed: the demo extra)" in helped.stdout
    valid = _without_tooling("validate", str(EXAMPLE))
    assert valid.returncode == 0, valid.stderr
    for args in (("demo", "--accounts", "5"), ("sandbox", "serve", "--port-base", "9000")):
        asked = _without_tooling(*args)
        assert asked.returncode == 2, asked.stderr
        assert asked.stdout == "" and "Traceback" not in asked.stderr
        lines = asked.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith(HINT), lines
        assert lines[0].startswith(f"healthscore {args[0]} is development tooling")


def test_starting_the_cli_imports_no_plotting() -> None:
    probe = "import sys, healthscore.cli.main; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr


def _app(monkeypatch: pytest.MonkeyPatch, *found: EntryPoint) -> typer.Typer:
    monkeypatch.setattr(plugins, "entry_points", lambda group: list(found))
    app = typer.Typer()

    @app.command()
    def validate() -> None:
        """A runtime command."""

    plugins.load_plugins(app)
    return app


def test_the_entry_point_adds_demo_and_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint("sandbox", "sandbox.demo.demo_cmd:register", plugins.GROUP)
    app = _app(monkeypatch, entry)
    result = CliRunner().invoke(app, ["sandbox", "serve", "--help"])
    assert result.exit_code == 0 and "--port-base" in result.output
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--no-backtest" in result.output


def test_a_broken_install_says_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint("sandbox", "sandbox_missing_module:register", plugins.GROUP)
    result = CliRunner().invoke(_app(monkeypatch, entry), ["demo"])
    assert result.exit_code == 2
    assert "No module named 'sandbox_missing_module'" in result.output
    assert HINT in result.output


def test_each_demo_run_backtests_in_a_folder_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first, second = backtest_dir(None, None), backtest_dir(None, None)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.parent == second.parent == tmp_path
    assert backtest_dir(None, tmp_path / "kept") == tmp_path / "kept" / "backtest"
    assert backtest_dir(tmp_path / "work", None) == tmp_path / "work" / "backtest"


def test_the_report_without_matplotlib_keeps_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = config_from_document(parse_yaml(CONFIG, "healthscore.yaml")).scorecard
    pop = population(200, seed=8)
    plan = Plan(date(2026, 1, 5), date(2026, 6, 1), timedelta(days=28), timedelta(days=30))
    scored = score_dates(pop.scorer(card), plan.dates())
    _, report = backtest(card, scored.snapshots, pop.churn, plan, draws=5)
    monkeypatch.setattr(report_html, "pyplot", lambda: None)
    text = report_html.render_html(report)
    assert "<svg" not in text and "data-plot" not in text
    assert "pip install &#x27;healthscore[report]&#x27;" in text
    assert "Churn by grade" in text and text.count("<table") >= 6
