"""A bad scorecard fails at load with file, line and field — one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthscore.cli.main import app
from healthscore.config import load_config
from healthscore.core.errors import ConfigError

EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()


def error_for(tmp_path: Path, old: str, new: str) -> tuple[str, int]:
    """Load the example with one edit; return the error and the line of the edit."""
    assert old in EXAMPLE, old
    text = EXAMPLE.replace(old, new, 1)
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    line = text[: text.index(new)].count("\n") + 1  # of the edit's first line
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value), line


def test_overlapping_bands(tmp_path: Path) -> None:
    msg, line = error_for(
        tmp_path, "        - {below: 0.6, points: 50}", "        - {below: 0.2, points: 50}"
    )
    assert (
        "scorecard.measures.seat_utilization.bands: bands overlap: 'below: 0.2' comes "
        "after 'below: 0.3'" in msg
    )
    assert f"healthscore.yaml:{line - 2} " in msg  # the `bands:` line


def test_band_points_against_the_direction(tmp_path: Path) -> None:
    msg, _ = error_for(tmp_path, "        - {points: 100}", "        - {points: 20}")
    assert "seat_utilization.bands: with better: higher, band points must not fall" in msg


def test_linear_range_backwards_suggests_better_lower(tmp_path: Path) -> None:
    msg, line = error_for(tmp_path, "linear: {from: 3, to: 30}", "linear: {from: 30, to: 3}")
    assert (
        f"healthscore.yaml:{line} scorecard.measures.last_login.linear: 'from' (30) must "
        "be below 'to' (3); say `better: lower`" in msg
    )


def test_two_normalizations_on_one_measure(tmp_path: Path) -> None:
    msg, _ = error_for(
        tmp_path,
        "      boolean: {if_true: 100, if_false: 0}",
        "      boolean: {if_true: 100, if_false: 0}\n      percentile: true",
    )
    assert (
        "scorecard.measures.onboarding: give exactly one of linear, bands, percentile, "
        "boolean, categories (got boolean, percentile)" in msg
    )


def test_weights_that_sum_to_zero_in_a_segment(tmp_path: Path) -> None:
    msg, _ = error_for(
        tmp_path,
        "      weights:               # onboarding progress",
        "      group_weights: {deployment: 0, engagement: 0, adoption: 0, "
        "roi: 0}\n      weights:               # onboarding progress",
    )
    assert "scorecard.segments.0: weights sum to 0 in segment 'onboarding'" in msg


def test_segment_rule_on_a_missing_field(tmp_path: Path) -> None:
    msg, line = error_for(
        tmp_path, "{field: plan_tier, is: Enterprise}", "{field: plan_teir, is: Enterprise}"
    )
    assert (
        f"healthscore.yaml:{line} scorecard.segments.1.when.0.field: segment rule "
        "references a missing field 'plan_teir'" in msg
    )


def test_segment_weight_for_an_unknown_measure(tmp_path: Path) -> None:
    msg, line = error_for(tmp_path, "        exec_meetings: 3", "        exec_meeting: 3")
    assert (
        f"healthscore.yaml:{line} scorecard.segments.1.weights.exec_meeting: no measure "
        "named 'exec_meeting'" in msg
    )


def test_derived_metric_errors(tmp_path: Path) -> None:
    msg, line = error_for(
        tmp_path,
        "{ratio: [active_users_30d, licensed_seats]}",
        "{ratio: [active_users_30d, licenced_seats]}",
    )
    assert (
        f"healthscore.yaml:{line} scorecard.derived.seat_utilization.ratio: unknown "
        "metric 'licenced_seats'" in msg
    )
    msg, _ = error_for(
        tmp_path, "{difference: [feature_adoption, nps]}", "{difference: [feature_adoption, csat]}"
    )
    assert "'csat' is not a measure" in msg
    msg, _ = error_for(
        tmp_path, "{days_since: last_login_at}", "{days_since: last_login_at, ratio: [a, b]}"
    )
    assert (
        "scorecard.derived.days_since_login: give exactly one of ratio, change, "
        "days_since, count, difference, window, days_until, sum (got ratio, days_since)" in msg
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = EXAMPLE.replace("metric: feature_adoption_pct", "metric: feature_adoptoin_pct").replace(
        "{field: plan_tier, is: Enterprise}", "{field: tier, is: Enterprise}"
    )
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "feature_adoptoin_pct" in str(err.value) and "'tier'" in str(err.value)


def test_validate_cli_checks_a_file_without_running_anything(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(EXAMPLE)
    result = CliRunner().invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "11 measures, 7 derived metrics, 2 segments" in said
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.replace("linear: {from: 10, to: 60}", "linear: {from: 60, to: 10}"))
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "bad.yaml:" in said and "measures.feature_adoption.linear: 'from' (60)" in said
