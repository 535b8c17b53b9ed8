"""Churn and renewal outcomes: what happened to each account, for backtests and fitting.

Where they come from, first match wins per account:

1. an outcomes file (``account_id, churn_date[, renewal_date]``; the path given on the command
   line, else ``outcomes.file`` in the YAML);
2. the CRM: a churn-date metric named in the YAML (``outcomes.churn_metric``: any metric of
   the sources, e.g. an account date field mapped under a CRM source's ``metrics``, or the
   date a company entered a "former customer" lifecycle stage), else the last closed-lost
   renewal (each CRM source names its metric: ``Crm.renewal_lost_metric`` in its registry
   entry; see the README's "Outcomes").

An account that churned on or before a snapshot's date is left out of that snapshot
(``churned_by``); it is labelled a churner of a snapshot when its churn date falls within the
horizon after it (``churned_within``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from connectors.registry import renewal_lost_metrics
from healthscore.core.errors import ConfigError
from scoring.windows import day_of
from store import Store

if TYPE_CHECKING:
    from healthscore.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    account_id: str
    churn_date: date | None = None
    renewal_date: date | None = None


@dataclass
class OutcomeFileReport:
    rows: int = 0
    skipped: int = 0
    skipped_lines: list[str] | None = None


def _parse_day(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


def read_outcomes_file(
    path: str | Path,
    *,
    id_column: str = "account_id",
    churn_column: str = "churn_date",
    renewal_column: str = "renewal_date",
    report: OutcomeFileReport | None = None,
) -> dict[str, Outcome]:
    """Outcomes from a CSV file; a malformed row is logged with its line and id, and skipped."""
    p = Path(path)
    report = report if report is not None else OutcomeFileReport()
    report.skipped_lines = []
    try:
        handle = p.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{p}: outcomes file not found") from None
    out: dict[str, Outcome] = {}
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for needed in (id_column, churn_column):
            if needed not in columns:
                raise ConfigError(
                    f"{p}:1: outcomes file has no column {needed!r} (columns: "
                    f"{', '.join(columns) or 'none'})"
                )
        for row in reader:
            line = reader.line_num
            account_id = (row.get(id_column) or "").strip()
            try:
                if not account_id:
                    raise ValueError(f"no {id_column}")
                churn = _parse_day(row.get(churn_column) or "")
                renewal = (
                    _parse_day(row.get(renewal_column) or "") if renewal_column in columns else None
                )
            except ValueError as exc:
                report.skipped += 1
                report.skipped_lines.append(f"{p}:{line}")
                log.warning("%s:%d: skipped outcome of %r: %s", p, line, account_id or "?", exc)
                continue
            report.rows += 1
            out[account_id] = Outcome(account_id, churn, renewal)
    return out


def crm_outcomes(config: Config, store: Store) -> dict[str, Outcome]:
    """Churn dates from the CRM's signals (see the module docstring for which)."""
    metric = config.outcomes.churn_metric
    lost = renewal_lost_metrics() if config.outcomes.renewal_lost else []
    wanted = [m for m in (metric, *lost) if m is not None]
    found: dict[str, dict[str, float]] = {}
    for account_id, name, value, _ in store.latest_signals():
        if name in wanted and value is not None:
            found.setdefault(account_id, {})[name] = value
    out = {}
    for account_id, values in found.items():
        stamp = next((values[m] for m in wanted if m in values), None)
        if stamp is not None:
            out[account_id] = Outcome(account_id, datetime.fromtimestamp(stamp, UTC).date())
    return out


def load_outcomes(config: Config, store: Store, path: str | None = None) -> dict[str, Outcome]:
    """Every known outcome, account id → ``Outcome`` (file first, then the CRM)."""
    source = path or (None if config.outcomes.file is None else str(config.outcomes.file))
    out = crm_outcomes(config, store)
    if source is not None:
        spec = config.outcomes
        from_file = read_outcomes_file(
            source,
            id_column=spec.id_column,
            churn_column=spec.churn_column,
            renewal_column=spec.renewal_column,
        )
        known = {a.id for a in store.accounts(include_deleted=True)}
        unknown = [a for a in from_file if a not in known]
        if unknown:
            log.warning(
                "%d outcomes name accounts not in the store (e.g. %s)",
                len(unknown),
                ", ".join(unknown[:3]),
            )
        out.update(from_file)
    return out


def churned_by(outcomes: Mapping[str, Outcome], moment: datetime | date) -> set[str]:
    """Accounts that had churned on or before the date of ``moment``."""
    day = day_of(moment)
    return {a for a, o in outcomes.items() if o.churn_date is not None and o.churn_date <= day}


def churned_within(
    account_ids: Sequence[str],
    outcomes: Mapping[str, Outcome],
    moment: datetime | date,
    horizon: timedelta,
) -> np.ndarray:
    """Per account: did it churn after the snapshot's date and within ``horizon`` of it?"""
    day = day_of(moment)
    last = day + timedelta(days=int(horizon.total_seconds() // 86400))
    out = np.zeros(len(account_ids), dtype=bool)
    for i, a in enumerate(account_ids):
        o = outcomes.get(a)
        if o is not None and o.churn_date is not None and day < o.churn_date <= last:
            out[i] = True
    return out
