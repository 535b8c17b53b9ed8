"""CRM write-back: health values waiting to be written to the CRM, and the values the CRM is
known to hold (so only what changed is written)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .base import StoreBase
from .engine import upsert
from .models import CrmFieldState, PendingWrite, utcnow


class WritebackMixin(StoreBase):
    """Pending writes, kept until the CRM accepted them, and the CRM's known values."""

    def crm_state(self, crm: str) -> dict[str, dict[str, Any]]:
        with self.session() as s:
            return {
                r.account_id: r.fields
                for r in s.scalars(select(CrmFieldState).where(CrmFieldState.crm == crm))
            }

    def remember_crm_values(self, crm: str, values: Mapping[str, dict[str, Any]]) -> None:
        """Record the health values the CRM was seen to hold (e.g. after a CSM edited one)."""
        with self.session() as s:
            _set_crm_state(s, crm, values)

    def queue_writes(self, crm: str, changes: Mapping[str, dict[str, Any]]) -> None:
        """Make ``changes`` the pending values (newest wins; attempts are kept)."""
        now = utcnow()
        rows = [
            {
                "crm": crm,
                "account_id": a,
                "fields": f,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for a, f in changes.items()
        ]
        with self.session() as s:
            upsert(s, PendingWrite.__table__, rows, ["crm", "account_id"], ["fields", "updated_at"])

    def pending_writes(self, crm: str) -> list[PendingWrite]:
        stmt = (
            select(PendingWrite)
            .where(PendingWrite.crm == crm)
            .order_by(PendingWrite.created_at, PendingWrite.account_id)
        )
        with self.session() as s:
            return list(s.scalars(stmt))

    def drop_pending(self, crm: str, account_ids: Iterable[str]) -> None:
        with self.session() as s:
            _delete_pending(s, crm, list(account_ids))

    def complete_writes(self, crm: str, written: Mapping[str, dict[str, Any]]) -> None:
        """The CRM accepted these values: remember them and clear them from pending."""
        if not written:
            return
        with self.session() as s:
            _set_crm_state(s, crm, written)
            _delete_pending(s, crm, list(written))

    def fail_writes(self, crm: str, errors: Mapping[str, str]) -> None:
        with self.session() as s:
            for account_id, error in errors.items():
                s.execute(
                    update(PendingWrite)
                    .where(PendingWrite.crm == crm, PendingWrite.account_id == account_id)
                    .values(
                        attempts=PendingWrite.attempts + 1,
                        last_error=error[:2000],
                        updated_at=utcnow(),
                    )
                )


def _set_crm_state(s: Session, crm: str, values: Mapping[str, dict[str, Any]]) -> None:
    now = utcnow()
    upsert(
        s,
        CrmFieldState.__table__,
        [{"crm": crm, "account_id": a, "fields": f, "written_at": now} for a, f in values.items()],
        ["crm", "account_id"],
        ["fields", "written_at"],
    )


def _delete_pending(s: Session, crm: str, ids: list[str]) -> None:
    for start in range(0, len(ids), 5000):
        s.execute(
            delete(PendingWrite).where(
                PendingWrite.crm == crm, PendingWrite.account_id.in_(ids[start : start + 5000])
            )
        )
