"""The demo's governance story: CSM overrides before the first cycle, and a source that stops.

- Before cycle 1, in Salesforce's override fields (as CSMs would on the Account page): the
  CS lead sets a healthy account to red ("champion left"), an account's own CSM sets theirs
  to yellow, and an intern's attempt is refused at the sync (recorded and reported, never
  applied). ``healthscore override`` sets one from the command line on the kept data.
- After the cycles, the HubSpot worker "stops": eight (virtual) hours pass in which only
  Salesforce syncs (the demo's HubSpot freshness limit is 6 hours). The next run flags every
  account with HubSpot data stale (the CRM's stale checkbox, the Slack alerts) and posts one
  operations alert for HubSpot — one, not one per account; a second run adds none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from connectors.salesforce.config import CrmOverrideFields
from connectors.salesforce.sync import sync_accounts, sync_related
from healthscore.config import Config
from healthscore.core.durations import format_duration
from healthscore.governance.policy import Freshness, OverridePolicy
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, SyntheticOrg
from sandbox.demo.demo_keep import keep_paths

CS_LEAD = "cs.lead@example.com"
POLICY = OverridePolicy(allowed_roles=["account_owner", "cs_lead"], roles={"cs_lead": [CS_LEAD]})
HUBSPOT_DOWN_FOR = timedelta(hours=8)  # (the demo's day started at 02:00 yesterday)
FRESHNESS = Freshness(default=timedelta(days=1), sources={"hubspot": timedelta(hours=6)})


def with_demo_governance(config: Config) -> Config:
    """Who may override (a CS lead, and each account's own CSM), and the Salesforce fields
    overrides are read from."""
    salesforce = config.sources.salesforce.model_copy(
        update={"override_fields": CrmOverrideFields()}
    )
    return config.model_copy(
        update={
            "overrides": POLICY,
            "freshness": FRESHNESS,
            "sources": config.sources.model_copy(update={"salesforce": salesforce}),
        }
    )


def seed_crm_overrides(
    sf_emu: SalesforceEmulator, org: SyntheticOrg, ids: list[str], now: datetime
) -> dict[str, Any]:
    """Overrides typed into three healthy Accounts' override fields in Salesforce: by the CS
    lead (red), by the account's own CSM (yellow), by an intern (refused at the next sync)."""
    healthy = [i for i, a in enumerate(org.accounts) if org.archetypes.get(a["Name"]) == "healthy"][
        :3
    ]
    if len(healthy) < 3:
        return {"set_in_crm": 0}
    until = (now + timedelta(days=30)).date().isoformat()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    for i, (grade, reason, by) in zip(
        healthy,
        (
            ("Red", "Champion left last week; renewal at risk", CS_LEAD),
            ("Yellow", "Budget review announced", None),
            ("Red", "gut feeling", "intern@example.com"),
        ),
        strict=True,
    ):
        sf_emu.update(
            "Account",
            ids[i],
            {
                "Health_Override__c": grade,
                "Health_Override_Reason__c": reason,
                "Health_Override_Until__c": until,
                "Health_Override_Set__c": stamp,
                "Health_Override_By__c": by or org.accounts[i]["OwnerEmail"],
            },
        )
    return {"set_in_crm": 3, "accounts": [org.accounts[i]["Name"] for i in healthy]}


def hubspot_stops(
    pipeline: Pipeline, set_time: Callable[[datetime], None], now: datetime
) -> dict[str, Any]:
    """Two days in which only Salesforce syncs, then two runs: stale flags, one ops alert."""
    set_time(now + HUBSPOT_DOWN_FOR)
    sync_accounts(pipeline.context)
    sync_related(pipeline.context)

    def ops_alerts() -> int:
        return sum(1 for a in pipeline.store.actions() if a.rule == "source_stale")

    first = pipeline.score_and_act()
    after_first = ops_alerts()
    pipeline.score_and_act()
    return {
        "stale_accounts": first.scoring.stale_accounts,
        "stale_sources": first.scoring.stale_sources,
        "ops_alerts": after_first,
        "ops_alerts_after_second_run": ops_alerts(),
        "crm_records_updated": first.write.records_updated,
    }


def print_governance(
    console: Console, overrides: dict[str, Any], stopped: dict[str, Any], keep: Path | None
) -> None:
    if overrides.get("set_in_crm"):
        console.print(
            f"governance: {overrides['set_in_crm']} overrides typed into Salesforce "
            "(one by a user without the right: refused, see `healthscore override "
            "--list`)",
            highlight=False,
        )
    if stopped.get("stale_sources"):
        console.print(
            f"governance: HubSpot stopped syncing for "
            f"{format_duration(HUBSPOT_DOWN_FOR)}: {stopped['stale_accounts']} "
            f"accounts flagged stale, {stopped['ops_alerts']} operations alert "
            f"({stopped['ops_alerts_after_second_run']} after one more run)",
            highlight=False,
        )
    if keep is not None:
        db, config = keep_paths(keep)
        console.print(
            f"\nkept the demo's data in {keep}; try the CLI on it:\n"
            f"  export DATABASE_URL=sqlite:///{db.resolve()}\n"
            f"  export HEALTHSCORE_CONFIG={config.resolve()}\n"
            "  healthscore override --list\n  healthscore history ACCOUNT\n"
            "  healthscore explain ACCOUNT",
            highlight=False,
            soft_wrap=True,
        )
