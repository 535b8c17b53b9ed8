"""A scoring run: score every account now, record the run, fire the alert rules and queue the
changed health fields for each CRM's write-back."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from actions import ENTERED_RED, Intent, RuleContext, RuleState, evaluate
from connectors.registry import crms
from healthscore.core.durations import format_duration
from healthscore.governance.apply import explain_with_override, govern
from healthscore.governance.overrides import find_account
from healthscore.governance.versioning import scorecard_version
from healthscore.pipeline.writeback import queue_changes
from scoring import INSUFFICIENT, Explanation, ScoreBatch, explain, missing_measures, reasons_for
from scoring.churn_model import churn_risk, crm_values
from store.models import Account, Score

if TYPE_CHECKING:
    from connectors.contract import SyncContext
    from healthscore.config import Config
    from store import Store

log = logging.getLogger(__name__)

CRM_GRADES = {
    "red": "Red",
    "yellow": "Yellow",
    "green": "Green",
    "insufficient_data": "Insufficient Data",
}
REASONS_MAX = 1000


@dataclass
class ScoreReport:
    run_id: int | None = None
    scored: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    entered_red: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # rule → intents this run
    writes_queued: int = 0
    scorecard_version: str = ""
    overrides_active: int = 0
    stale_accounts: int = 0
    stale_sources: list[str] = field(default_factory=list)


def trend_text(delta: float | None, window: str) -> str | None:
    if delta is None:
        return None
    points = round(delta)
    arrow = "↑" if points > 0 else "↓" if points < 0 else "→"
    sign = "+" if points > 0 else "−" if points < 0 else ""
    return f"{arrow} {sign}{abs(points)} pts vs {window}"


class PastScores:
    """Each account's latest score ``ago`` before ``now``, read once per lookback: a run's
    trend, deltas, scorecard-change marks and score-drop rules often share one window."""

    def __init__(self, store: Store, now: datetime) -> None:
        self.store, self.now = store, now
        self._read: dict[timedelta, dict[str, Score]] = {}

    def __call__(self, ago: timedelta) -> dict[str, Score]:
        if ago not in self._read:
            self._read[ago] = self.store.scores_as_of(self.now - ago)
        return self._read[ago]


def score_deltas(batch: ScoreBatch, then: Mapping[str, Score]) -> dict[str, float]:
    """Score now minus the score ``then`` (accounts scored both times only)."""
    out = {}
    for i, account_id in enumerate(batch.account_ids):
        old = then.get(account_id)
        if old is not None and old.score is not None and not math.isnan(batch.score[i]):
            out[account_id] = round(float(batch.score[i]) - old.score, 2)
    return out


def _churn_fields(churn: Any, at_risk: Any, i: int) -> dict[str, float | None]:
    """One account's churn probability and ARR at risk (empty without a churn model)."""
    if churn is None:
        return {}
    p, a = float(churn[i]), float(at_risk[i])
    return {
        "churn_probability": None if math.isnan(p) else p,
        "arr_at_risk": None if math.isnan(a) else a,
    }


