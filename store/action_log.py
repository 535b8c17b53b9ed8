"""The action log: action intents under their idempotency keys, their delivery, and where
each account stands with each alert rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .base import StoreBase
from .models import ActionLog, RuleStateRow, utcnow


class ActionLogMixin(StoreBase):
    """Intents stored before delivery, so a retried run or a second worker never sends one
    twice; and the alert rules' states."""

    def claim_action(
        self,
        key: str,
        *,
        rule: str,
        kind: str,
        account_id: str,
        target: str | None,
        payload: dict[str, Any],
        status: str = "pending",
        error: str | None = None,
    ) -> bool:
        """Record an intent under its idempotency key; False if the key was already there."""
        try:
            with self.session() as s:
                s.add(
                    ActionLog(
                        key=key,
                        rule=rule,
                        kind=kind,
                        account_id=account_id,
                        target=target,
                        payload=payload,
                        status=status,
                        error=error,
                    )
                )
        except IntegrityError:
            return False
        return True

    def bundle_actions(
        self,
        key: str,
        *,
        rule: str,
        kind: str,
        target: str | None,
        payload: dict[str, Any],
        item_keys: list[str],
    ) -> bool:
        """Record one action made of several (a digest) and mark those ``bundled`` into it —
        in one transaction; False (and nothing changed) if ``key`` already exists."""
        try:
            with self.session() as s:
                s.add(
                    ActionLog(
                        key=key,
                        rule=rule,
                        kind=kind,
                        account_id="*",
                        target=target,
                        payload=payload,
                    )
                )
                s.flush()
                for start in range(0, len(item_keys), 5000):
                    s.execute(
                        update(ActionLog)
                        .where(
                            ActionLog.key.in_(item_keys[start : start + 5000]),
                            ActionLog.status == "pending",
                        )
                        .values(status="bundled", response_id=key, updated_at=utcnow())
                    )
        except IntegrityError:
            return False
        return True

    def action_keys(self, kind: str) -> set[str]:
        """Every idempotency key of one kind of action (any status)."""
        with self.session() as s:
            return set(s.scalars(select(ActionLog.key).where(ActionLog.kind == kind)))

    def target_counts(
        self,
        kind: str,
        since: datetime,
        statuses: tuple[str, ...] = ("pending", "sending", "sent", "unknown"),
    ) -> dict[str, int]:
        """Actions of one kind per target created since ``since`` (a frequency cap)."""
        stmt = (
            select(func.lower(ActionLog.target), func.count())
            .where(
                ActionLog.kind == kind,
                ActionLog.created_at >= since,
                ActionLog.status.in_(statuses),
                ActionLog.target.is_not(None),
            )
            .group_by(func.lower(ActionLog.target))
        )
        with self.session() as s:
            return {str(t): int(n) for t, n in s.execute(stmt)}

    def actions(self, status: str | None = None, kind: str | None = None) -> list[ActionLog]:
        stmt = select(ActionLog).order_by(ActionLog.created_at, ActionLog.key)
        if status:
            stmt = stmt.where(ActionLog.status == status)
        if kind:
            stmt = stmt.where(ActionLog.kind == kind)
        with self.session() as s:
            return list(s.scalars(stmt))

    def begin_delivery(self, key: str) -> bool:
        """Move a pending intent to ``sending``; False if another worker got there first."""
        with self.session() as s:
            res = s.execute(
                update(ActionLog)
                .where(ActionLog.key == key, ActionLog.status == "pending")
                .values(status="sending", attempts=ActionLog.attempts + 1, updated_at=utcnow())
            )
            return res.rowcount == 1

    def begin_deliveries(self, keys: list[str]) -> set[str]:
        """Move a batch of pending intents to ``sending`` in one transaction (one request to
        the vendor carries them); the keys this worker got — another may hold the rest."""
        got: set[str] = set()
        with self.session() as s:
            for start in range(0, len(keys), 1000):
                got.update(
                    s.scalars(
                        update(ActionLog)
                        .where(
                            ActionLog.key.in_(keys[start : start + 1000]),
                            ActionLog.status == "pending",
                        )
                        .values(
                            status="sending", attempts=ActionLog.attempts + 1, updated_at=utcnow()
                        )
                        .returning(ActionLog.key)
                    )
                )
        return got

    def finish_delivery(
        self, key: str, status: str, *, response_id: str | None = None, error: str | None = None
    ) -> None:
        with self.session() as s:
            s.execute(
                update(ActionLog)
                .where(ActionLog.key == key)
                .values(status=status, response_id=response_id, error=error, updated_at=utcnow())
            )

    def finish_deliveries(self, outcomes: list[tuple[str, str, str | None, str | None]]) -> None:
        """Record a batch's outcomes — ``(key, status, response_id, error)`` each — in one
        transaction, so a batch is either recorded whole or left for the reconciler."""
        if not outcomes:
            return
        now = utcnow()
        rows = [
            {"key": k, "status": st, "response_id": rid, "error": err, "updated_at": now}
            for k, st, rid, err in outcomes
        ]
        with self.session() as s:
            s.execute(update(ActionLog), rows)

    def note_waiting(self, keys: list[str], error: str) -> None:
        """Give pending intents the error that holds them back (they stay ``pending``)."""
        with self.session() as s:
            for start in range(0, len(keys), 1000):
                s.execute(
                    update(ActionLog)
                    .where(
                        ActionLog.key.in_(keys[start : start + 1000]),
                        ActionLog.status == "pending",
                    )
                    .values(error=error)
                )

    def requeue_failed(self, keys: list[str]) -> int:
        """``failed`` → ``pending`` for these keys (a person fixed the cause); nothing else
        moves: a delivered or unknown intent is never handed back to the sender."""
        moved = 0
        with self.session() as s:
            for start in range(0, len(keys), 1000):
                res = s.execute(
                    update(ActionLog)
                    .where(
                        ActionLog.key.in_(keys[start : start + 1000]),
                        ActionLog.status == "failed",
                    )
                    .values(status="pending", updated_at=utcnow())
                )
                moved += res.rowcount
        return moved

    def rule_states(self) -> dict[tuple[str, str], RuleStateRow]:
        with self.session() as s:
            return {(r.rule, r.account_id): r for r in s.scalars(select(RuleStateRow))}
