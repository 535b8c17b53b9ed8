"""Governance in real runs: overrides, stale sources, versioned scorecards, the trend window.

Every test syncs a synthetic org from the Salesforce emulator through simple-salesforce, scores
it on a controlled clock, and reads what the run stored, queued for the CRM and posted to the
Slack emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from actions import build_alert
from connectors.salesforce.config import CrmOverrideFields
from connectors.salesforce.sync import sync_accounts
from healthscore.backtest.scorecard_diff import diff_scorecards
from healthscore.config import Config
from healthscore.governance.overrides import (
    OverrideRefused,
    find_account,
    list_overrides,
    set_override,
)
from healthscore.governance.policy import Freshness, OverridePolicy
from healthscore.governance.versioning import content_hash
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from store import SignalRow

from .conftest import fast_config

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
LEAD = "lead@example.com"
POLICY = OverridePolicy(
    allowed_roles=["cs_lead"], roles={"cs_lead": [LEAD]}, notify_before=timedelta(days=3)
)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def governed(**update: object) -> Config:
    return fast_config().model_copy(update={"overrides": POLICY, **update})


@pytest.fixture
def run(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> tuple[Pipeline, Clock]:
    sf_emu.seed(generate_org(40, seed=5, now=T0))
    clock = Clock(T0)
    pipeline = make_pipeline(governed(), clock=clock)
    sync_accounts(pipeline.context)
    return pipeline, clock


def _green(pipeline: Pipeline) -> str:
    _, batch = pipeline.score(dry_run=True)
    best = max(range(len(batch)), key=lambda i: batch.score[i] if batch.grade[i] == "green" else -1)
    assert batch.grade[best] == "green"
    return batch.account_ids[best]


def _pending(pipeline: Pipeline, account_id: str) -> dict:
    """The health values for the CRM: pending, else as last written."""
    pending = [
        p.fields for p in pipeline.store.pending_writes("salesforce") if p.account_id == account_id
    ]
    return pending[0] if pending else pipeline.store.crm_state("salesforce")[account_id]


def test_an_override_applies_shows_in_explain_and_history_and_expires_on_its_date(run) -> None:
    pipeline, clock = run
    account = pipeline.store.account(_green(pipeline))
    set_override(
        pipeline.store,
        POLICY,
        account,
        grade="red",
        reason="Champion left; renewal at risk",
        set_by=LEAD,
        now=T0,
        expires=timedelta(days=10),
    )
    report, batch = pipeline.score()
    assert report.overrides_active == 1
    i = batch.index(account.id)
    assert batch.grade[i] == "red"
    desired = _pending(pipeline, account.id)
    assert desired["grade"] == "Red"
    assert desired["reasons"].startswith(
        f"Override red by {LEAD} until {T0 + timedelta(days=10):%Y-%m-%d}: Champion left"
    )
    stored = pipeline.store.score_history(account.id)[-1]
    assert stored.grade == "red"
    assert stored.reasons["override"]["set_by"] == LEAD
    assert stored.reasons["computed_grade"] == "green"
    _, exp = pipeline.explain(account.id)
    assert exp.grade == "red" and exp.computed_grade == "green"
    assert exp.reasons[0].kind == "override" and "Champion left" in str(exp.reasons[0])
    # an override that entered red alerts like any red account, and says whose call it is
    assert report.entered_red >= 1
    alert = next(a for a in pipeline.store.actions() if a.account_id == account.id)
    message = build_alert(alert.payload, None)
    assert "CSM override" in message["text"]
    assert f"Override red by {LEAD}" in str(message["blocks"])
    # the day it expires, the computed grade is back by itself
    clock.at = T0 + timedelta(days=10)
    _, batch = pipeline.score()
    assert batch.grade[batch.index(account.id)] == "green"
    assert "override" not in pipeline.store.score_history(account.id)[-1].reasons
    _, exp = pipeline.explain(account.id)
    assert exp.override is None and exp.grade == "green"
    assert _pending(pipeline, account.id)["grade"] == "Green"


def test_an_override_from_a_user_without_the_right_is_refused_and_reported(run) -> None:
    pipeline, _ = run
    account = pipeline.store.account(_green(pipeline))
    with pytest.raises(OverrideRefused, match=r"intern@example\.com may not override"):
        set_override(
            pipeline.store,
            POLICY,
            account,
            grade="red",
            reason="gut feeling",
            set_by="intern@example.com",
            now=T0,
        )
    refused = list_overrides(pipeline.store, account.id)
    assert [(o.state(T0), o.set_by) for o in refused] == [("refused", "intern@example.com")]
    assert "may not override" in (refused[0].note or "")
    report, batch = pipeline.score()
    assert report.overrides_active == 0
    assert batch.grade[batch.index(account.id)] == "green"
    # the account's owner may override their own accounts when the policy says so
    owners = OverridePolicy(allowed_roles=["account_owner"])
    assert (
        set_override(
            pipeline.store,
            owners,
            account,
            grade="yellow",
            reason="slow adoption",
            set_by=account.owner_email.upper(),
            now=T0,
        ).grade
        == "yellow"
    )


def test_a_note_goes_to_the_owner_once_a_few_days_before_the_override_expires(
    run, slack_emu: SlackEmulator
) -> None:
    pipeline, clock = run
    account = pipeline.store.account(_green(pipeline))
    set_override(
        pipeline.store,
        POLICY,
        account,
        grade="yellow",
        reason="exec sponsor changing",
        set_by=LEAD,
        now=T0,
        expires=timedelta(days=10),
    )
    pipeline.score_and_act()
    assert not pipeline.store.actions(kind="slack") or all(
        a.rule != "override_expiring" for a in pipeline.store.actions()
    )
    for hours in (0, 1, 2):  # three runs inside the notice window
        clock.at = T0 + timedelta(days=8, hours=hours)
        pipeline.score_and_act()
    notes = [a for a in pipeline.store.actions() if a.rule == "override_expiring"]
    assert len(notes) == 1 and notes[0].status == "sent"
    posted = [m for m in slack_emu.messages if "override" in str(m.get("text"))]
    assert len(posted) == 1
    assert account.name.split()[0] in posted[0]["text"]
    assert "yellow override expires on" in posted[0]["text"]


def test_a_source_stopped_longer_than_its_limit_flags_its_accounts_and_alerts_once(
    run, slack_emu: SlackEmulator
) -> None:
    pipeline, clock = run
    pipeline.config = pipeline.config.model_copy(
        update={
            "freshness": Freshness(
                default=timedelta(days=1), sources={"zendesk": timedelta(hours=12)}
            )
        }
    )
    accounts = [a.id for a in pipeline.store.accounts()]
    desk = accounts[:5]
    pipeline.store.set_cursor("zendesk", "tickets", T0.isoformat())
    pipeline.store.record_signals(
        SignalRow(a, "zendesk_tickets_30d", 3.0, T0, "zendesk") for a in desk
    )
    clock.at = T0 + timedelta(hours=11)  # within the limit
    report, _ = pipeline.score()
    assert report.stale_accounts == 0
    # Salesforce keeps syncing; the support desk stops
    for hours in (13, 14, 20):
        clock.at = T0 + timedelta(hours=hours)
        sync_accounts(pipeline.context)
        act = pipeline.score_and_act()
        assert act.scoring.stale_accounts == 5 and act.scoring.stale_sources == ["zendesk"]
        assert act.scoring.alerts.get("source_stale", 0) == (1 if hours == 13 else 0)
    for a in accounts:  # written to the CRM's stale checkbox
        assert _pending(pipeline, a)["stale"] is (a in desk), a
    stored = pipeline.store.score_history(desk[0])[-1].reasons
    assert stored["stale_sources"] == ["zendesk"]
    ops = [a for a in pipeline.store.actions() if a.rule == "source_stale"]
    assert len(ops) == 1 and ops[0].status == "sent"
    posted = [m for m in slack_emu.messages if "has not synced" in str(m.get("text"))]
    assert len(posted) == 1 and posted[0]["text"].startswith("zendesk has not synced for")
    assert "5 accounts stale" in posted[0]["text"]
    # it recovers, then stops again: a new stoppage, a new (single) alert
    pipeline.store.set_cursor("zendesk", "tickets", (T0 + timedelta(days=1)).isoformat())
    clock.at = T0 + timedelta(days=1, hours=1)
    sync_accounts(pipeline.context)
    assert pipeline.score_and_act().scoring.stale_accounts == 0
    assert not _pending(pipeline, desk[0]).get("stale")
    clock.at = T0 + timedelta(days=2)
    sync_accounts(pipeline.context)
    pipeline.score_and_act()
    pipeline.score_and_act()
    assert len([a for a in pipeline.store.actions() if a.rule == "source_stale"]) == 2


def test_an_entered_red_alert_says_the_data_is_stale(run, slack_emu: SlackEmulator) -> None:
    pipeline, clock = run
    clock.at = T0 + timedelta(days=3)  # nothing synced since T0: every account is stale
    act = pipeline.score_and_act()
    assert act.scoring.entered_red > 0 and act.scoring.stale_sources == ["salesforce"]
    reds = [m for m in slack_emu.messages if "is now *red*" in str(m.get("blocks"))]
    assert reds and all("Stale data from salesforce" in str(m["blocks"]) for m in reds)
    assert len([m for m in slack_emu.messages if "has not synced" in str(m["text"])]) == 1


def test_a_scorecard_change_is_recorded_with_its_version_and_diff_lists_exactly_the_changes(
    run,
) -> None:
    pipeline, clock = run
    old = pipeline.config.scorecard.model_copy(
        update={"grades": pipeline.config.scorecard.grades.model_copy(update={"hysteresis": 0})}
    )
    new = old.model_copy(update={"grades": old.grades.model_copy(update={"red": 70})})
    pipeline.config = pipeline.config.model_copy(update={"scorecard": old})
    _, before = pipeline.score()
    expected = {
        a
        for i, a in enumerate(before.account_ids)
        if before.grade[i] == "yellow" and round(before.score[i]) <= 70
    }
    assert expected, "the org should have yellow accounts at or below 70"
    result = diff_scorecards(pipeline, old, new)
    assert {c.account_id for c in result.changes} == expected
    assert result.transitions == {"yellow → red": len(expected)}
    assert all(
        c.new_grade == "red" and c.old_score == pytest.approx(c.new_score) for c in result.changes
    )
    runs_before = len(pipeline.store.runs())
    assert len(pipeline.store.runs()) == runs_before  # the diff wrote nothing
    # deploy it: the next run records the new version, and the trend across it says so
    clock.at = T0 + timedelta(days=8)
    pipeline.config = pipeline.config.model_copy(update={"scorecard": new})
    _, after = pipeline.score()
    runs = pipeline.store.runs()
    assert [content_hash(r.scorecard_version) for r in runs] == [old.version, new.version]
    assert old.version != new.version
    moved = next(iter(expected))
    assert after.grade[after.index(moved)] == "red"
    trend = _pending(pipeline, moved)["trend"]
    assert trend.endswith("vs 1w (new scorecard)"), trend


def test_the_trend_compares_with_the_window_and_shows_a_fall_within_green(run) -> None:
    pipeline, clock = run
    account_id = _green(pipeline)
    clock.at = T0 - timedelta(days=8)
    pipeline.score()
    # the account loses adoption a week ago, stays green; runs since see no change
    row = next(
        r for r in pipeline.store.signal_history(account_id) if r.metric == "feature_adoption_pct"
    )
    pipeline.store.record_signals(
        [
            SignalRow(
                account_id,
                "feature_adoption_pct",
                min(row.value, 60) - 15,
                datetime.now(UTC),
                "salesforce",
            )
        ]
    )
    for days in (6, 1):
        clock.at = T0 - timedelta(days=days)
        pipeline.score()
    clock.at = T0
    _, batch = pipeline.score()
    assert batch.grade[batch.index(account_id)] == "green"
    history = pipeline.store.score_history(account_id)
    assert history[-1].score == pytest.approx(history[-2].score, abs=0.5)  # vs the last run
    trend = _pending(pipeline, account_id)["trend"]
    assert trend.startswith("↓ −") and trend.endswith("pts vs 1w"), trend  # a 7d window


def test_find_account_by_name_or_id(run) -> None:
    pipeline, _ = run
    account = pipeline.store.accounts()[0]
    assert find_account(pipeline.store, account.name.upper()).id == account.id
    assert find_account(pipeline.store, account.id).id == account.id


def test_an_override_set_in_salesforce_is_read_once_checked_and_cleared_there(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org = generate_org(12, seed=8, now=T0)
    ids = sf_emu.seed(org)
    config = governed()
    salesforce = config.sources.salesforce.model_copy(
        update={"override_fields": CrmOverrideFields()}
    )
    config = config.model_copy(
        update={"sources": config.sources.model_copy(update={"salesforce": salesforce})}
    )
    clock = Clock(datetime.now(UTC))
    pipeline = make_pipeline(config, clock=clock)
    stamp = (clock.at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    until = (clock.at + timedelta(days=14)).date().isoformat()
    sf_emu.update(
        "Account",
        ids[0],
        {
            "Health_Override__c": "Red",
            "Health_Override_Reason__c": "Escalation to the CEO",
            "Health_Override_Until__c": until,
            "Health_Override_By__c": LEAD,
            "Health_Override_Set__c": stamp,
        },
    )
    sf_emu.update(
        "Account",
        ids[1],
        {
            "Health_Override__c": "Green",
            "Health_Override_Until__c": until,
            "Health_Override_By__c": "someone@example.com",
            "Health_Override_Set__c": stamp,
        },
    )
    report = sync_accounts(pipeline.context)
    assert report.overrides == {"applied": 1, "refused": 1}
    report = sync_accounts(pipeline.context, full=True)  # read again: nothing new
    assert report.overrides == {}
    overrides = list_overrides(pipeline.store)
    assert sorted((o.account_id, o.state(clock.at), o.origin) for o in overrides) == [
        (ids[0], "active", "salesforce"),
        (ids[1], "refused", "salesforce"),
    ]
    active = next(o for o in overrides if o.account_id == ids[0])
    assert active.reason == "Escalation to the CEO" and active.set_by == LEAD
    assert active.expires_at.date().isoformat() > until  # through the end of that day
    _, batch = pipeline.score()
    assert batch.grade[batch.index(ids[0])] == "red"
    # the CSM empties the field in Salesforce: the override ends
    sf_emu.update("Account", ids[0], {"Health_Override__c": None})
    clock.at += timedelta(minutes=30)
    assert sync_accounts(pipeline.context).overrides == {"cleared": 1}
    assert [o.state(clock.at) for o in list_overrides(pipeline.store, ids[0])] == ["cleared"]


def test_an_expired_override_does_not_linger_through_hysteresis(run) -> None:
    pipeline, clock = run
    account_id = _green(pipeline)
    _, batch = pipeline.score(dry_run=True)
    near = round(float(batch.score[batch.index(account_id)]))
    card = pipeline.config.scorecard
    # the account sits one point above the red border, inside the hysteresis margin (2)
    card = card.model_copy(
        update={"grades": card.grades.model_copy(update={"red": near - 1, "yellow": 100})}
    )
    pipeline.config = pipeline.config.model_copy(update={"scorecard": card})
    set_override(
        pipeline.store,
        POLICY,
        pipeline.store.account(account_id),
        grade="red",
        reason="temporary",
        set_by=LEAD,
        now=T0,
        expires=timedelta(minutes=1),
    )
    _, batch = pipeline.score()
    assert batch.grade[batch.index(account_id)] == "red"
    clock.at = T0 + timedelta(minutes=2)
    _, batch = pipeline.score()
    assert round(float(batch.score[batch.index(account_id)])) == near
    assert batch.grade[batch.index(account_id)] == "yellow"  # not held red by the override