class ScoringRun:
    """Score, record and queue (a mixin of ``Pipeline``)."""

    config: Config
    store: Store
    clock: Callable[[], datetime]
    context: SyncContext
    alert_channel: str | None

    @property
    def scorecard_version(self) -> str:
        """The scorecard's content hash, plus the config file's git commit when it has one."""
        return scorecard_version(self.config.scorecard, self.config_path)

    def score(self, *, dry_run: bool = False) -> tuple[ScoreReport, ScoreBatch]:
        now = self.clock()
        accounts = self.store.accounts()
        previous = self.store.scores_as_of(now)
        batch = self.compute(now, accounts=accounts, previous=previous, live=True)
        window = self.config.scoring.trend_window
        version = self.scorecard_version
        past = PastScores(self.store, now)
        gov = govern(
            self, batch, now, version=version, baseline=past(window), act=not dry_run
        )  # overrides replace grades in the batch
        report = ScoreReport(
            scored=len(batch.account_ids),
            grades=dict(Counter(batch.grade.tolist())),
            scorecard_version=version,
            overrides_active=len(gov.overrides),
            stale_accounts=len(gov.stale),
            stale_sources=[a.source for a in gov.ages.values() if a.stale],
        )
        if dry_run:
            return report, batch
        run_id = self.store.start_run(version, started_at=now)
        lookbacks = {"7d": timedelta(days=7), "30d": timedelta(days=30), "trend": window}
        deltas = {label: score_deltas(batch, past(ago)) for label, ago in lookbacks.items()}
        by_id = {a.id: a for a in accounts}
        model = self.config.scorecard.churn_model
        churn, at_risk = (
            churn_risk(model, batch.score, [by_id[a].attributes for a in batch.account_ids])
            if model is not None
            else (None, None)
        )
        rows, payloads, desired = [], {}, {}
        for i, account_id in enumerate(batch.account_ids):
            value = None if math.isnan(batch.score[i]) else float(batch.score[i])
            risk = _churn_fields(churn, at_risk, i)
            grade = str(batch.grade[i])
            reasons = reasons_for(batch, i)
            reason_text = [str(r) for r in reasons]
            if grade == INSUFFICIENT:
                reason_text = [
                    "Insufficient data: missing " + ", ".join(missing_measures(batch, i))
                ]
            reason_text = gov.reasons(account_id, reason_text)
            delta = deltas["trend"].get(account_id)
            rows.append(
                {
                    "account_id": account_id,
                    "scored_at": now,
                    "score": value,
                    "grade": grade,
                    "coverage": float(batch.coverage[i]),
                    "groups": {
                        g: (None if math.isnan(v[i]) else round(float(v[i]), 2))
                        for g, v in batch.groups.items()
                    },
                    "reasons": {
                        "top": [r.as_dict() for r in reasons],
                        "segment": batch.segment_name(i),
                        "delta_7d": deltas["7d"].get(account_id),
                        "delta_30d": deltas["30d"].get(account_id),
                        **gov.row_reasons(account_id),
                    },
                    "churn_probability": risk.get("churn_probability"),
                    "arr_at_risk": risk.get("arr_at_risk"),
                }
            )
            account = by_id[account_id]
            payloads[account_id] = {
                "name": account.name,
                "score": value,
                "grade": grade,
                "previous_grade": previous[account_id].grade if account_id in previous else None,
                "delta": delta,
                "delta_window": format_duration(window),
                "reasons": reason_text,
                "owner_email": account.owner_email,
                "owner_name": account.owner_name,
                "crm_url": self._record_url(account_id),
                "renewal_date": account.attributes.get("renewal_date"),
                "arr": account.attributes.get("arr"),
                **gov.payload(account_id),
                **({} if model is None else {**risk, "churn_horizon_days": model.horizon_days}),
            }
            desired[account_id] = {
                "score": None if value is None else float(round(value)),
                "grade": CRM_GRADES[grade],
                "trend": gov.trend(account_id, trend_text(delta, format_duration(window))),
                "reasons": "; ".join(reason_text)[:REASONS_MAX] or None,
                "updated": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "stale": account_id in gov.stale,
            }
            if model is not None and churn is not None and at_risk is not None:
                desired[account_id].update(crm_values(model, churn[i], at_risk[i]))
        intents, states = self._fire_rules(batch, now, payloads, past)
        intents += gov.intents
        self.store.save_scores(
            run_id,
            rows,
            [
                {
                    "key": i.key,
                    "rule": i.rule,
                    "kind": i.kind,
                    "account_id": i.account_id,
                    "target": i.target,
                    "payload": i.payload,
                }
                for i in intents
            ],
            [
                {
                    "rule": r,
                    "account_id": a,
                    "true_since": st.true_since,
                    "active": st.active,
                    "episode": st.episode,
                    "last_fired": st.last_fired,
                }
                for (r, a), st in states.items()
            ],
        )
        report.run_id = run_id
        fired = {(i.rule, i.account_id) for i in intents}  # an account once per rule
        report.entered_red = sum(1 for r, _ in fired if r == ENTERED_RED.name)
        report.alerts = dict(Counter(r for r, _ in fired))
        grades = {a: p["grade"] for a, p in payloads.items()}
        for crm in crms():
            if crm.write_back(self.config.sources):
                report.writes_queued += queue_changes(
                    self.store, crm.name, crm.select(self.context, desired, grades)
                )
        log.info(
            "scored %d accounts (%s); %d entered red; %d CRM writes queued",
            report.scored,
            report.grades,
            report.entered_red,
            report.writes_queued,
        )
        return report, batch

    def explain(self, account: str) -> tuple[Account, Explanation]:
        """Explain one account (by id or exact, case-insensitive name) as the batch scores it.

        The whole batch is scored, so percentile ranks and hysteresis match a real run.
        """
        accounts = self.store.accounts()
        found = find_account(self.store, account, accounts)
        now = self.clock()
        batch = self.compute(
            now, accounts=accounts, previous=self.store.scores_as_of(now), live=True
        )
        row = batch.index(found.id)
        exp = explain(batch, row)
        model = self.config.scorecard.churn_model
        if model is not None and model.arr_attribute is not None:
            _, at_risk = churn_risk(model, batch.score[row : row + 1], [found.attributes])
            if not math.isnan(at_risk[0]):
                exp = replace(exp, arr_at_risk=float(at_risk[0]))
        return found, explain_with_override(self.store, exp, now)

    def _fire_rules(
        self,
        batch: ScoreBatch,
        now: datetime,
        payloads: dict[str, dict[str, Any]],
        past: PastScores,
    ) -> tuple[list[Intent], dict[tuple[str, str], RuleState]]:
        """Evaluate every alert rule on this run's scores (see ``actions.rules``)."""
        rules = self.config.active_rules
        if not rules:
            return [], {}
        windows = {r.when.score_dropped.within for r in rules if r.when.score_dropped}
        scores_then = {
            window.total_seconds(): {
                a: s.score for a, s in past(window).items() if s.score is not None
            }
            for window in windows
        }
        states = {
            k: RuleState(v.true_since, v.active, v.episode, v.last_fired)
            for k, v in self.store.rule_states().items()
        }
        sequences = any(a.email is not None and a.email.steps for r in rules for a in r.actions)
        known = self.store.action_keys("email") if sequences else set()
        return evaluate(
            rules, batch, RuleContext(now, scores_then), states, payloads, self.alert_channel, known
        )

    def preview_rules(self) -> list[Intent]:
        """The intents a scoring run now would produce (nothing is stored or sent)."""
        now = self.clock()
        accounts = self.store.accounts()
        previous = self.store.scores_as_of(now)
        batch = self.compute(now, accounts=accounts, previous=previous)
        by_id = {a.id: a for a in accounts}
        payloads = {}
        for i, account_id in enumerate(batch.account_ids):
            account = by_id[account_id]
            payloads[account_id] = {
                "name": account.name,
                "grade": str(batch.grade[i]),
                "score": None if math.isnan(batch.score[i]) else float(batch.score[i]),
                "owner_email": account.owner_email,
                "owner_name": account.owner_name,
                "crm_url": self._record_url(account_id),
            }
        intents, _ = self._fire_rules(batch, now, payloads, PastScores(self.store, now))
        return intents

    def _record_url(self, account_id: str) -> str | None:
        """A link to the account in the record system (for alerts), when it has one."""
        for crm in crms():
            if crm.record_system(self.config.sources):
                return crm.record_url(self.context, account_id)
        return None
