"""CSM grade overrides: "I know something the data doesn't", with an end date.

An override replaces an account's computed grade until it expires (then the computed grade is
back by itself). It carries who set it, why, and until when. Only the users and roles the
YAML allows (``overrides:``) may set one; an override from anyone else is kept as *refused*
— reported by ``healthscore override --list`` and logged — and never applied.

Overrides come from ``healthscore override ACCOUNT --grade red --reason … --expires 30d`` or
from the CRM (an override field on the Account, read by the sync with its own set-at date).
A newer override of an account replaces the older one; ``--clear`` ends it early.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from healthscore.core.durations import format_duration
from healthscore.core.errors import ConfigError
from healthscore.governance.policy import OverridePolicy
from store import Store
from store.models import Account, Override

log = logging.getLogger(__name__)

GRADES = ("red", "yellow", "green")
ACTIVE, REFUSED, CLEARED, REPLACED = "active", "refused", "cleared", "replaced"


class OverrideRefused(ConfigError):
    """The user may not set overrides (the attempt is recorded as refused)."""


@dataclass(frozen=True)
class OverrideView:
    """An override as the rest of the product sees it (detached from the session)."""

    id: int
    account_id: str
    grade: str
    reason: str
    set_by: str
    origin: str
    set_at: datetime
    expires_at: datetime
    status: str
    note: str | None = None

    @classmethod
    def of(cls, row: Override) -> OverrideView:
        return cls(
            row.id,
            row.account_id,
            row.grade,
            row.reason,
            row.set_by,
            row.origin,
            row.set_at,
            row.expires_at,
            row.status,
            row.note,
        )

    def state(self, now: datetime) -> str:
        """active, expired, refused, cleared or replaced — as of ``now``."""
        if self.status == ACTIVE and self.expires_at <= now:
            return "expired"
        return self.status

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "grade": self.grade,
            "reason": self.reason,
            "set_by": self.set_by,
            "origin": self.origin,
            "set_at": self.set_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }

    def reason_text(self) -> str:
        """The line on the Account page / in Slack: first of the reasons."""
        why = f": {self.reason}" if self.reason else ""
        return f"Override {self.grade} by {self.set_by} until {self.expires_at:%Y-%m-%d}{why}"


def find_account(store: Store, account: str, accounts: list[Account] | None = None) -> Account:
    """An account by id or exact (case-insensitive) name; errors say what to do."""
    accounts = store.accounts() if accounts is None else accounts
    wanted = account.casefold()
    matches = [a for a in accounts if a.id == account] or [
        a for a in accounts if a.name.casefold() == wanted
    ]
    if not matches:
        raise ConfigError(
            f"no account with id or name {account!r} in the store (run `healthscore sync` first?)"
        )
    if len(matches) > 1:
        raise ConfigError(
            f"{len(matches)} accounts are named {account!r}; use the id: "
            + ", ".join(a.id for a in matches)
        )
    return matches[0]


def set_override(
    store: Store,
    policy: OverridePolicy,
    account: Account,
    *,
    grade: str,
    reason: str,
    set_by: str | None,
    now: datetime,
    expires: timedelta | None = None,
    expires_at: datetime | None = None,
    origin: str = "cli",
) -> OverrideView:
    """Record an override; a refused one is recorded too, then ``OverrideRefused`` is raised.

    It replaces the account's active override, if any.
    """
    grade = grade.strip().lower()
    if grade not in GRADES:
        raise ConfigError(f"--grade must be one of {', '.join(GRADES)}, not {grade!r}")
    until = expires_at or now + (expires or policy.default_duration)
    if until <= now:
        raise ConfigError(f"the override would already have expired ({until:%Y-%m-%d %H:%M})")
    if until - now > policy.max_duration + timedelta(days=1):  # a date means its whole day
        raise ConfigError(
            f"an override lasts at most {format_duration(policy.max_duration)} "
            "(overrides.max_duration)"
        )
    allowed, why = policy.permits(set_by, account.owner_email)
    with store.session() as s:
        row = Override(
            account_id=account.id,
            grade=grade,
            reason=reason.strip(),
            set_by=(set_by or "unknown").strip(),
            origin=origin,
            set_at=now,
            expires_at=until,
            status=ACTIVE if allowed else REFUSED,
            note=None if allowed else why,
        )
        if allowed:
            s.execute(
                update(Override)
                .where(Override.account_id == account.id, Override.status == ACTIVE)
                .values(status=REPLACED, ended_at=now, note=f"replaced by {row.set_by}")
            )
        s.add(row)
        s.flush()
        view = OverrideView.of(row)
    if not allowed:
        log.warning("override of %s (%s) refused: %s", account.name, account.id, why)
        raise OverrideRefused(f"override refused: {why}")
    log.info("override of %s: %s until %s by %s", account.id, grade, until, view.set_by)
    return view


def clear_override(
    store: Store, policy: OverridePolicy, account: Account, *, by: str | None, now: datetime
) -> int:
    """End the account's active override now (only someone allowed to set one may); returns
    how many were ended (0 or 1)."""
    allowed, why = policy.permits(by, account.owner_email)
    if not allowed:
        log.warning("clearing the override of %s (%s) refused: %s", account.name, account.id, why)
        raise OverrideRefused(f"clearing refused: {why}")
    with store.session() as s:
        res = s.execute(
            update(Override)
            .where(
                Override.account_id == account.id,
                Override.status == ACTIVE,
                Override.expires_at > now,
            )
            .values(status=CLEARED, ended_at=now, note=f"cleared by {by or 'unknown'}")
        )
        return int(res.rowcount or 0)


def active_overrides(
    store: Store, now: datetime, account_ids: Iterable[str] | None = None
) -> dict[str, OverrideView]:
    """The override in force per account at ``now`` (the newest one set by then)."""
    stmt = (
        select(Override)
        .where(Override.status == ACTIVE, Override.set_at <= now, Override.expires_at > now)
        .order_by(Override.set_at, Override.id)
    )
    wanted = None if account_ids is None else set(account_ids)
    out: dict[str, OverrideView] = {}
    with store.session() as s:
        for row in s.scalars(stmt):
            if wanted is None or row.account_id in wanted:
                out[row.account_id] = OverrideView.of(row)
    return out


def list_overrides(store: Store, account_id: str | None = None) -> list[OverrideView]:
    stmt = select(Override).order_by(Override.set_at.desc(), Override.id.desc())
    if account_id is not None:
        stmt = stmt.where(Override.account_id == account_id)
    with store.session() as s:
        return [OverrideView.of(r) for r in s.scalars(stmt)]


def expiring_soon(
    overrides: Mapping[str, OverrideView], now: datetime, notice: timedelta
) -> list[OverrideView]:
    """Active overrides that end within ``notice`` (each gets one Slack note)."""
    return [o for o in overrides.values() if now < o.expires_at <= now + notice]


def record_crm_overrides(
    store: Store,
    policy: OverridePolicy,
    crm: str,
    values: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> dict[str, int]:
    """Take the override fields read from the CRM (account id → {grade, reason, until, by,
    set_at}). Each override is recorded once — its set-at date tells a new one from one
    already seen — and checked against the policy. An emptied grade ends the account's
    CRM-set override. Returns ``{"applied": n, "refused": n, "cleared": n}``.
    """
    counts = {"applied": 0, "refused": 0, "cleared": 0}
    ids = list(values)
    seen: set[tuple[str, datetime]] = set()
    active: set[str] = set()
    with store.session() as s:
        for start in range(0, len(ids), 5000):
            for row in s.scalars(
                select(Override).where(
                    Override.origin == crm, Override.account_id.in_(ids[start : start + 5000])
                )
            ):
                seen.add((row.account_id, row.set_at))
                if row.status == ACTIVE:
                    active.add(row.account_id)
    for account_id, raw in values.items():
        grade = str(raw.get("grade") or "").strip().lower()
        set_at = raw.get("set_at")
        if not grade:
            if account_id in active:
                with store.session() as s:
                    s.execute(
                        update(Override)
                        .where(
                            Override.account_id == account_id,
                            Override.origin == crm,
                            Override.status == ACTIVE,
                        )
                        .values(status=CLEARED, ended_at=now, note=f"cleared in {crm}")
                    )
                counts["cleared"] += 1
            continue
        if not isinstance(set_at, datetime):
            log.warning(
                "%s override on %s skipped: no set-at date (the override's own "
                "last-modified field)",
                crm,
                account_id,
            )
            continue
        if (account_id, set_at) in seen:
            continue
        account = store.account(account_id)
        if account is None:
            continue
        until = raw.get("until")
        try:
            set_override(
                store,
                policy,
                account,
                grade=grade,
                reason=str(raw.get("reason") or ""),
                set_by=raw.get("by"),
                now=set_at,
                origin=crm,
                expires_at=until if isinstance(until, datetime) else None,
            )
            counts["applied"] += 1
        except OverrideRefused:
            counts["refused"] += 1
        except ConfigError as exc:  # a bad value in one record: log it with its id, go on
            log.warning("%s override on %s skipped: %s", crm, account_id, exc)
    return counts


class CrmOverrides:
    """The overrides a CRM sync reads, checked against the policy (what a connector is handed
    as ``SyncContext.overrides``: connectors record overrides, governance decides)."""

    def __init__(self, store: Store, policy: OverridePolicy) -> None:
        self.store, self.policy = store, policy

    def record(
        self, origin: str, values: Mapping[str, Mapping[str, Any]], now: datetime
    ) -> dict[str, int]:
        return record_crm_overrides(self.store, self.policy, origin, values, now)

    def active(
        self, now: datetime, account_ids: Iterable[str] | None = None
    ) -> dict[str, OverrideView]:
        return active_overrides(self.store, now, account_ids)
