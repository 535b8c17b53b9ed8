"""Identity: the keys that tie records of other systems to accounts (domains, outside ids),
and the records that matched no account (yet)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, func, select

from .base import StoreBase
from .engine import upsert
from .models import Account, AccountKey, UnmatchedRecord, utcnow


class IdentityMixin(StoreBase):
    """Account keys and unmatched records: what identity resolution reads and leaves behind."""

    def set_account_keys(self, kind: str, keys: Mapping[str, Iterable[str]]) -> None:
        """Replace the ``kind`` keys of each account in ``keys`` (account id → values)."""
        ids = list(keys)
        now = utcnow()
        rows = [
            {"kind": kind, "value": v, "account_id": a, "updated_at": now}
            for a, values in keys.items()
            for v in dict.fromkeys(values)
            if v
        ]
        with self.session() as s:
            for start in range(0, len(ids), 5000):
                s.execute(
                    delete(AccountKey).where(
                        AccountKey.kind == kind,
                        AccountKey.account_id.in_(ids[start : start + 5000]),
                    )
                )
            upsert(s, AccountKey.__table__, rows, ["kind", "value", "account_id"])

    def drop_account_keys(self, kind: str, values: Iterable[str]) -> None:
        """Forget keys that no longer exist (e.g. a CRM company merged into another)."""
        gone = list(values)
        with self.session() as s:
            for start in range(0, len(gone), 5000):
                s.execute(
                    delete(AccountKey).where(
                        AccountKey.kind == kind, AccountKey.value.in_(gone[start : start + 5000])
                    )
                )

    def account_keys(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        """(kind, value, account_id) of live accounts."""
        stmt = (
            select(AccountKey.kind, AccountKey.value, AccountKey.account_id)
            .join(Account, Account.id == AccountKey.account_id)
            .where(Account.deleted.is_(False))
        )
        if kind is not None:
            stmt = stmt.where(AccountKey.kind == kind)
        with self.session() as s:
            return [tuple(r) for r in s.execute(stmt)]  # type: ignore[misc]

    def record_unmatched(
        self,
        source: str,
        obj: str,
        unmatched: Mapping[str, tuple[str, str]],
        matched: Iterable[str] = (),
    ) -> None:
        """Remember records that matched no account (id → (reason, detail)); forget the ids
        in ``matched`` (they found their account since)."""
        now = utcnow()
        rows = [
            {
                "source": source,
                "object": obj,
                "record_id": rid,
                "reason": reason,
                "detail": detail[:512],
                "seen_at": now,
            }
            for rid, (reason, detail) in unmatched.items()
        ]
        done = list(matched)
        with self.session() as s:
            for start in range(0, len(done), 5000):
                s.execute(
                    delete(UnmatchedRecord).where(
                        UnmatchedRecord.source == source,
                        UnmatchedRecord.object == obj,
                        UnmatchedRecord.record_id.in_(done[start : start + 5000]),
                    )
                )
            upsert(
                s,
                UnmatchedRecord.__table__,
                rows,
                ["source", "object", "record_id"],
                ["reason", "detail", "seen_at"],
            )

    def unmatched(self, source: str | None = None) -> list[UnmatchedRecord]:
        stmt = select(UnmatchedRecord).order_by(
            UnmatchedRecord.source, UnmatchedRecord.object, UnmatchedRecord.record_id
        )
        if source is not None:
            stmt = stmt.where(UnmatchedRecord.source == source)
        with self.session() as s:
            return list(s.scalars(stmt))

    def unmatched_counts(self) -> dict[str, int]:
        stmt = select(UnmatchedRecord.source, func.count()).group_by(UnmatchedRecord.source)
        with self.session() as s:
            return {src: int(n) for src, n in s.execute(stmt)}
