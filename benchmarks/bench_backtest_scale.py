"""Benchmark: a backtest's peak memory as the population grows, accounts scored in chunks.

For each size a SQLite store is filled (in its own process) with accounts and a year of
usage for six metrics (``usage_daily``, written by the product's usage writer), then a fresh
process runs the product path — ``healthscore.backtest.run.evaluate`` over
``pipeline_scorer(pipeline, chunk=…)``: each chunk of accounts has its history read from the
store (only its id range), every snapshot scored, the history freed — and reports its peak
RSS. What a chunk holds is accounts × days per metric (float32 values, a present mask and
float64 running sums: 13 bytes a cell), whatever the population; what grows with it is the
backtest's own output (score, grade, points per account and snapshot) and the account list.

Usage is sparse on purpose (``--every``: one value per account and metric every N days, on
a day of its own): loading 1.1 billion rows (500k accounts × 365 days × 6 metrics) is not
feasible here, and the arrays a chunk holds are dense (accounts × days) whatever the rows, so
the memory measured is that of a full year of daily usage. Loading time is not measured
here (see bench_usage_load.py). Prints one JSON line: the largest size's numbers, and
every size's peak RSS (``peak_rss_mb_by_accounts``) to show it flat as accounts grow.

Measured 2026-12-07 on the 2-core machine (shared; load average 1.5-3.5), 365 days × 6
metrics, 11 monthly snapshots, a card of six 30-day sums (one a percentile in segment),
``--accounts 50000,100000 --chunk 50000`` (the product default):

    50,000 accounts (one chunk):   1,699 MB peak RSS, 19.8 s  (3.65M usage rows)
    100,000 accounts (two chunks): 1,867 MB peak RSS, 71.4 s  (7.30M usage rows; the
                                   percentile card reads every chunk twice)

A chunk's arrays: 50,000 × ~305 held days × 6 metrics × 13 bytes ≈ 1.2 GB. What grows with
the population is ~170 MB per 50,000 accounts (the kept per-snapshot results, the account
list): extrapolated linearly, 500,000 accounts need about 1.7 + 9 × 0.17 ≈ 3.2 GB — not
measured (the store cannot be filled with 1.1 billion rows here), and with daily rather than
sparse usage the chunk's arrays are the same size (they are dense). Time is not
extrapolated: it grows with the usage rows read, and reading 1.1 billion was not measured.

    python benchmarks/bench_backtest_scale.py [--accounts 20000,60000] [--chunk 10000]
        [--days 365] [--every 30] [--snapshot-every 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

METRICS = ("logins", "active_users", "minutes_used", "features_used", "invites_sent", "api_calls")
END = date(2026, 10, 31)
HORIZON = 30
CONFIG = """\
sources:
  salesforce:
    metrics: {nps: NPS__c}
    attributes: {plan_tier: Plan_Tier__c}
scorecard:
  name: scale-card
  coverage_floor: 0.3
  grades: {red: 45, yellow: 70, hysteresis: 3}
  derived:
%(derived)s
  groups:
    usage: {label: Usage, weight: 1}
  measures:
%(measures)s
  segments:
    - name: enterprise
      when:
        - {field: plan_tier, is: Enterprise}
