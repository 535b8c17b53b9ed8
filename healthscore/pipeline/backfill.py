"""``healthscore backfill``: the score history at past dates, from the stored history.

Each snapshot date D is scored as of the end of D through the live scorer (point-in-time
values, see ``healthscore.pipeline.point_in_time``) and saved as a score run marked as backfilled
(``backfill_runs``). Re-running is safe: a snapshot already backfilled with the same scorecard
version is skipped, one made with another version (or with ``replace``) is replaced — never
doubled. No alert fires and nothing is written to a CRM.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from healthscore.core.errors import ConfigError
from healthscore.pipeline.outcomes import churned_by, load_outcomes
from healthscore.pipeline.point_in_time import snapshot_moment
from healthscore.pipeline.scoring_run import PastScores, score_deltas
from scoring import INSUFFICIENT, ScoreBatch, missing_measures, reasons_for

if TYPE_CHECKING:
    from healthscore.pipeline.cycle import Pipeline


@dataclass
class BackfillReport:
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    saved: int = 0
    replaced: int = 0
    skipped: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "snapshots": len(self.snapshots),
            "saved": self.saved,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
        }


def snapshot_dates(start: date, end: date, every: timedelta) -> list[date]:
    """``start``, ``start + every`` … up to ``end`` (whole days)."""
    step = int(every.total_seconds() // 86400)
    if step < 1 or every.total_seconds() % 86400:
        raise ConfigError(f"--every must be whole days (e.g. 7d); got {every}")
    if end < start:
        raise ConfigError(f"--to ({end}) is before --from ({start})")
    return [start + timedelta(days=k) for k in range(0, (end - start).days + 1, step)]


def score_rows(
    batch: ScoreBatch, at: datetime, deltas: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """``scores`` rows of a batch, shaped like a live run's."""
    rows = []
    for i, account_id in enumerate(batch.account_ids):
        value = None if math.isnan(batch.score[i]) else float(batch.score[i])
        grade = str(batch.grade[i])
        reasons = reasons_for(batch, i)
        top = [r.as_dict() for r in reasons]
        rows.append(
            {
                "account_id": account_id,
                "scored_at": at,
                "score": value,
                "grade": grade,
                "coverage": float(batch.coverage[i]),
                "groups": {
                    g: (None if math.isnan(v[i]) else round(float(v[i]), 2))
                    for g, v in batch.groups.items()
                },
                "reasons": {
                    "top": top,
                    "segment": batch.segment_name(i),
                    "delta_7d": deltas["7d"].get(account_id),
                    "delta_30d": deltas["30d"].get(account_id),
                    "backfilled": True,
                    **({"missing": missing_measures(batch, i)} if grade == INSUFFICIENT else {}),
                },
            }
        )
    return rows


def backfill(
    pipeline: Pipeline,
    start: date,
    end: date,
    every: timedelta,
    *,
    dry_run: bool = False,
    replace: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> BackfillReport:
    """Score and save every snapshot from ``start`` to ``end``; see the module docstring."""
    started = time.perf_counter()
    days = snapshot_dates(start, end, every)
    today = pipeline.clock().date()
    if end >= today:
        raise ConfigError(
            f"--to must be a past date (before {today}); the score of today "
            "comes from `healthscore score`"
        )
    version = pipeline.config.scorecard.version
    done = pipeline.store.backfilled()
    outcomes = load_outcomes(pipeline.config, pipeline.store)
    report = BackfillReport(dry_run=dry_run)
    for moment, batch in pipeline.score_at_dates(days, outcomes=outcomes or None):
        grades = {g: int((batch.grade == g).sum()) for g in sorted(set(batch.grade.tolist()))}
        held = done.get(moment)
        action = "saved"
        if held is not None:
            action = "skipped" if held[1] == version and not replace else "replaced"
        if action != "skipped" and not dry_run:
            past = PastScores(pipeline.store, moment)
            deltas = {
                "7d": score_deltas(batch, past(timedelta(days=7))),
                "30d": score_deltas(batch, past(timedelta(days=30))),
            }
            pipeline.store.save_backfill(moment, version, score_rows(batch, moment, deltas))
        setattr(report, action, getattr(report, action) + 1)
        item = {
            "date": moment.date().isoformat(),
            "accounts": len(batch),
            "grades": grades,
            "action": action,
            "churned_excluded": len(churned_by(outcomes, moment)),
        }
        report.snapshots.append(item)
        if progress is not None:
            progress(item)
    report.seconds = time.perf_counter() - started
    return report


__all__ = ["BackfillReport", "backfill", "score_rows", "snapshot_dates", "snapshot_moment"]
