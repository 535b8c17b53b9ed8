"""Every trigger fires on entry only, again after leaving and the cooldown; actions per rule:
routing by segment, email sequences; config errors at their line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from actions import Rule, RuleContext, RuleState, evaluate
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from scoring import score
from tests.scoring_helpers import AS_OF, table
from tests.test_rules import CARD

DAY = timedelta(days=1)
OLD = (AS_OF - 40 * DAY).timestamp()
SOON = (AS_OF + 30 * DAY).timestamp()


class Runner:
    """Rules evaluated run after run with the store's state and the keys already logged."""

    def __init__(self, *rules: dict[str, Any]) -> None:
        self.rules = [Rule.model_validate(r) for r in rules]
        self.states: dict[tuple[str, str], RuleState] = {}
        self.history: list[dict[str, float]] = []
        self.keys: set[str] = set()

    def run(self, rows: list[dict[str, Any]], at_day: float = 0) -> list[Any]:
        now = AS_OF + timedelta(days=at_day)
        start = (now - DAY).timestamp()
        batch = score(CARD, table([{"start": start, **r} for r in rows]), now)
        then = {7 * 86400.0: self.history[-1] if self.history else {}}
        payloads = {a: {"name": a, "owner_email": f"{a}@csm.test"} for a in batch.account_ids}
        intents, changed = evaluate(
            self.rules, batch, RuleContext(now, then), self.states, payloads, "CDEFAULT", self.keys
        )
        self.states.update(changed)
        self.keys |= {i.key for i in intents}
        self.history.append(dict(zip(batch.account_ids, batch.score.tolist(), strict=True)))
        return intents


# trigger → (a row inside the condition, a row outside it)
TRIGGERS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "grade_is": ({"grade_is": "red"}, {"usage": 30}, {"usage": 90}),
    "score_below": ({"score_below": 40}, {"usage": 30}, {"usage": 80}),
    "onboarding_not_past": (
        {"onboarding_not_past": {"score": 60, "by_day": 30, "age_metric": "age"}},
        {"usage": 40, "start": OLD},
        {"usage": 70, "start": OLD},
    ),
    "renewal_within": (
        {"renewal_within": {"days": 90, "below": 60, "metric": "renews"}},
        {"usage": 40, "renews": SOON},
        {"usage": 80, "renews": SOON},
    ),
    "measure_below": (
        {"measure_below": {"measure": "nps", "points": 30}},  # a band crossed
        {"usage": 90, "nps": 2},
        {"usage": 90, "nps": 9},
    ),
    "metric_at_least": (
        {"metric_at_least": {"metric": "usage", "value": 90, "grade": "green"}},
        {"usage": 95},
        {"usage": 60},
    ),
}


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_each_trigger_fires_on_entry_not_next_cycle_and_again_after_cooldown(trigger: str) -> None:
    when, inside, outside = TRIGGERS[trigger]
    r = Runner({"name": "r", "when": when, "cooldown": "5d"})
    keys = [
        [i.key for i in r.run([inside], at_day=d)]
        if ok
        else [i.key for i in r.run([outside], at_day=d)]
        for d, ok in ((0, True), (1, True), (2, False), (3, True), (7, True), (8, True))
    ]
    assert keys == [["r:a0:1"], [], [], [], ["r:a0:2"], []]


def test_score_drop_fires_on_entry_not_while_still_dropping_and_again_after_cooldown() -> None:
    r = Runner(
        {
            "name": "drop",
            "when": {"score_dropped": {"points": 15, "within": "7d"}},
            "cooldown": "5d",
        }
    )
    seq = [(0, 90), (1, 70), (2, 50), (3, 50), (4, 30), (7, 10)]
    fired = [[i.key for i in r.run([{"usage": u}], at_day=d)] for d, u in seq]
    # 90→70 enters; 70→50 is the same episode; 50→50 leaves; 50→30 re-enters in the
    # cooldown; 30→10 re-enters after it
    assert fired == [[], ["drop:a0:1"], [], [], [], ["drop:a0:2"]]


