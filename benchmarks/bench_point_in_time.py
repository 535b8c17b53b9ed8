"""Point-in-time scoring at scale: many accounts, a year of daily usage, many snapshots.

    .venv/bin/python benchmarks/bench_point_in_time.py --accounts 50000 --snapshots 26
    .venv/bin/python benchmarks/bench_point_in_time.py --accounts 5000 --store /tmp/pit.db

Generates the synthetic population (sandbox/population.py), then scores every snapshot with
``ScoringHistory`` (usage windows from dense arrays, the shared scorer) using the usage example
scorecard. With ``--store`` the usage goes into a SQLite ``usage_daily`` table first and is
read back the way ``healthscore backfill`` reads it (one query), so the load is timed too.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healthscore.config import config_from_document
from healthscore.core.yamlfile import parse_yaml
from healthscore.pipeline.outcomes import Outcome, churned_by
from healthscore.pipeline.point_in_time import ScoringHistory, load_usage
from sandbox.population import generate_population
from store import AccountRow, Store
from store.models import Account

EXAMPLE = Path(__file__).resolve().parent.parent / "healthscore" / "usage.example.yaml"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fill_store(store: Store, pop, metrics: list[str]) -> int:
    """The population's non-zero days into usage_daily (raw executemany, per metric)."""
    conn = store.engine.raw_connection()
    days = [(pop.first_day + timedelta(days=d)).isoformat() for d in range(pop.days)]
    written = 0
    try:
        cur = conn.cursor()
        for metric in metrics:
            values = pop.usage[metric]
            rows, cols = np.nonzero(values > 0)
            for start in range(0, len(rows), 1_000_000):
                r, c = rows[start : start + 1_000_000], cols[start : start + 1_000_000]
                cur.executemany(
                    "INSERT INTO usage_daily (account_id, metric, day, value, source) "
                    "VALUES (?, ?, ?, ?, 'bench')",
                    zip(
                        (pop.account_ids[i] for i in r.tolist()),
                        [metric] * len(r),
                        (days[k] for k in c.tolist()),
                        values[r, c].tolist(),
                        strict=True,
                    ),
                )
                written += len(r)
            conn.commit()
    finally:
        conn.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--snapshots", type=int, default=26)
    parser.add_argument("--every", type=int, default=14, help="days between snapshots")
    parser.add_argument("--store", help="SQLite file to load the usage through")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["sources"] = {"accounts_file": {"path": "accounts.csv", "attributes": ["plan", "seats"]}}
    card = config_from_document(parse_yaml(yaml.safe_dump(doc), "usage.yaml")).scorecard
    end = date(2026, 11, 25)
    started = time.perf_counter()
    pop = generate_population(args.accounts, seed=args.seed, end=end, days=365)
    generated = time.perf_counter() - started
    accounts = [
        Account(
            id=a,
            name=n,
            crm="file",
            attributes={"plan": p, "seats": str(s), "start_date": d.isoformat()},
        )
        for a, n, p, s, d in zip(
            pop.account_ids, pop.names, pop.plans, pop.seats.tolist(), pop.start_dates, strict=True
        )
    ]
    result: dict[str, object] = {
        "accounts": args.accounts,
        "snapshots": args.snapshots,
        "generate_seconds": round(generated, 2),
    }
    metrics = sorted({w.metric for w in card.usage_windows().values()})
    if args.store:
        Path(args.store).unlink(missing_ok=True)
        store = Store(f"sqlite:///{args.store}")
        store.upsert_accounts(
            AccountRow(a.id, "file", a.name, attributes=a.attributes) for a in accounts
        )
        t = time.perf_counter()
        result["signal_rows"] = _fill_store(store, pop, metrics)
        result["insert_seconds"] = round(time.perf_counter() - t, 2)
        del pop.usage
        t = time.perf_counter()
        usage = load_usage(store, card, [a.id for a in accounts])
        result["load_seconds"] = round(time.perf_counter() - t, 2)
        store.close()
    else:
        usage = pop.usage_history()
        result["signal_rows"] = usage.cells
    history = ScoringHistory(card, accounts, {}, usage, start_attribute="start_date")
    outcomes = {a: Outcome(a, c) for a, c in zip(pop.account_ids, pop.churn_dates, strict=True)}
    days = [end - timedelta(days=args.every * k) for k in range(args.snapshots)][::-1]
    t = time.perf_counter()
    scored = 0
    for _, batch in history.snapshots(days, excluded=lambda m: churned_by(outcomes, m)):
        scored += len(batch)
    seconds = time.perf_counter() - t
    result.update(
        {
            "scored": scored,
            "score_seconds": round(seconds, 2),
            "seconds_per_snapshot": round(seconds / args.snapshots, 3),
            "peak_rss_mb": round(_peak_mb()),
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
