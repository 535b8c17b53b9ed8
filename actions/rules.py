"""Rules over score state and history that produce action intents — vectorized.

Each rule's condition is evaluated for every account at once (NumPy over the score batch).
Per (rule, account) the store keeps a small state: since when the condition has held, whether
an episode is open, its number and when it last fired. A rule fires when the condition has
held for ``for`` and no episode is open and the cooldown since the last firing has passed; the
episode closes when the condition stops holding. An intent's idempotency key names the rule,
the account and the episode number, so a retried run can never produce a second intent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from scoring import ScoreBatch

from .rule_model import Rule

DAY = 86400.0


@dataclass(frozen=True)
class Intent:
    key: str
    rule: str
    kind: str
    account_id: str
    target: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class RuleState:
    true_since: datetime | None = None
    active: bool = False
    episode: int = 0
    last_fired: datetime | None = None


@dataclass(frozen=True)
class RuleContext:
    """What conditions read besides the batch: older scores for drops."""

    now: datetime
    scores_then: Mapping[float, Mapping[str, float]]  # seconds ago → account → score


def _column(batch: ScoreBatch, metric: str) -> np.ndarray:
    return batch.table.column(metric)


def condition(rule: Rule, batch: ScoreBatch, ctx: RuleContext) -> tuple[np.ndarray, list[str]]:
    """(holds per account, why per account) — ``why`` only filled where it holds."""
    t = rule.when
    score = batch.score
    with np.errstate(invalid="ignore"):
        if t.grade_is is not None:
            held = batch.grade == t.grade_is
            why = f"grade is {t.grade_is}"
            whys = [why] * len(batch)
        elif t.score_dropped is not None:
            window = t.score_dropped.within.total_seconds()
            old = ctx.scores_then.get(window, {})
            then = np.array([old.get(a, np.nan) for a in batch.account_ids])
            drop = then - score
            held = drop >= t.score_dropped.points
            whys = [f"score dropped {d:.0f} points in {window / DAY:g} days" for d in drop]
        elif t.score_below is not None:
            held = score < t.score_below
            whys = [f"score below {t.score_below:g}"] * len(batch)
        elif t.onboarding_not_past is not None:
            spec = t.onboarding_not_past
            age = _column(batch, spec.age_metric)
            held = (age >= spec.by_day) & ~(score >= spec.score)
            whys = [f"not past {spec.score:g} by day {spec.by_day} (day {a:.0f})" for a in age]
        elif t.renewal_within is not None:
            spec = t.renewal_within
            days = (_column(batch, spec.metric) - ctx.now.timestamp()) / DAY
            held = (days >= 0) & (days <= spec.days) & (score < spec.below)
            whys = [f"renews in {d:.0f} days at a score below {spec.below:g}" for d in days]
        elif t.measure_below is not None:
            spec = t.measure_below
            points = batch.points[:, batch.measure_names.index(spec.measure)]
            held = points < spec.points
            label = batch.card.measures[spec.measure].label
            whys = [f"{label} at {p:.0f} points, below {spec.points:g}" for p in points]
        else:
            spec = t.metric_at_least
            assert spec is not None
            values = _column(batch, spec.metric)
            held = values >= spec.value
            if spec.grade is not None:
                held &= batch.grade == spec.grade
            whys = [f"{spec.metric} {v:.3g} ≥ {spec.value:g}" for v in values]
    held = np.asarray(held, dtype=bool)
    if rule.segments:
        wanted = [batch.card.segment_names.index(s) for s in rule.segments]
        held &= np.isin(batch.segment, wanted)
    return held, whys


def evaluate(rules: list[Rule], batch: ScoreBatch, ctx: RuleContext,
             states: Mapping[tuple[str, str], RuleState], payloads: Mapping[str, dict[str, Any]],
             default_channel: str | None
             ) -> tuple[list[Intent], dict[tuple[str, str], RuleState]]:
    """Intents for accounts entering a rule's condition, and every changed state."""
    intents: list[Intent] = []
    changed: dict[tuple[str, str], RuleState] = {}
    now = ctx.now
    index = {a: i for i, a in enumerate(batch.account_ids)}
    for rule in rules:
        held, whys = condition(rule, batch, ctx)
        hold_for = rule.for_.total_seconds()
        cooldown = rule.cooldown.total_seconds()
        # accounts in the condition now, or with an open episode / running timer to close
        open_now = {index[a] for (r, a), st in states.items()
                    if r == rule.name and a in index and (st.active or st.true_since)}
        for i in sorted(set(np.flatnonzero(held).tolist()) | open_now):
            account_id = batch.account_ids[i]
            old = states.get((rule.name, account_id), RuleState())
            if not held[i]:
                new = RuleState(None, False, old.episode, old.last_fired)
            else:
                since = old.true_since or now
                long_enough = (now - since).total_seconds() >= hold_for
                cooled = old.last_fired is None or (now - old.last_fired).total_seconds() \
                    >= cooldown
                fire = long_enough and not old.active and cooled
                new = RuleState(since, old.active or fire, old.episode + fire,
                                now if fire else old.last_fired)
                if fire:
                    payload = {**payloads[account_id], "rule": rule.name, "why": whys[i]}
                    intents.append(Intent(
                        key=f"{rule.name}:{account_id}:{new.episode}", rule=rule.name,
                        kind="slack", account_id=account_id,
                        target=rule.channel or default_channel, payload=payload))
            if new != old:
                changed[(rule.name, account_id)] = new
    return intents, changed


ENTERED_RED = Rule(name="entered_red", when={"grade_is": "red"})  # type: ignore[arg-type]
