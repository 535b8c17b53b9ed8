"""How old each source's data is, which accounts rest on stale data, and one operations alert
per source that stopped syncing.

A source's data is as fresh as its last complete sync: the newest of its sync cursors (a
cursor holds the moment its last complete pull started; an opaque cursor counts from when it
was stored). A source without cursors (a file load, a warehouse push) counts from its newest
signal. An account is *stale* when a source it has values from is older than that source's
``freshness:`` limit. The operations alert's idempotency key names the source and its last
sync, so a stopped source raises exactly one alert for the whole stoppage — not one per cycle,
not one per account — and a new one only if it stops again after recovering.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from actions import Intent
from healthscore.core.durations import format_duration
from healthscore.governance.policy import Freshness
from store import Store
from store.models import Account, SignalLatest

STALE_RULE = "source_stale"


@dataclass(frozen=True)
class SourceAge:
    source: str
    last_sync: datetime
    age: timedelta
    limit: timedelta

    @property
    def stale(self) -> bool:
        return self.age > self.limit

    def describe(self) -> str:
        return (
            f"{self.source} last synced {format_duration(_whole(self.age))} ago "
            f"(limit {format_duration(self.limit)})"
        )


def _whole(age: timedelta) -> timedelta:
    """An age rounded to something a person reads (minutes, hours or days)."""
    step = (
        timedelta(days=1)
        if age >= timedelta(days=2)
        else (timedelta(hours=1) if age >= timedelta(hours=2) else timedelta(minutes=1))
    )
    return max(step, step * round(age / step))


def _cursor_time(value: str, updated_at: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return updated_at
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def source_ages(store: Store, limits: Freshness, now: datetime) -> dict[str, SourceAge]:
    """Every source the store holds values or cursors for, with its data age."""
    last: dict[str, datetime] = {}
    for c in store.cursors():
        at = _cursor_time(c.value, c.updated_at)
        last[c.source] = max(last.get(c.source, at), at)
    with store.session() as s:
        for source, newest in s.execute(
            select(SignalLatest.source, func.max(SignalLatest.observed_at)).group_by(
                SignalLatest.source
            )
        ):
            if source not in last and newest is not None:
                last[source] = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    return {
        src: SourceAge(src, at, max(now - at, timedelta(0)), limits.limit(src))
        for src, at in sorted(last.items())
    }


def stale_accounts(store: Store, ages: dict[str, SourceAge]) -> dict[str, list[str]]:
    """Live account id → the stale sources it has values from."""
    stale = [a.source for a in ages.values() if a.stale]
    if not stale:
        return {}
    out: dict[str, list[str]] = defaultdict(list)
    stmt = (
        select(SignalLatest.account_id, SignalLatest.source)
        .distinct()
        .join(Account, Account.id == SignalLatest.account_id)
        .where(Account.deleted.is_(False), SignalLatest.source.in_(stale))
    )
    with store.session() as s:
        for account_id, source in s.execute(stmt):
            out[account_id].append(source)
    return {a: sorted(v) for a, v in out.items()}


def stopped_source_intents(
    ages: dict[str, SourceAge], stale: dict[str, list[str]], channel: str | None
) -> list[Intent]:
    """One operations alert per stale source, keyed by its last sync (one per stoppage)."""
    intents = []
    for age in ages.values():
        if not age.stale:
            continue
        affected = sum(1 for sources in stale.values() if age.source in sources)
        payload: dict[str, Any] = {
            "template": STALE_RULE,
            "rule": STALE_RULE,
            "name": f"source {age.source}",
            "source": age.source,
            "last_sync": age.last_sync.isoformat(),
            "age": format_duration(_whole(age.age)),
            "limit": format_duration(age.limit),
            "accounts": affected,
        }
        intents.append(
            Intent(
                key=f"{STALE_RULE}:{age.source}:{age.last_sync.isoformat()}",
                rule=STALE_RULE,
                kind="slack",
                account_id=f"source:{age.source}"[:64],
                target=channel,
                payload=payload,
            )
        )
    return intents
