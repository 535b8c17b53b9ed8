"""Human durations in the YAML: ``30s``, ``15m``, ``1h``, ``7d``, ``2w``; and snapshot steps
that may also be calendar months (``1mo``, ``3months``), which no fixed duration can be."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_MONTHS = re.compile(r"^\s*(\d+)\s*(mo|mos|month|months)\s*$", re.IGNORECASE)


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a duration like 30s, 15m, 1h or 7d; got {value!r}")
    if isinstance(value, (int, float)):
        return timedelta(seconds=float(value))
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"must be a duration like 30s, 15m, 1h or 7d; got {value!r}")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


@dataclass(frozen=True)
class Months:
    """A step of whole calendar months (``m`` stays minutes: months are ``mo``/``month``)."""

    count: int

    def __str__(self) -> str:
        return f"{self.count}mo"

    def nth(self, start: date, k: int) -> date:
        """``start`` moved ``k`` steps on: the same day of the month (clamped to the month's
        length), and a month-end stays a month-end (01-31 → 02-28 → 03-31)."""
        total = start.year * 12 + start.month - 1 + k * self.count
        year, month = divmod(total, 12)
        last = calendar.monthrange(year, month + 1)[1]
        at_end = start.day == calendar.monthrange(start.year, start.month)[1]
        return date(year, month + 1, last if at_end else min(start.day, last))


Step = timedelta | Months


def parse_step(value: str) -> Step:
    """``14d``, ``2w`` (fixed) or ``1mo``, ``3months`` (calendar months)."""
    match = _MONTHS.match(value) if isinstance(value, str) else None
    if match:
        count = int(match.group(1))
        if count < 1:
            raise ValueError(f"must be at least 1mo; got {value!r}")
        return Months(count)
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f"must be a step like 14d, 2w or 1mo (calendar months); got {value!r}"
        ) from None
