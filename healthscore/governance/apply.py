"""What governance adds to one scoring run: overrides in force, stale data, scorecard version
changes, and the Slack notes they cause.

``Pipeline.score`` builds one ``RunGovernance`` right after computing the batch and asks it,
per account, what to add to the stored row, the alert payload and the CRM values. Overrides
are applied to ``batch.grade`` itself, before the alert rules run: an account a CSM set to
red alerts like any other red account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from actions import Intent
from healthscore.governance.freshness import (
    SourceAge,
    source_ages,
    stale_accounts,
    stopped_source_intents,
)
from healthscore.governance.overrides import OverrideView, active_overrides, expiring_soon
from healthscore.governance.versioning import changed
from scoring import Explanation, Reason, ScoreBatch
from store import ActionLog, Score, Store

if TYPE_CHECKING:
    from healthscore.pipeline.cycle import Pipeline

EXPIRY_RULE = "override_expiring"


@dataclass
class RunGovernance:
    overrides: dict[str, OverrideView] = field(default_factory=dict)
    computed: dict[str, str] = field(default_factory=dict)  # overridden: the computed grade
    critical: dict[str, str] = field(default_factory=dict)  # capped: the condition's name
    stale: dict[str, list[str]] = field(default_factory=dict)
    ages: dict[str, SourceAge] = field(default_factory=dict)
    new_scorecard: set[str] = field(default_factory=set)  # trend baseline: another scorecard
    intents: list[Intent] = field(default_factory=list)

    def row_reasons(self, account_id: str) -> dict[str, Any]:
        """Extra keys of ``scores.reasons`` (the score history)."""
        out: dict[str, Any] = {}
        if account_id in self.overrides:
            out["override"] = self.overrides[account_id].as_dict()
            out["computed_grade"] = self.computed[account_id]
        if account_id in self.critical:
            out["critical"] = self.critical[account_id]
        if account_id in self.stale:
            out["stale_sources"] = self.stale[account_id]
        return out

    def reasons(self, account_id: str, reasons: list[str]) -> list[str]:
        """The reasons as the CRM and Slack show them: the override first, stale data last."""
        out = list(reasons)
        if account_id in self.overrides:
            out.insert(0, self.overrides[account_id].reason_text())
        if account_id in self.stale:
            out.append(
                "Stale data: " + "; ".join(self.ages[s].describe() for s in self.stale[account_id])
            )
        return out

    def payload(self, account_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"stale_sources": self.stale.get(account_id, [])}
        if account_id in self.overrides:
            out["override"] = self.overrides[account_id].as_dict()
            out["computed_grade"] = self.computed[account_id]
        return out

    def trend(self, account_id: str, text: str | None) -> str | None:
        """Mark a trend measured across a scorecard change (it is not the customer's)."""
        if text is not None and account_id in self.new_scorecard:
            return f"{text} (new scorecard)"
        return text


def hysteresis_grade(previous: Score) -> str:
    """The grade hysteresis starts from: the computed one when an override replaced it (an
    expired override must not linger through the hysteresis margin)."""
    return (
        str(previous.reasons.get("computed_grade") or previous.grade)
        if isinstance(previous.reasons, dict)
        else previous.grade
    )


def govern(
    pipeline: Pipeline,
    batch: ScoreBatch,
    now: datetime,
    *,
    version: str,
    baseline: Mapping[str, Score],
    act: bool = True,
) -> RunGovernance:
    """Apply overrides to ``batch.grade`` and collect what this run adds (the Slack notes
    and operations alerts only with ``act``: not in a dry run)."""
    store, config = pipeline.store, pipeline.config
    gov = RunGovernance()
    gov.overrides = active_overrides(store, now, batch.account_ids)
    index = {a: i for i, a in enumerate(batch.account_ids)}
    for account_id, override in gov.overrides.items():
        i = index[account_id]
        gov.computed[account_id] = str(batch.grade[i])
        batch.grade[i] = override.grade
    if batch.critical is not None:
        for i in np.flatnonzero(batch.critical >= 0):
            gov.critical[batch.account_ids[i]] = batch.card.critical[int(batch.critical[i])].name
    gov.ages = source_ages(store, config.freshness, now)
    gov.stale = {a: s for a, s in stale_accounts(store, gov.ages).items() if a in index}
    if baseline:
        versions = {r.id: r.scorecard_version for r in store.runs()}
        gov.new_scorecard = {
            a for a, s in baseline.items() if changed(versions.get(s.run_id), version)
        }
    if act:
        channel = pipeline.alert_channel
        gov.intents += stopped_source_intents(
            gov.ages, gov.stale, config.freshness.channel or channel
        )
        for o in expiring_soon(gov.overrides, now, config.overrides.notify_before):
            account = store.account(o.account_id)
            gov.intents.append(
                Intent(
                    key=f"{EXPIRY_RULE}:{o.id}",
                    rule=EXPIRY_RULE,
                    kind="slack",
                    account_id=o.account_id,
                    target=channel,
                    payload={
                        "template": EXPIRY_RULE,
                        "rule": EXPIRY_RULE,
                        "name": account.name if account else o.account_id,
                        "owner_email": account.owner_email if account else None,
                        "owner_name": account.owner_name if account else None,
                        "crm_url": pipeline._record_url(o.account_id),
                        "override": o.as_dict(),
                        "computed_grade": gov.computed[o.account_id],
                    },
                )
            )
        if gov.intents:  # only new ones (the log keeps one per key anyway; the report counts)
            keys = [i.key for i in gov.intents]
            with store.session() as s:
                known = set(s.scalars(select(ActionLog.key).where(ActionLog.key.in_(keys))))
            gov.intents = [i for i in gov.intents if i.key not in known]
    return gov


def explain_with_override(store: Store, exp: Explanation, now: datetime) -> Explanation:
    """Show the override in force (if any) in an explanation: grade, who, why, until."""
    found = active_overrides(store, now, [exp.account_id]).get(exp.account_id)
    if found is None:
        return exp
    reason = Reason(
        "override", "Override", found.reason_text().removeprefix("Override "), 0.0, kind="override"
    )
    return replace(
        exp,
        grade=found.grade,
        computed_grade=exp.grade,
        override=found.as_dict(),
        reasons=[reason, *exp.reasons],
    )
