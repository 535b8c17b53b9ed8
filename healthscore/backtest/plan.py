"""The snapshot dates of a backtest or fit, and the churn horizon after each.

``--from``/``--to`` every ``--every`` — days, weeks or calendar months (a month-end stays a
month-end) — or explicit ``--dates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from healthscore.core.durations import Months, Step, format_duration
from healthscore.core.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """The snapshot dates — ``start`` to ``end`` every ``every`` (days, weeks or calendar
    months), or the ``explicit`` dates — and the churn horizon after each."""

    start: date
    end: date
    every: Step | None
    horizon: timedelta
    explicit: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(f"--to ({self.end}) is before --from ({self.start})")
        if self.horizon < timedelta(days=1):
            raise ConfigError(f"--horizon must be at least 1d; got {self.horizon}")
        if self.explicit:
            return
        if self.every is None:
            raise ConfigError("a plan needs --every or explicit --dates")
        if isinstance(self.every, timedelta) and self.every < timedelta(days=1):
            raise ConfigError(f"--every must be at least 1d; got {self.every}")

    @classmethod
    def of_dates(cls, days: Sequence[date], horizon: timedelta) -> Plan:
        """Explicit snapshot dates (``--dates``): ascending, no repeats."""
        if not days:
            raise ConfigError("--dates: give at least one date")
        for before, after in pairwise(days):
            if after == before:
                raise ConfigError(f"--dates: {after} is given twice")
            if after < before:
                raise ConfigError(f"--dates must be in ascending order: {after} follows {before}")
        return cls(days[0], days[-1], None, horizon, tuple(days))

    def dates(self) -> list[date]:
        if self.explicit:
            return list(self.explicit)
        if isinstance(self.every, Months):
            months, out, k = self.every, [], 0
            while (day := months.nth(self.start, k)) <= self.end:
                out.append(day)
                k += 1
            return out
        assert self.every is not None
        step = timedelta(days=self.every.days)
        out, day = [], self.start
        while day <= self.end:
            out.append(day)
            day += step
        return out

    def describe(self) -> dict[str, Any]:
        """The plan as the report states it."""
        every = self.every
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "every": None
            if every is None
            else str(every)
            if isinstance(every, Months)
            else (format_duration(every)),
            "every_days": every.days if isinstance(every, timedelta) else None,
            "dates": [d.isoformat() for d in self.explicit] or None,
            "horizon_days": self.horizon.days,
        }