"""


def config_text() -> str:
    derived, measures = [], []
    for k, m in enumerate(METRICS):
        derived.append(f"    {m}_30d: {{window: {{metric: {m}, agg: sum, within: 30d}}}}")
        norm = "percentile: true" if k == 0 else "linear: {from: 0, to: 60}"
        measures.append(
            f"    {m}:\n      label: {m}\n      group: usage\n      weight: 1\n"
            f"      metric: {m}_30d\n      {norm}"
        )
    return CONFIG % {"derived": "\n".join(derived), "measures": "\n".join(measures)}


def account_id(i: int) -> str:
    return f"001SCALE{i:010d}"


def fill(url: str, accounts: int, days: int, every: int) -> dict[str, object]:
    """Accounts (a quarter churned within the year) and sparse usage, through the store."""
    from store import AccountRow, Store

    store = Store(url)
    store.upsert_accounts(
        AccountRow(
            account_id(i),
            "salesforce",
            account_id(i),
            attributes={"plan_tier": "Enterprise" if i % 5 == 0 else "Growth"},
        )
        for i in range(accounts)
    )
    rng = np.random.default_rng(11)
    start = END - timedelta(days=days - 1)
    ids = np.array([account_id(i) for i in range(accounts)], dtype=object)
    rows = 0
    with store.usage_writer("bench") as writer:
        for m, metric in enumerate(METRICS):
            offset = rng.integers(0, every, accounts)  # each account's own day in the cycle
            for first in range(0, days, every):
                day = first + offset
                keep = day < days
                n = int(keep.sum())
                writer.write(
                    pa.table(
                        {
                            "account_id": pa.array(ids[keep], pa.string()),
                            "metric": pa.array([metric] * n, pa.string()),
                            "day": pa.array(
                                np.datetime64(start, "D") + day[keep].astype("timedelta64[D]")
                            ).cast(pa.date32()),
                            "value": pa.array(rng.poisson(10 + m, n).astype(np.float64)),
                        }
                    )
                )
                rows += n
    store.close()
    return {"usage_rows": rows}


def churn_dates(accounts: int, days: int) -> dict[str, date | None]:
    rng = np.random.default_rng(3)
    start = END - timedelta(days=days - 1)
    out: dict[str, date | None] = {}
    for i in range(accounts):
        out[account_id(i)] = (
            start + timedelta(days=int(rng.integers(60, days))) if i % 4 == 0 else None
        )
    return out


def backtest(url: str, accounts: int, days: int, chunk: int, snapshot_every: int) -> dict:
    """One backtest in this (fresh) process; returns its numbers."""
    from connectors.registry import Settings
    from healthscore.backtest.plan import Plan
    from healthscore.backtest.run import evaluate, pipeline_scorer
    from healthscore.config import config_from_document
    from healthscore.core.yamlfile import parse_yaml
    from healthscore.pipeline.cycle import Pipeline
    from store import Store

    config = config_from_document(parse_yaml(config_text(), "scale.yaml"))
    store = Store(url)
    now = datetime.combine(END, datetime.min.time(), tzinfo=UTC)
    pipeline = Pipeline(config, Settings(database_url=url), store, clock=lambda: now)
    start = END - timedelta(days=days - 1)
    # snapshots over the year, the first a window in, the last a horizon before the end
    plan = Plan(
        start + timedelta(days=30),
        END - timedelta(days=HORIZON),
        timedelta(days=snapshot_every),
        timedelta(days=HORIZON),
    )
    churn = churn_dates(accounts, days)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = evaluate(
        config.scorecard,
        pipeline_scorer(pipeline, chunk=chunk),
        churn,
        plan,
        observed_until=END,
        draws=50,
    )
    seconds = time.perf_counter() - started
    store.close()
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before,
        "snapshots": len(result.data.dates),
        "rows": len(result.data),
        "roc_auc": result.report["summary"]["roc_auc"],
    }


def _child(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="20000,60000", help="comma-separated sizes")
    parser.add_argument("--chunk", type=int, default=10_000, help="accounts per chunk")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--every", type=int, default=30, help="a usage value every N days")
    parser.add_argument("--snapshot-every", type=int, default=30)
    parser.add_argument("--fill", nargs=2, metavar=("URL", "ACCOUNTS"), help=argparse.SUPPRESS)
    parser.add_argument("--run", nargs=2, metavar=("URL", "ACCOUNTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        print(json.dumps(fill(args.fill[0], int(args.fill[1]), args.days, args.every)))
        return
    if args.run:
        n = int(args.run[1])
        print(json.dumps(backtest(args.run[0], n, args.days, args.chunk, args.snapshot_every)))
        return
    common = ["--days", str(args.days), "--every", str(args.every)]
    common += ["--chunk", str(args.chunk), "--snapshot-every", str(args.snapshot_every)]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        for n in [int(s) for s in args.accounts.split(",")]:
            url = f"sqlite:///{Path(tmp) / f'scale_{n}.sqlite'}"
            filled = _child("--fill", url, str(n), *common)
            runs[n] = {**filled, **_child("--run", url, str(n), *common)}
            print(json.dumps({"accounts": n, **runs[n]}), file=sys.stderr)
            for suffix in ("", "-wal", "-shm"):
                Path(tmp, f"scale_{n}.sqlite{suffix}").unlink(missing_ok=True)
    big = max(runs)
    out = {
        "accounts": big,
        "days": args.days,
        "metrics": len(METRICS),
        "snapshots": runs[big]["snapshots"],
        "chunk": args.chunk,
        "seconds": round(runs[big]["seconds"], 1),
        "peak_rss_mb": round(runs[big]["peak_rss_mb"], 1),
        "peak_rss_mb_by_accounts": {n: round(r["peak_rss_mb"], 1) for n, r in runs.items()},
        "seconds_by_accounts": {n: round(r["seconds"], 1) for n, r in runs.items()},
        "usage_rows_by_accounts": {n: r["usage_rows"] for n, r in runs.items()},
        "roc_auc": round(runs[big]["roc_auc"], 3),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
