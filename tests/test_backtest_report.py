"""The HTML report: one self-contained file with the plots and tables, opened in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from healthscore.backtest.run import Plan, backtest, fit, fit_plan, score_dates, write_report
from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml

from .backtest_population import CONFIG, population

PLOTS = {
    "ROC curve",
    "Churn rate by grade",
    "Score distribution over time",
    "Per-measure AUC",
    "Calibration",
}


@pytest.fixture(scope="module")
def report_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    card = config_from_document(parse_yaml(CONFIG, "healthscore.yaml")).scorecard
    pop = population(600, seed=8)
    plan = Plan(date(2026, 1, 5), date(2026, 9, 1), timedelta(days=14), timedelta(days=30))
    days, keep = fit_plan(plan, date(2026, 12, 31), 0.34, bands=False)
    scored = score_dates(pop.scorer(card), days, keep=keep)
    data, report = backtest(card, scored.snapshots, pop.churn, plan, draws=20)
    fitted = fit(card, CONFIG, "healthscore.yaml", data, scored.tables)
    report["fit"] = fitted.as_dict("fitted.yaml")
    json_path, html_path = write_report(report, tmp_path_factory.mktemp("report"))
    return json_path, html_path, report


class _Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.plots: list[str] = []
        self.refs: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "figure" and a.get("data-plot"):
            self.plots.append(a["data-plot"] or "")
        for key in ("src", "href", "xlink:href"):
            if a.get(key):
                self.refs.append(a[key] or "")
        self._in_h2 = tag == "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data.strip())
            self._in_h2 = False


def test_report_has_every_plot_and_table_and_nothing_external(report_files) -> None:
    json_path, html_path, report = report_files
    text = html_path.read_text()
    outline = _Outline()
    outline.feed(text)
    assert set(outline.plots) == PLOTS
    assert outline.tags.count("svg") == len(PLOTS)
    for heading in (
        "Churn by grade",
        "Churn by score decile",
        "Calibration",
        "Which measures predict churn here",
        "Grade flapping",
        "Snapshots",
        "Fitted scorecard (proposal)",
    ):
        assert heading in outline.headings
    assert outline.tags.count("table") >= 7
    # self-contained: no script, stylesheet link, image or font fetched from anywhere
    assert "script" not in outline.tags and "link" not in outline.tags
    assert all(ref.startswith("#") for ref in outline.refs), outline.refs
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", text)
    # the numbers shown are the JSON's
    saved = json.loads(json_path.read_text())
    assert saved["summary"]["roc_auc"] == pytest.approx(report["summary"]["roc_auc"])
    assert f"{saved['summary']['roc_auc']:.3f}" in text
    assert f"{saved['fit']['auc_fitted']:.3f}" in text
    for m in saved["measures"]:
        assert m["label"] in text


def test_report_escapes_names(tmp_path: Path, report_files) -> None:
    _, _, report = report_files
    report = json.loads(json.dumps(report, default=str))
    report["measures"][0]["label"] = "<script>alert(1)</script>"
    _, html_path = write_report(report, tmp_path)
    text = html_path.read_text()
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def test_report_renders_in_headless_chromium(report_files, tmp_path: Path) -> None:
    if CHROMIUM is None:  # .ci/run installs it: in CI a missing browser is a failure
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    _, html_path, _ = report_files
    shot = tmp_path / "report.png"
    common = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    subprocess.run(
        [*common, "--window-size=1200,3000", f"--screenshot={shot}", html_path.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1200, 3000)
    lo, hi = image.getextrema()
    assert hi - lo > 100  # not a blank page
    dom = subprocess.run(
        [*common, "--dump-dom", html_path.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("<svg") == len(PLOTS)
    assert "Does the score predict churn?" in dom
