"""``healthscore backtest`` and ``healthscore fit``: score the past, compare with outcomes.

Each snapshot is scored through the pipeline's point-in-time path (the live scorer on the
signals known at the snapshot), grades carried from one snapshot to the next for hysteresis
as live runs do. The numbers come from :mod:`scoring.backtest` and :mod:`scoring.fit`; this
module wires them to the store, writes the JSON and HTML report and the fitted scorecard.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from healthscore.backtest.held_out import (  # noqa: F401  (part of this module's API)
    compare_held_out,
    compared_rows,
    held_out_detail,
)
from healthscore.backtest.pieces import Kept, join, rescore_kept, snapshot_of
from healthscore.backtest.plan import Plan
from healthscore.config import config_from_document
from healthscore.core.errors import ConfigError
from healthscore.core.yaml_edit import WeightChanges, rewrite, segment_changes, unified_diff
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.point_in_time import snapshot_moment
from scoring import ScoreBatch, Scorecard
from scoring.backtest import (
    Labeled,
    Snapshot,
    json_safe,
    label,
    run_backtest,
)
from scoring.fit import FitResult, Holdout, band_thresholds, fit_weights, split_dates
from scoring.learn.calibrate import calibration_report

Progress = Callable[[date], None]
# scores every account as of each datetime, in order; grades of the previous snapshot in
# hand for hysteresis (the pipeline's point-in-time API)
SnapshotScorer = Callable[[Sequence[datetime]], Iterable[tuple[datetime, ScoreBatch]]]


def as_of(day: date) -> datetime:
    """A snapshot scores what was known by the end of its day (UTC)."""
    return snapshot_moment(day)


def observable(plan: Plan, observed_until: date) -> tuple[list[date], list[date]]:
    """(dates whose whole horizon has known outcomes, dates left out)."""
    keep = [d for d in plan.dates() if d + timedelta(days=plan.horizon.days) <= observed_until]
    return keep, [d for d in plan.dates() if d not in keep]


@dataclass
class Scored:
    snapshots: list[Snapshot]
    # kept for re-scoring: a date's batches, one per chunk of accounts
    tables: dict[date, list[ScoreBatch]] = field(default_factory=dict)


def score_dates(
    scorer: SnapshotScorer,
    days: Sequence[date],
    *,
    keep: set[date] | None = None,
    progress: Progress | None = None,
) -> Scored:
    """Score every date; keep the batches of ``keep`` (to re-score with another card).

    A chunked scorer yields every date once per chunk of accounts: only scores, grades and
    points of each piece are held, joined per date at the end (``pieces.join``); progress
    is told of a date when its first piece is scored."""
    out = Scored([])
    found: dict[date, list[Snapshot]] = {}
    for when, batch in scorer([as_of(d) for d in days]):
        day = when.date()
        first = day not in found
        found.setdefault(day, []).append(snapshot_of(day, batch))
        if keep and day in keep:
            out.tables.setdefault(day, []).append(batch)
        if progress is not None and first:
            progress(day)
    out.snapshots = [join(found[d]) for d in found]
    return out


def rescore(card: Scorecard, batches: Mapping[date, Kept]) -> list[Snapshot]:
    """The same accounts and signals scored by another card (same derived metrics, so the
    scorer's own code path on the kept tables), grades carried for hysteresis."""
    return rescore_kept(card, batches, as_of)


def report_json(result: dict[str, Any], card: Scorecard, plan: Plan) -> dict[str, Any]:
    return {
        "scorecard": {"name": card.name, "version": card.version},
        "plan": plan.describe(),
        **result,
    }


def backtest(
    card: Scorecard,
    snapshots: Sequence[Snapshot],
    churn: Mapping[str, date | None],
    plan: Plan,
    *,
    draws: int = 200,
    seed: int = 0,
) -> tuple[Labeled, dict[str, Any]]:
    data = label(snapshots, churn, plan.horizon, list(card.measures))
    if not len(data):
        raise ConfigError(
            "no account was a customer at any snapshot: check --from/--to and "
            "that accounts and history are imported"
        )
    result = run_backtest(
        data,
        labels={n: m.label for n, m in card.measures.items()},
        weights={n: m.weight for n, m in card.measures.items()},
        draws=draws,
        seed=seed,
    )
    report = report_json(result.as_dict(), card, plan)
    # the score as a churn probability: expected against observed churn per decile, each
    # snapshot's expectation from the map fitted on the other snapshots
    report["expected_churn"] = json_safe(
        calibration_report(data.score, data.churned, data.snapshot, plan.horizon.days)
    )
    return data, report


# -- fit ----------------------------------------------------------------------------------------
@dataclass
class Fitted:
    result: FitResult
    text: str  # the fitted YAML
    card: Scorecard
    diff: str
    changes: list[dict[str, Any]]
    auc_default: float
    auc_fitted: float
    rows_compared: int
    roc_fitted: dict[str, list[float]]
    roc_default: dict[str, list[float]]
    bands: tuple[int, int] | None = None
    held_out: dict[str, Any] = field(default_factory=dict)  # scored-only AUCs, insufficient
    judged: Labeled | None = None  # the fitted card's rows on the judged snapshots

    def as_dict(self, path: str) -> dict[str, Any]:
        return json_safe(
            {
                **self.result.as_dict(),
                "auc_default": self.auc_default,
                "auc_fitted": self.auc_fitted,
                "rows_compared": self.rows_compared,
                "held_out": self.held_out,
                "weight_changes": self.changes,
                "diff": self.diff,
                "path": path,
                "roc_fitted": self.roc_fitted,
                "roc_default": self.roc_default,
                "bands": self.bands,
                "fitted_version": self.card.version,
            }
        )


def fit_plan(
    plan: Plan, observed_until: date, holdout: Holdout, bands: bool
) -> tuple[list[date], set[date]]:
    """The dates to score, and those whose batches must be kept for re-scoring."""
    days, _ = observable(plan, observed_until)
    try:
        train, test, _ = split_dates(days, plan.horizon, holdout)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    keep = {days[i] for i in test} | ({days[i] for i in train} if bands else set())
    return days, keep


def fit(
    card: Scorecard,
    config_text: str,
    config_path: str,
    data: Labeled,
    batches: Mapping[date, Kept],
    *,
    holdout: Holdout = 0.34,
    bands: bool = False,
) -> Fitted:
    """Fit weights on the early snapshots, write them into the YAML text, validate it, and
    judge both cards on the later snapshots (the same rows, scored by each)."""
    groups = {n: m.group for n, m in card.measures.items()}
    weights = {n: m.weight for n, m in card.measures.items()}
    group_w = {n: g.weight for n, g in card.groups.items()}
    try:
        result = fit_weights(data, groups, weights, group_w, holdout=holdout)
    except ValueError as exc:
        raise ConfigError(f"cannot fit: {exc}") from None
    changes = WeightChanges(measures=result.weights, groups=result.group_weights)
    changes.segments = segment_changes([s.weights for s in card.segments], weights, result.weights)
    changes.segment_groups = segment_changes(
        [s.group_weights for s in card.segments], group_w, result.group_weights
    )
    text = rewrite(config_text, changes, config_path)
    fitted = load_fitted_card(text, config_path)
    thresholds = None
    if bands:
        train_days = {d for d in batches if d.isoformat() in result.split.train_dates}
        train_rows = label(
            rescore(fitted, {d: batches[d] for d in train_days}),
            _churn_of(data),
            data.horizon,
            data.measure_names,
        )
        thresholds = band_thresholds(train_rows.score, train_rows.churned)
        if thresholds is not None:
            changes.grades = {"red": thresholds[0], "yellow": thresholds[1]}
            text = rewrite(config_text, changes, config_path)
            fitted = load_fitted_card(text, config_path)
    test_days = {d: batches[d] for d in batches if d.isoformat() in result.split.test_dates}
    held = label(rescore(fitted, test_days), _churn_of(data), data.horizon, data.measure_names)
    current = data.take(
        np.flatnonzero(
            np.isin(
                data.snapshot,
                [data.dates.index(date.fromisoformat(d)) for d in result.split.test_dates],
            )
        )
    )
    auc_default, auc_fitted, rows, roc, roc_default = compare_held_out(current, held)
    table = [
        {"measure": f"measure {n}", "old": weights[n], "new": result.weights[n]}
        for n in card.measures
    ] + [
        {"measure": f"group {g}", "old": group_w[g], "new": result.group_weights[g]}
        for g in card.groups
    ]
    for i, seg in changes.segments.items():
        table += [
            {
                "measure": f"segment {card.segments[i].name}: {n}",
                "old": card.segments[i].weights[n],
                "new": round(v, 2),
            }
            for n, v in seg.items()
        ]
    if thresholds is not None:
        table += [
            {"measure": "grades red", "old": card.grades.red, "new": thresholds[0]},
            {"measure": "grades yellow", "old": card.grades.yellow, "new": thresholds[1]},
        ]
    return Fitted(
        result,
        text,
        fitted,
        unified_diff(config_text, text, config_path, f"{config_path} (fitted)"),
        table,
        auc_default,
        auc_fitted,
        rows,
        roc,
        roc_default,
        thresholds,
        held_out_detail(current, held),
        held,
    )


def load_fitted_card(text: str, path: str) -> Scorecard:
    try:
        return config_from_document(parse_yaml(text, f"{path} (fitted)")).scorecard
    except ConfigError as exc:  # a bug here, not the user's: say so plainly
        raise ConfigError(f"the fitted scorecard did not validate: {exc}") from None


def _churn_of(data: Labeled) -> Mapping[str, date | datetime | None]:
    return data.churn_dates


# -- files --------------------------------------------------------------------------------------
def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    from healthscore.backtest.report import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "backtest.json", out_dir / "backtest.html"
    json_path.write_text(json.dumps(json_safe(report), indent=1), encoding="utf-8")
    html_path.write_text(render_html(json_safe(report)), encoding="utf-8")
    return json_path, html_path


def pipeline_scorer(
    pipeline: Any, outcomes: Mapping[str, Any] | None = None, *, chunk: int | None = None
) -> SnapshotScorer:
    """Snapshots of the store's history, ``chunk`` accounts at a time (default 50,000, or
    ``$HEALTHSCORE_CHUNK_ACCOUNTS``; see ``healthscore.pipeline.chunks``): each chunk's
    history is read once and each date scored by the live scorer on what was known by its
    end; accounts not started yet or churned by then (``outcomes``) are left out."""
    from healthscore.pipeline.chunks import ChunkedScoring
    from healthscore.pipeline.outcomes import churned_by

    def run(times: Sequence[datetime]) -> Iterable[tuple[datetime, ScoreBatch]]:
        scoring = ChunkedScoring(
            pipeline.store,
            pipeline.config.scorecard,
            chunk=chunk,
            start_attribute=pipeline.start_attribute,
        )
        excluded = None if outcomes is None else (lambda m: churned_by(outcomes, m))
        return scoring.snapshots([snapshot_moment(t) for t in times], excluded=excluded)

    return run


# -- one evaluation, shared by the commands and the demo ------------------------------------------
@dataclass
class Evaluation:
    report: dict[str, Any]
    data: Labeled
    fitted: Fitted | None = None
    fit_error: str | None = None


def evaluate(
    card: Scorecard,
    scorer: SnapshotScorer,
    churn: Mapping[str, date | None],
    plan: Plan,
    *,
    observed_until: date,
    draws: int = 200,
    seed: int = 0,
    fit_card: tuple[str, str] | None = None,
    holdout: Holdout = 0.34,
    bands: bool = False,
    progress: Progress | None = None,
    strict_fit: bool = True,
) -> Evaluation:
    """Score each snapshot once; backtest; with ``fit_card`` = (YAML text, its path) also fit
    on the earlier snapshots and judge both cards on the later ones."""
    if fit_card is not None:
        days, keep = fit_plan(plan, observed_until, holdout, bands)
    else:
        days, keep = observable(plan, observed_until)[0], set()
    if not days:
        raise ConfigError(
            f"no snapshot from {plan.start} to {plan.end} has outcomes known "
            f"for its whole {plan.horizon.days}-day horizon (known until "
            f"{observed_until}); move --to back or shorten --horizon"
        )
    scored = score_dates(scorer, days, keep=keep, progress=progress)
    data, report = backtest(card, scored.snapshots, churn, plan, draws=draws, seed=seed)
    report["summary"]["censored_snapshots"] = [
        d.isoformat() for d in observable(plan, observed_until)[1]
    ]
    fitted, error = None, None
    if fit_card is not None:
        try:
            fitted = fit(
                card, fit_card[0], fit_card[1], data, scored.tables, holdout=holdout, bands=bands
            )
        except ConfigError as exc:  # e.g. no churner in the fitting snapshots
            if strict_fit:
                raise
            error = str(exc)
    return Evaluation(report, data, fitted, error)


def churn_dates(outcomes: Mapping[str, Any]) -> dict[str, date | None]:
    """account id → churn date, from ``healthscore.pipeline.outcomes.load_outcomes``' Outcomes."""
    return {a: o.churn_date for a, o in outcomes.items()}
