"""Rules over score state and history that produce action intents — vectorized.

Each rule's condition is evaluated for every account at once (NumPy over the score batch).
Per (rule, account) the store keeps a small state: since when the condition has held, whether
an episode is open, its number and when it last fired. A rule fires when the condition has
held for ``for`` and no episode is open and the cooldown since the last firing has passed; the
episode closes when the condition stops holding. An intent's idempotency key names the rule,
the account and the episode number, so a retried run can never produce a second intent.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from actions.rule_model import Rule, SlackAction
from scoring import ScoreBatch

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


def slack_channel(
    rule: Rule, action: SlackAction, segment: str | None, default_channel: str | None
) -> str | None:
    """Routing: the account's segment's channel, the action's, the rule's, the default."""
    return action.segments.get(segment or "") or action.channel or rule.channel or default_channel


def action_intents(
    rule: Rule, account_id: str, episode: int, payload: dict[str, Any], default_channel: str | None
) -> list[Intent]:
    """One intent per action of a rule that fired (the email's first step aside)."""
    base = f"{rule.name}:{account_id}:{episode}"
    out = []
    for action in rule.actions:
        if action.slack is not None:
            channel = slack_channel(rule, action.slack, payload.get("segment"), default_channel)
            if action.slack.digest:  # collected, then sent in the period's digest message
                out.append(
                    Intent(
                        f"{base}:digest",
                        rule.name,
                        "digest",
                        account_id,
                        channel,
                        {**payload, "digest": action.slack.digest},
                    )
                )
            else:  # the key of a Slack alert stays rule:account:episode
                out.append(Intent(base, rule.name, "slack", account_id, channel, payload))
        elif action.task is not None:
            out.append(
                Intent(
                    f"{base}:task",
                    rule.name,
                    "task",
                    account_id,
                    payload.get("owner_email"),
                    {
                        **payload,
                        "task": {
                            **action.task.model_dump(mode="json"),
                            "due_in": action.task.due_in.total_seconds(),
                        },
                    },
                )
            )
        elif action.email is not None and not action.email.steps:
            out.append(email_intent(rule, base, account_id, payload, None))
    return out


def email_intent(
    rule: Rule, base: str, account_id: str, payload: dict[str, Any], day: int | None
) -> Intent:
    spec = rule.action("email")
    assert spec is not None and spec.email is not None
    email = spec.email
    template = email.template
    if day is not None:
        template = next(s.template for s in email.steps if s.day == day) or template
    key = f"{base}:email" + ("" if day is None else f":d{day}")
    return Intent(
        key,
        rule.name,
        "email",
        account_id,
        "roles: " + ", ".join(email.roles),
        {
            **payload,
            "email": {
                "template": template,
                "provider": email.provider,
                "roles": email.roles,
                "subject": email.subject,
                "step": day,
            },
        },
    )


def evaluate(
    rules: list[Rule],
    batch: ScoreBatch,
    ctx: RuleContext,
    states: Mapping[tuple[str, str], RuleState],
    payloads: Mapping[str, dict[str, Any]],
    default_channel: str | None,
    known_keys: Container[str] = (),
) -> tuple[list[Intent], dict[tuple[str, str], RuleState]]:
    """Intents for accounts entering a rule's condition, and every changed state.

    An email sequence (``steps``) sends, while the episode is open, the latest step whose
    day the account has reached — once (``known_keys`` holds the keys already in the log);
    steps missed before the episode began are skipped, not sent in a burst.
    """
    intents: list[Intent] = []
    changed: dict[tuple[str, str], RuleState] = {}
    now = ctx.now
    index = {a: i for i, a in enumerate(batch.account_ids)}
    for rule in rules:
        held, whys = condition(rule, batch, ctx)
        email = rule.action("email")
        steps = email.email.steps if email is not None and email.email is not None else []
        age = _column(batch, email.email.age_metric) if steps and email and email.email else None
        hold_for = rule.for_.total_seconds()
        cooldown = rule.cooldown.total_seconds()
        # accounts in the condition now, or with an open episode / running timer to close
        open_now = {
            index[a]
            for (r, a), st in states.items()
            if r == rule.name and a in index and (st.active or st.true_since)
        }
        for i in sorted(set(np.flatnonzero(held).tolist()) | open_now):
            account_id = batch.account_ids[i]
            old = states.get((rule.name, account_id), RuleState())
            if not held[i]:
                new = RuleState(None, False, old.episode, old.last_fired)
            else:
                since = old.true_since or now
                long_enough = (now - since).total_seconds() >= hold_for
                cooled = (
                    old.last_fired is None or (now - old.last_fired).total_seconds() >= cooldown
                )
                fire = long_enough and not old.active and cooled
                new = RuleState(
                    since, old.active or fire, old.episode + fire, now if fire else old.last_fired
                )
                if fire:
                    intents += action_intents(
                        rule,
                        account_id,
                        new.episode,
                        _payload(payloads, batch, rule, account_id, i, whys),
                        default_channel,
                    )
                if new.active and age is not None:
                    reached = [s.day for s in steps if age[i] >= s.day]
                    if reached:
                        step = email_intent(
                            rule,
                            f"{rule.name}:{account_id}:{new.episode}",
                            account_id,
                            _payload(payloads, batch, rule, account_id, i, whys),
                            reached[-1],
                        )
                        if step.key not in known_keys:
                            intents.append(step)
            if new != old:
                changed[(rule.name, account_id)] = new
    return intents, changed


def _payload(
    payloads: Mapping[str, dict[str, Any]],
    batch: ScoreBatch,
    rule: Rule,
    account_id: str,
    i: int,
    whys: list[str],
) -> dict[str, Any]:
    # "keyed": delivered with its key at the vendor (Slack metadata), so it can be looked up
    return {
        **payloads[account_id],
        "rule": rule.name,
        "why": whys[i],
        "segment": batch.segment_name(i),
        "keyed": True,
    }


ENTERED_RED = Rule(name="entered_red", when={"grade_is": "red"})  # type: ignore[arg-type]