def test_one_rule_many_actions_routed_by_segment() -> None:
    r = Runner(
        {
            "name": "red",
            "when": {"grade_is": "red"},
            "actions": [
                {"slack": {"channel": "CGENERAL", "segments": {"onboarding": "CONBOARD"}}},
                {"task": {"subject": "{name}: {why}", "due_in": "1d"}},
                {"email": {"template": "d-red", "roles": ["Admin"]}},
            ],
        }
    )
    intents = r.run([{"usage": 30}, {"usage": 20, "start": (AS_OF - 200 * DAY).timestamp()}])
    by = {(i.account_id, i.kind): i for i in intents}
    assert by[("a0", "slack")].target == "CONBOARD" and by[("a1", "slack")].target == "CGENERAL"
    assert by[("a0", "task")].key == "red:a0:1:task"
    assert by[("a0", "task")].target == "a0@csm.test"
    assert by[("a0", "email")].key == "red:a0:1:email"
    assert by[("a0", "email")].payload["email"]["roles"] == ["Admin"]
    assert by[("a0", "slack")].key == "red:a0:1"  # the alert's key stays rule:account:episode
    assert r.run([{"usage": 30}, {"usage": 20}], at_day=1) == []


def test_an_onboarding_sequence_sends_each_step_once_skips_missed_ones_and_stops() -> None:
    nudge = {
        "name": "nudge",
        "when": {"onboarding_not_past": {"score": 60, "by_day": 7, "age_metric": "age"}},
        "actions": [
            {
                "email": {
                    "template": "d-week1",
                    "age_metric": "age",
                    "roles": ["Admin"],
                    "steps": [
                        {"day": 7},
                        {"day": 14, "template": "d-week2"},
                        {"day": 30, "template": "d-month1"},
                    ],
                }
            }
        ],
    }
    r = Runner(nudge)
    started = (AS_OF - 8 * DAY).timestamp()  # day 8 of onboarding
    late = (AS_OF - 20 * DAY).timestamp()  # day 20: steps 7 and 14 are due at once

    def step(at: float, usage: float = 40) -> list[tuple[str, str, str]]:
        return [
            (i.account_id, i.key, i.payload["email"]["template"])
            for i in r.run(
                [{"usage": usage, "start": started}, {"usage": usage, "start": late}], at_day=at
            )
        ]

    assert step(0) == [
        ("a0", "nudge:a0:1:email:d7", "d-week1"),
        ("a1", "nudge:a1:1:email:d14", "d-week2"),
    ]  # d7 skipped, no burst
    assert step(3) == []
    assert step(7) == [("a0", "nudge:a0:1:email:d14", "d-week2")]
    assert step(8) == []
    assert step(11) == [("a1", "nudge:a1:1:email:d30", "d-month1")]
    assert step(23) == [("a0", "nudge:a0:1:email:d30", "d-month1")]
    assert step(40) == []
    assert step(41, usage=90) == []  # onboarded: the episode closes, the sequence stops


EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("    actions: [slack, sms]\n", r"rules\[0\]\.actions\[1\]: unknown action 'sms'"),
        (
            "    actions: [{task: {subject: 'Hi {nmae}'}}]\n",
            r"rules\[0\]\.actions\[0\]\.task\.subject: unknown placeholder \{nmae\}",
        ),
        (
            "    actions: [{task: {due_in: soon}}]\n",
            r"rules\[0\]\.actions\[0\]\.task\.due_in: must be a duration",
        ),
        (
            "    actions: [{email: {roles: [Admin]}}]\n",
            r"rules\[0\]\.actions\[0\]\.email\.template: Field required",
        ),
        ("    actions: [slack, {slack: {digest: daily}}]\n", r"slack is named twice"),
        (
            "    actions: [{slack: {segments: {smb: '#smb'}}}]\n",
            r"rules\.0\.actions\.0\.slack\.segments\.smb: no segment 'smb'",
        ),
        (
            "    actions: [{email: {template: d-1, steps: [{day: 14}, {day: 7}]}}]\n",
            r"step days must be distinct and ascending",
        ),
    ],
)
def test_a_bad_action_is_reported_at_its_line(tmp_path: Path, rule: str, message: str) -> None:
    text = EXAMPLE + "\nrules:\n  - name: r\n    when: {grade_is: red}\n" + rule
    line = text.count("\n", 0, text.index(rule)) + 1
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert f"healthscore.yaml:{line} " in str(err.value)
