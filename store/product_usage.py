"""Product usage: the daily values in ``usage_daily`` read as series and summaries, and the
ledger of the loads that wrote them (the fast writer itself is in ``store.usage``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import bindparam, select, text

from .base import StoreBase
from .engine import upsert
from .models import UsageLoad, utcnow

if TYPE_CHECKING:
    from .usage import UsageWriter


class UsageMixin(StoreBase):
    """Daily usage values and their loads: read in bulk, one row per account and metric."""

    @contextmanager
    def usage_writer(self, source: str) -> Iterator[UsageWriter]:
        """Chunked upserts into usage_daily (COPY + merge on PostgreSQL); see store/usage.py."""
        from .usage import usage_writer  # pyarrow is loaded only by usage loads

        with usage_writer(self.engine, source) as writer:
            yield writer

    def usage_load(self, source: str, digest: str) -> UsageLoad | None:
        """The completed load of this content, if there was one."""
        with self.session() as s:
            return s.get(UsageLoad, (source, digest))

    def record_usage_load(self, source: str, digest: str, **fields: Any) -> None:
        with self.session() as s:
            upsert(
                s,
                UsageLoad.__table__,
                [{"source": source, "digest": digest, "loaded_at": utcnow(), **fields}],
                ["source", "digest"],
                [*fields, "loaded_at"],
            )

    def usage_loads(self, source: str | None = None) -> list[UsageLoad]:
        stmt = select(UsageLoad).order_by(UsageLoad.loaded_at.desc())
        if source is not None:
            stmt = stmt.where(UsageLoad.source == source)
        with self.session() as s:
            return list(s.scalars(stmt))

    def usage_series(
        self, metrics: Iterable[str], until: date | None = None, since: date | None = None
    ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
        """(account_id, metric, days, values) of the ``usage_daily`` rows of some metrics from
        ``since`` to ``until`` — one item per account and metric, days as ``datetime64[D]``,
        values float64.

        One query: each series comes back as two comma-joined lists (a row per account and
        metric instead of one per day); the whole history is scanned in primary-key order.
        """
        wanted = list(metrics)
        if not wanted:
            return
        last = (until or date(9999, 12, 31)).isoformat()
        first = (since or date(1, 1, 1)).isoformat()
        # days travel as whole days since 1970-01-01: numbers parse far faster than dates
        if self.engine.dialect.name == "sqlite":
            # '+' keeps SQLite off the (metric, day) index for a whole-history read: a
            # primary-key scan needs no sort; a short span reads through that index
            plus = "" if since is not None else "+"
            sql = (
                "SELECT account_id, metric, "
                "group_concat(CAST(julianday(day) - 2440587.5 AS INTEGER)), "
                "group_concat(value) "
                f"FROM usage_daily WHERE {plus}metric IN :metrics AND value IS NOT NULL "
                f"AND {plus}day <= :last AND day >= :first GROUP BY account_id, metric"
            )
        else:
            sql = (
                "SELECT account_id, metric, "
                "string_agg((day - DATE '1970-01-01')::text, ','), "
                "string_agg(value::text, ',') FROM usage_daily WHERE metric IN :metrics "
                "AND value IS NOT NULL AND day <= CAST(:last AS date) "
                "AND day >= CAST(:first AS date) GROUP BY account_id, metric"
            )
        stmt = text(sql).bindparams(bindparam("metrics", expanding=True))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(
                stmt, {"metrics": wanted, "last": last, "first": first}
            )
            for account_id, metric, days, values in result:
                yield (
                    account_id,
                    metric,
                    np.fromstring(days, dtype=np.int64, sep=",").astype("datetime64[D]"),
                    np.fromstring(values, dtype=np.float64, sep=","),
                )

    def usage_summary(
        self, metrics: Iterable[str], until: date | None = None
    ) -> Iterator[tuple[str, str, date, date | None, date, float]]:
        """(account_id, metric, first day, last day with a value > 0, last day, its value) of
        each account and metric up to ``until``: what a windowed read of recent days alone
        cannot know (``healthscore.pipeline.point_in_time.load_usage``)."""
        wanted = list(metrics)
        if not wanted:
            return
        last = (until or date(9999, 12, 31)).isoformat()
        cast = "CAST(:last AS date)" if self.engine.dialect.name != "sqlite" else ":last"
        sql = (
            "SELECT g.account_id, g.metric, g.first_day, g.active_day, g.last_day, u.value "
            "FROM (SELECT account_id, metric, MIN(day) AS first_day, "
            "MAX(CASE WHEN value > 0 THEN day END) AS active_day, MAX(day) AS last_day "
            "FROM usage_daily WHERE metric IN :metrics AND value IS NOT NULL "
            f"AND day <= {cast} GROUP BY account_id, metric) g "
            "JOIN usage_daily u ON u.account_id = g.account_id AND u.metric = g.metric "
            "AND u.day = g.last_day"
        )
        stmt = text(sql).bindparams(bindparam("metrics", expanding=True))

        def day(value: Any) -> date | None:
            return None if value is None else date.fromisoformat(str(value)[:10])

        with self.engine.connect() as conn:
            for account_id, metric, first, active, newest, value in conn.execute(
                stmt, {"metrics": wanted, "last": last}
            ):
                yield account_id, metric, day(first), day(active), day(newest), value
