"""Alert rules: each trigger fires when an account enters its condition, once per episode."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from actions import Rule, RuleContext, RuleState, evaluate
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from scoring import score

from .scoring_helpers import AS_OF, card, table

DAY = 86400.0
CARD = card(
    {
        "usage": {"metric": "usage", "linear": {"from": 0, "to": 100}},
        "nps": {"metric": "nps", "linear": {"from": 0, "to": 10}, "weight": 0},
    },
    segments=[{"name": "onboarding", "when": [{"field": "age", "below": 90}]}],
    derived={"age": {"days_since": "start"}},
    grades={"hysteresis": 0},
)


class Runner:
    """Evaluates rules run after run, carrying the state like the store does."""

    def __init__(self, *rules: dict) -> None:
        self.rules = [Rule.model_validate(r) for r in rules]
        self.states: dict[tuple[str, str], RuleState] = {}
        self.history: list[dict[str, float]] = []

    def run(self, rows: list[dict], at_day: float = 0) -> list[tuple[str, str]]:
        now = AS_OF + timedelta(days=at_day)
        start = (now - timedelta(days=1)).timestamp()
        batch = score(CARD, table([{"start": start, **r} for r in rows]), now)
        then = {7 * DAY: self.history[-1] if self.history else {}}
        payloads = {a: {"name": a} for a in batch.account_ids}
        intents, changed = evaluate(
            self.rules, batch, RuleContext(now, then), self.states, payloads, "C1"
        )
        self.states.update(changed)
        self.history.append(dict(zip(batch.account_ids, batch.score.tolist(), strict=True)))
        return [(i.account_id, i.key) for i in intents]


def test_grade_rule_fires_on_entry_only_and_again_after_leaving() -> None:
    r = Runner({"name": "red", "when": {"grade_is": "red"}})
    assert r.run([{"usage": 30}, {"usage": 90}]) == [("a0", "red:a0:1")]
    assert r.run([{"usage": 20}, {"usage": 90}]) == []  # still red: same episode
    assert r.run([{"usage": 80}, {"usage": 90}]) == []  # left red
    assert r.run([{"usage": 10}, {"usage": 90}]) == [("a0", "red:a0:2")]  # a new episode


def test_cooldown_holds_back_a_quick_re_entry_then_lets_it_through() -> None:
    r = Runner({"name": "red", "when": {"grade_is": "red"}, "cooldown": "14d"})
    assert r.run([{"usage": 30}], at_day=0) == [("a0", "red:a0:1")]
    assert r.run([{"usage": 80}], at_day=1) == []
    assert r.run([{"usage": 30}], at_day=2) == []  # re-entered inside the cooldown
    assert r.run([{"usage": 30}], at_day=15) == [("a0", "red:a0:2")]  # still red, cooled


def test_for_needs_the_condition_to_hold_that_long() -> None:
    r = Runner({"name": "stuck", "when": {"score_below": 40}, "for": "30d"})
    assert r.run([{"usage": 20}], at_day=0) == []
    assert r.run([{"usage": 20}], at_day=20) == []
    assert r.run([{"usage": 20}], at_day=31) == [("a0", "stuck:a0:1")]
    assert r.run([{"usage": 20}], at_day=40) == []


def test_score_drop_within_a_window() -> None:
    r = Runner({"name": "drop", "when": {"score_dropped": {"points": 15, "within": "7d"}}})
    assert r.run([{"usage": 90}, {"usage": 90}]) == []
    assert r.run([{"usage": 70}, {"usage": 85}], at_day=7) == [("a0", "drop:a0:1")]


def test_measure_below_metric_at_least_and_segment_filter() -> None:
    low_nps = Runner({"name": "nps", "when": {"measure_below": {"measure": "nps", "points": 30}}})
    assert low_nps.run([{"usage": 90, "nps": 2}, {"usage": 90, "nps": 9}]) == [("a0", "nps:a0:1")]
    upsell = Runner(
        {
            "name": "upsell",
            "when": {"metric_at_least": {"metric": "usage", "value": 90, "grade": "green"}},
            "segments": ["onboarding"],
        }
    )
    assert upsell.run([{"usage": 95}, {"usage": 60}]) == [("a0", "upsell:a0:1")]


def test_renewal_within_and_onboarding_not_past() -> None:
    renewal = Runner(
        {
            "name": "renewal",
            "when": {"renewal_within": {"metric": "renews", "days": 90, "below": 60}},
        }
    )
    soon = (AS_OF + timedelta(days=30)).timestamp()
    late = (AS_OF + timedelta(days=200)).timestamp()
    assert renewal.run(
        [
            {"usage": 40, "renews": soon},
            {"usage": 40, "renews": late},
            {"usage": 80, "renews": soon},
        ]
    ) == [("a0", "renewal:a0:1")]
    stuck = Runner(
        {
            "name": "onb",
            "when": {"onboarding_not_past": {"score": 60, "by_day": 30, "age_metric": "age"}},
        }
    )
    day = timedelta(days=1)
    assert stuck.run(
        [
            {"usage": 40, "start": (AS_OF - 40 * day).timestamp()},  # day 40, low
            {"usage": 40, "start": (AS_OF - 10 * day).timestamp()},  # too early
            {"usage": 70, "start": (AS_OF - 40 * day).timestamp()},
        ]
    ) == [("a0", "onb:a0:1")]


def test_a_rule_naming_an_unknown_measure_points_at_its_line(tmp_path: Path) -> None:
    text = (
        (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()
        + "\nrules:\n  - name: gap\n    when: {measure_below: "
        "{measure: usage_gap, points: 30}}\n"
    )
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    with pytest.raises(
        ConfigError,
        match=r"healthscore.yaml:\d+ rules.0.when.measure_below: "
        r"no measure 'usage_gap'",
    ):
        load_config(path)
    bad = text.replace(
        "measure_below: {measure: usage_gap, points: 30}", "score_below: 40, grade_is: red"
    )
    path.write_text(bad)
    with pytest.raises(ConfigError, match="give exactly one trigger"):
        load_config(path)


def test_a_drop_rule_alerts_once_through_slack(sf_emu, slack_emu, make_pipeline) -> None:
    from datetime import UTC, datetime

    from sandbox import generate_org
    from tests.conftest import fast_config

    now = datetime.now(UTC)
    ids = sf_emu.seed(generate_org(30, seed=51, now=now))
    config = fast_config()
    config = config.model_copy(
        update={
            "rules": [
                Rule.model_validate(
                    {
                        "name": "sharp_drop",
                        "when": {"score_dropped": {"points": 15, "within": "7d"}},
                        "channel": "C0CSALERTS",
                    }
                )
            ]
        }
    )
    pipeline = make_pipeline(config)
    pipeline.clock = lambda: now - timedelta(days=8)
    pipeline.sync_all()
    pipeline.score_and_act()  # a week ago
    _, batch = pipeline.score(dry_run=True)
    healthy = next(a for i, a in enumerate(batch.account_ids) if batch.grade[i] == "green")
    assert healthy in ids
    sf_emu.update(
        "Account", healthy, {"Active_Users_30d__c": 0, "Logins_30d__c": 0, "Feature_Adoption__c": 1}
    )
    pipeline.clock = lambda: now
    slack_emu.clear_messages()
    pipeline.sync_all()
    act = pipeline.score_and_act()
    assert act.scoring.alerts.get("sharp_drop") == 1
    drops = [m for m in slack_emu.messages if "sharp_drop" in str(m["blocks"])]
    assert len(drops) == 1 and "score dropped" in drops[0]["text"]
    again = make_pipeline(config)
    again.clock = lambda: now + timedelta(hours=1)
    assert again.score_and_act().scoring.alerts.get("sharp_drop") is None
