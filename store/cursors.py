"""Sync cursors: the high-water mark of each source object, so a sync reads only what changed."""

from __future__ import annotations

from sqlalchemy import select

from .base import StoreBase
from .engine import upsert
from .models import SyncCursor, utcnow


class CursorsMixin(StoreBase):
    """One cursor per (source, object); a sync sets it only once that object synced."""

    def cursor(self, source: str, obj: str) -> str | None:
        with self.session() as s:
            row = s.get(SyncCursor, (source, obj))
            return row.value if row else None

    def cursors(self) -> list[SyncCursor]:
        with self.session() as s:
            return list(
                s.scalars(select(SyncCursor).order_by(SyncCursor.source, SyncCursor.object))
            )

    def set_cursor(self, source: str, obj: str, value: str) -> None:
        with self.session() as s:
            upsert(
                s,
                SyncCursor.__table__,
                [{"source": source, "object": obj, "value": value, "updated_at": utcnow()}],
                ["source", "object"],
                ["value", "updated_at"],
            )
