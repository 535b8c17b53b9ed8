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


_RANGE = " AND account_id >= :first_account AND account_id <= :last_account"


def _bounds(accounts: tuple[str, str] | None) -> dict[str, str]:
    if accounts is None:
        return {}
    return {"first_account": accounts[0], "last_account": accounts[1]}


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
        self,
        metrics: Iterable[str],
        until: date | None = None,
        since: date | None = None,
        accounts: tuple[str, str] | None = None,
    ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
        """(account_id, metric, days, values) of the ``usage_daily`` rows of some metrics from
        ``since`` to ``until`` — one item per account and metric, days as ``datetime64[D]``,
        values float64. ``accounts``: only the ids from the first to the second (a chunk of
        accounts: a range of the primary key).

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
            # '+' keeps SQLite off the (metric, day) index for a whole-history read or a
            # chunk of accounts: a primary-key scan (of the chunk's range) needs no sort; a
            # short span of every account reads through that index
            plus = "" if since is not None and accounts is None else "+"
            sql = (
                "SELECT account_id, metric, "
                "group_concat(CAST(julianday(day) - 2440587.5 AS INTEGER)), "
                "group_concat(value) "
                f"FROM usage_daily WHERE {plus}metric IN :metrics AND value IS NOT NULL "
                f"AND {plus}day <= :last AND day >= :first{_RANGE if accounts else ''} "
                "GROUP BY account_id, metric"
            )
        else:
            sql = (
                "SELECT account_id, metric, "
                "string_agg((day - DATE '1970-01-01')::text, ','), "
                "string_agg(value::text, ',') FROM usage_daily WHERE metric IN :metrics "
                "AND value IS NOT NULL AND day <= CAST(:last AS date) "
                f"AND day >= CAST(:first AS date){_RANGE if accounts else ''} "
                "GROUP BY account_id, metric"
            )
        stmt = text(sql).bindparams(bindparam("metrics", expanding=True))
        params = {"metrics": wanted, "last": last, "first": first, **_bounds(accounts)}
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(stmt, params)
            for account_id, metric, days, values in result:
                yield (
                    account_id,
                    metric,
                    np.fromstring(days, dtype=np.int64, sep=",").astype("datetime64[D]"),
                    np.fromstring(values, dtype=np.float64, sep=","),
                )

    def usage_summary(
        self,
        metrics: Iterable[str],
        until: date | None = None,
        accounts: tuple[str, str] | None = None,
    ) -> Iterator[tuple[str, str, date, date | None, date, float]]:
        """(account_id, metric, first day, last day with a value > 0, last day, its value) of
        each account and metric up to ``until``: what a windowed read of recent days alone
        cannot know (``healthscore.pipeline.point_in_time.load_usage``); ``accounts`` as in
        :meth:`usage_series`."""
        wanted = list(metrics)
        if not wanted:
            return
        last = (until or date(9999, 12, 31)).isoformat()
        sqlite = self.engine.dialect.name == "sqlite"
        cast = ":last" if sqlite else "CAST(:last AS date)"
        # a chunk of accounts: SQLite reads their primary-key range, not the (metric, day) index
        plus = "+" if sqlite and accounts else ""
        sql = (
            "SELECT g.account_id, g.metric, g.first_day, g.active_day, g.last_day, u.value "
            "FROM (SELECT account_id, metric, MIN(day) AS first_day, "
            "MAX(CASE WHEN value > 0 THEN day END) AS active_day, MAX(day) AS last_day "
            f"FROM usage_daily WHERE {plus}metric IN :metrics AND value IS NOT NULL "
            f"AND {plus}day <= {cast}{_RANGE if accounts else ''} GROUP BY account_id, metric) g "
            "JOIN usage_daily u ON u.account_id = g.account_id AND u.metric = g.metric "
            "AND u.day = g.last_day"
        )
        stmt = text(sql).bindparams(bindparam("metrics", expanding=True))

        def day(value: Any) -> date | None:
            return None if value is None else date.fromisoformat(str(value)[:10])

        with self.engine.connect() as conn:
            for account_id, metric, first, active, newest, value in conn.execute(
                stmt, {"metrics": wanted, "last": last, **_bounds(accounts)}
            ):
                yield account_id, metric, day(first), day(active), day(newest), value
