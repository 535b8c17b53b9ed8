"""The chaos run's invariants, from the store and the emulators' own logs.

- CRM fields equal the store: every Salesforce Account holds its latest score and grade, and
  every health field the store believes each CRM holds (HubSpot's matched companies too);
- each alert, task and email at its vendor exactly once per episode (the idempotency key is
  account + episode), and every intent the store recorded as delivered is there;
- no pending write lost: none left pending once the faults are lifted and the run settled;
- every alert a kill delayed (recorded before the kill, not yet posted) was posted within two
  cycle intervals of the kill.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from healthscore.pipeline.scoring_run import CRM_GRADES
from healthscore.pipeline.writeback import TIMESTAMP_ROLE, _comparable
from store import Store

DELIVERED = {"slack": "slack", "task": "tasks", "email_send": "emails"}


@dataclass(frozen=True)
class Kill:
    """A worker SIGKILLed at ``at`` (epoch seconds) while ``where`` was in flight."""

    where: str
    at: float
    pid: int


def crm_mismatches(store: Store, state: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """Accounts whose CRM fields differ from the store (one line each, for the log), and how
    many records were compared in each CRM."""
    latest = store.scores_as_of(datetime.now(UTC))
    known = store.crm_state("salesforce")
    out = []
    checked = {"salesforce": 0, "hubspot": 0}
    for account_id, fields in state["accounts"].items():
        score = latest.get(account_id)
        if score is None:
            continue  # never scored (no data), never written
        checked["salesforce"] += 1
        want = None if score.score is None else float(round(score.score))
        got = fields.get("score")
        if (want, CRM_GRADES[score.grade]) != (
            None if got is None else float(got),
            fields.get("grade"),
        ):
            out.append(f"salesforce {account_id}: {fields} but the store has {want} {score.grade}")
        elif _roles(fields) != _roles(known.get(account_id, {})):
            out.append(
                f"salesforce {account_id}: {fields} but the store wrote {known.get(account_id)}"
            )
    companies = state["companies"]
    by_account = {a: c for c, a in _company_accounts(store, companies).items()}
    for account_id, values in store.crm_state("hubspot").items():
        company = companies.get(by_account.get(account_id, ""), {})
        got = {role: company.get(prop) for role, prop in state["hubspot_roles"].items()}
        checked["hubspot"] += 1
        if _hubspot(got) != _hubspot(values):
            out.append(f"hubspot {account_id}: {got} but the store wrote {values}")
    return out, checked


def _roles(values: dict[str, Any]) -> dict[str, Any]:
    return _comparable({k: v for k, v in values.items() if k != TIMESTAMP_ROLE})


def _hubspot(values: dict[str, Any]) -> dict[str, str]:
    """HubSpot holds every property as text: compare as HubSpot would show them."""
    from connectors.hubspot.writer import to_property_value

    out = {}
    for role, value in values.items():
        if role == TIMESTAMP_ROLE:
            continue
        text = to_property_value(value) if not isinstance(value, str) else value
        with contextlib.suppress(ValueError):
            text = to_property_value(float(text)) if role == "score" and text else text
        out[role] = text.lower() if role == "grade" else text
    return out


def _company_accounts(store: Store, companies: dict[str, Any]) -> dict[str, str]:
    """HubSpot company id → account id, as identity resolution matched them."""
    keys = {(kind, value): account for kind, value, account in store.account_keys()}
    out = {}
    for company_id, props in companies.items():
        account = props.get("salesforce_account_id") or keys.get(
            ("domain", (props.get("domain") or "").lower())
        )
        if account:
            out[company_id] = account
    return out


def deliveries(store: Store, state: dict[str, Any]) -> dict[str, int]:
    """Per channel: keys at the vendor more than once, and intents the store recorded as
    delivered (or still owes) that the vendor does not hold once."""
    at_vendor = {
        "slack": Counter(m["key"] for m in state["slack"] if m["key"]),
        "tasks": Counter(state["tasks"]),
        "emails": Counter(state["emails"]),
    }
    out: dict[str, int] = {}
    for kind, channel in DELIVERED.items():
        seen = at_vendor[channel]
        out[f"duplicate_{channel}"] = sum(n - 1 for n in seen.values() if n > 1)
        owed = [a for a in store.actions(kind=kind) if a.status in ("sent", "pending", "sending")]
        out[f"undelivered_{channel}"] = sum(1 for a in owed if seen.get(a.key, 0) != 1)
        # an email whose answer was lost is `unknown` and never re-sent (no look-up by key)
        out[f"unknown_{channel}"] = len(store.actions(status="unknown", kind=kind))
    return out


def lost_writes(store: Store) -> int:
    """Writes still pending after the run settled with every fault lifted."""
    return sum(len(store.pending_writes(crm)) for crm in ("salesforce", "hubspot"))


def recovery_cycles(store: Store, state: dict[str, Any], kills: list[Kill], every: float) -> float:
    """The longest wait, in cycle intervals, from a kill to the post of an alert it held up:
    recorded before the kill, not yet posted (measured from the last kill before the post,
    when one recovery was itself killed). 0.0 when no alert waited on a kill; infinite when
    one was never posted."""
    posted = {m["key"]: m["ts"] for m in state["slack"] if m["key"]}
    worst = 0.0
    for action in store.actions(kind="slack"):
        created = epoch(action.created_at)
        delivered = posted.get(action.key, float("inf"))
        held = [k.at for k in kills if created < k.at < delivered]
        if held:
            worst = max(worst, (delivered - max(held)) / every)
    return round(worst, 2)


def epoch(moment: datetime) -> float:
    """Epoch seconds of a stored moment (naive ones are UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def delayed_alerts(store: Store, state: dict[str, Any], kills: list[Kill]) -> int:
    """Alerts recorded before a kill and posted after it (what the kills held up)."""
    posted = {m["key"]: m["ts"] for m in state["slack"] if m["key"]}
    return sum(
        1
        for a in store.actions(kind="slack")
        if any(epoch(a.created_at) < k.at <= posted.get(a.key, 0.0) for k in kills)
    )


def next_cycle_cycles(store: Store, kills: list[Kill], every: float) -> float:
    """The longest wait, in cycle intervals, from a kill to the end of the first score run
    that started after it (infinite when none did)."""
    runs = [(epoch(r.started_at), epoch(r.finished_at)) for r in store.runs() if r.finished_at]
    worst = 0.0
    for kill in kills:
        ends = [end for start, end in runs if start > kill.at]
        worst = max(worst, (min(ends) - kill.at) / every if ends else float("inf"))
    return round(worst, 2)
