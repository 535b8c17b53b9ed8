"""Accounts: the CRM's accounts, the unit every signal, score and action is about."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from .base import StoreBase
from .engine import upsert
from .models import Account, utcnow


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account as a CRM sync read it: what ``upsert_accounts`` takes."""

    id: str
    crm: str
    name: str
    owner_email: str | None = None
    owner_name: str | None = None
    attributes: Mapping[str, Any] | None = None
    deleted: bool = False


class AccountsMixin(StoreBase):
    """Accounts as the CRM syncs write them; a deleted one is kept, marked, and left out of
    reads unless asked for."""

    def upsert_accounts(self, rows: Iterable[AccountRow]) -> int:
        now = utcnow()
        values = [
            {
                "id": r.id,
                "crm": r.crm,
                "name": r.name,
                "owner_email": r.owner_email,
                "owner_name": r.owner_name,
                "attributes": dict(r.attributes or {}),
                "deleted": r.deleted,
                "updated_at": now,
            }
            for r in rows
        ]
        with self.session() as s:
            upsert(
                s,
                Account.__table__,
                values,
                ["id"],
                ["crm", "name", "owner_email", "owner_name", "attributes", "deleted", "updated_at"],
            )
        return len(values)

    def mark_accounts_deleted(self, ids: Iterable[str]) -> None:
        gone = list(ids)
        with self.session() as s:
            for start in range(0, len(gone), 5000):
                s.execute(
                    update(Account)
                    .where(Account.id.in_(gone[start : start + 5000]))
                    .values(deleted=True, updated_at=utcnow())
                )

    def accounts(self, include_deleted: bool = False) -> list[Account]:
        stmt = select(Account).order_by(Account.id)
        if not include_deleted:
            stmt = stmt.where(Account.deleted.is_(False))
        with self.session() as s:
            return list(s.scalars(stmt))

    def account_ids(self) -> list[str]:
        """Ids of the live accounts (no ORM objects: cheap for 100k+ accounts)."""
        with self.session() as s:
            return list(
                s.scalars(select(Account.id).where(Account.deleted.is_(False)).order_by(Account.id))
            )

    def account_count(self) -> int:
        """How many live accounts the store holds."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count()).select_from(Account).where(Account.deleted.is_(False))
                )
                or 0
            )

    def account(self, account_id: str) -> Account | None:
        with self.session() as s:
            return s.get(Account, account_id)
