"""Scores: score runs, each account's scores and their history, and backfilled snapshots of
past moments."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, select, update

from .base import StoreBase
from .engine import upsert
from .models import ActionLog, BackfillRun, RuleStateRow, Score, ScoreRun, utcnow


class ScoresMixin(StoreBase):
    """Score runs and their scores; a run closes in one transaction with what it caused."""

    def start_run(self, scorecard_version: str, started_at: datetime | None = None) -> int:
        with self.session() as s:
            run = ScoreRun(scorecard_version=scorecard_version, started_at=started_at or utcnow())
            s.add(run)
            s.flush()
            return run.id

    def save_scores(
        self,
        run_id: int,
        rows: list[dict[str, Any]],
        intents: Iterable[dict[str, Any]] = (),
        rule_states: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Save one run's scores, the action intents they caused, the rules' states, and close
        the run — in one transaction, so a retried run can neither lose nor double an intent."""
        now = utcnow()
        with self.session() as s:
            upsert(
                s,
                RuleStateRow.__table__,
                list(rule_states),
                ["rule", "account_id"],
                ["true_since", "active", "episode", "last_fired"],
            )
            if rows:
                s.execute(Score.__table__.insert(), [{**r, "run_id": run_id} for r in rows])
            upsert(
                s,
                ActionLog.__table__,
                [
                    {**i, "status": "pending", "attempts": 0, "created_at": now, "updated_at": now}
                    for i in intents
                ],
                ["key"],
            )
            s.execute(
                update(ScoreRun)
                .where(ScoreRun.id == run_id)
                .values(finished_at=utcnow(), accounts_scored=len(rows))
            )

    def scores_as_of(self, at: datetime, exclude_run: int | None = None) -> dict[str, Score]:
        """Each account's most recent score at or before ``at`` (optionally ignoring one run).

        Most recent by ``scored_at`` (then id): a backfilled past snapshot, saved after newer
        live runs, is not mistaken for the latest score.
        """
        cond = [Score.scored_at <= at]
        if exclude_run is not None:
            cond.append(Score.run_id != exclude_run)
        when = (
            select(Score.account_id, func.max(Score.scored_at).label("at"))
            .where(*cond)
            .group_by(Score.account_id)
            .subquery()
        )
        newest = (
            select(func.max(Score.id).label("sid"))
            .join(when, and_(Score.account_id == when.c.account_id, Score.scored_at == when.c.at))
            .where(*cond)
            .group_by(Score.account_id)
            .subquery()
        )
        stmt = select(Score).join(newest, and_(Score.id == newest.c.sid))
        with self.session() as s:
            return {row.account_id: row for row in s.scalars(stmt)}

    def score_history(self, account_id: str) -> list[Score]:
        stmt = select(Score).where(Score.account_id == account_id).order_by(Score.scored_at)
        with self.session() as s:
            return list(s.scalars(stmt))

    def runs(self) -> list[ScoreRun]:
        with self.session() as s:
            return list(s.scalars(select(ScoreRun).order_by(ScoreRun.id)))

    def backfilled(self) -> dict[datetime, tuple[int, str]]:
        """Backfilled moments → (run id, scorecard version)."""
        with self.session() as s:
            return {
                r.as_of: (r.run_id, r.scorecard_version) for r in s.scalars(select(BackfillRun))
            }

    def save_backfill(
        self, as_of: datetime, scorecard_version: str, rows: list[dict[str, Any]]
    ) -> int:
        """Replace the backfilled snapshot at ``as_of`` (if any) by these scores, in one
        transaction; returns the new run id."""
        now = utcnow()
        with self.session() as s:
            old = s.get(BackfillRun, as_of)
            if old is not None:
                run_id = old.run_id
                s.delete(old)
                s.flush()
                s.execute(delete(Score).where(Score.run_id == run_id))
                s.execute(delete(ScoreRun).where(ScoreRun.id == run_id))
            run = ScoreRun(
                scorecard_version=scorecard_version,
                started_at=as_of,
                finished_at=now,
                accounts_scored=len(rows),
            )
            s.add(run)
            s.flush()
            s.add(
                BackfillRun(
                    as_of=as_of, run_id=run.id, scorecard_version=scorecard_version, created_at=now
                )
            )
            if rows:
                s.execute(Score.__table__.insert(), [{**r, "run_id": run.id} for r in rows])
            return run.id
