"""Benchmark: a backtest over 50,000 accounts × a year of daily usage × 26 bi-weekly snapshots.

The population is ``sandbox.population`` (six daily usage metrics, churn from hidden
behaviour). Its usage is held as the point-in-time scorer holds a store's ``usage_daily``
(``scoring.windows.UsageHistory``: dense accounts × days arrays with cumulative sums), and
every snapshot is scored by ``healthscore.pipeline.point_in_time.ScoringHistory`` — the path
``Pipeline.score_at_dates`` runs — on a scorecard of usage windows (sums, means, active days,
days since, a change against the previous window). The timed part is what ``healthscore
backtest`` does after loading: scoring each snapshot (churned accounts left out), labelling,
and every metric of the report, the account bootstrap included.

Generating the population and building the usage arrays are reported apart (``setup_seconds``,
``load_seconds``): a real run reads them from the store. Prints one JSON line.

    python benchmarks/bench_backtest.py [--accounts 50000] [--snapshots 26] [--draws 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np

from healthscore.pipeline.outcomes import Outcome, churned_by
from healthscore.pipeline.point_in_time import ScoringHistory
from sandbox.population import generate_population
from scoring import Scorecard
from scoring.backtest import Snapshot, label, run_backtest
from store.models import Account

END = date(2026, 10, 31)
HORIZON = timedelta(days=30)


def scorecard() -> Scorecard:
    def window(metric: str, agg: str, within: str | None = "30d", **kw: object) -> dict:
        return {
            "window": {"metric": metric, "agg": agg, **({"within": within} if within else {}), **kw}
        }

    lin = lambda a, b, **kw: {"linear": {"from": a, "to": b, **kw}}  # noqa: E731
    return Scorecard.model_validate(
        {
            "name": "bench-usage",
            "derived": {
                "logins_30d": window("logins", "sum"),
                "active_users_30d": window("active_users", "mean"),
                "active_days_30d": window("logins", "active_days"),
                "feature_change": window("feature_events", "sum", vs_previous=True),
                "minutes_30d": window("minutes", "sum"),
                "invites_90d": window("invites", "sum", "90d"),
                "tickets_30d": window("support_tickets", "sum"),
                "days_since_login": window("logins", "days_since", None),
            },
            "groups": {
                "adoption": {"label": "Adoption", "weight": 50},
                "engagement": {"label": "Engagement", "weight": 30},
                "support": {"label": "Support", "weight": 20},
            },
            "measures": {
                "logins": {
                    "label": "Logins (30d)",
                    "group": "engagement",
                    "weight": 2,
                    "metric": "logins_30d",
                    **lin(5, 1000, log=True),
                },
                "active_users": {
                    "label": "Active users",
                    "group": "adoption",
                    "weight": 2,
                    "metric": "active_users_30d",
                    **lin(1, 50, log=True),
                },
                "active_days": {
                    "label": "Active days",
                    "group": "engagement",
                    "weight": 1,
                    "metric": "active_days_30d",
                    **lin(2, 22),
                },
                "feature_trend": {
                    "label": "Feature use vs prior 30d",
                    "group": "adoption",
                    "weight": 1,
                    "metric": "feature_change",
                    **lin(-50, 0),
                },
                "minutes": {
                    "label": "Minutes (30d)",
                    "group": "adoption",
                    "weight": 1,
                    "metric": "minutes_30d",
                    "percentile": True,
                },
                "invites": {
                    "label": "Invites (90d)",
                    "group": "engagement",
                    "weight": 1,
                    "metric": "invites_90d",
                    **lin(0, 5),
                },
                "tickets": {
                    "label": "Support tickets (30d)",
                    "group": "support",
                    "weight": 1,
                    "metric": "tickets_30d",
                    "better": "lower",
                    **lin(0, 6),
                },
                "last_login": {
                    "label": "Days since login",
                    "group": "engagement",
                    "weight": 1,
                    "metric": "days_since_login",
                    "better": "lower",
                    **lin(2, 30),
                },
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--snapshots", type=int, default=26)
    parser.add_argument("--every", type=int, default=14, help="days between snapshots")
    parser.add_argument("--draws", type=int, default=200, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    t0 = time.perf_counter()
    pop = generate_population(args.accounts, seed=args.seed, end=END, days=365)
    signal_rows = pop.usage_rows
    accounts = [
        Account(id=a, name=name, attributes={"start_date": start.isoformat()})
        for a, name, start in zip(pop.account_ids, pop.names, pop.start_dates, strict=True)
    ]
    outcomes = {a: Outcome(a, c) for a, c in zip(pop.account_ids, pop.churn_dates, strict=True)}
    setup = time.perf_counter() - t0

    t1 = time.perf_counter()
    card = scorecard()
    usage = pop.usage_history()
    pop.usage.clear()  # the store would not hold a second copy either
    history = ScoringHistory(card, accounts, {}, usage, start_attribute="start_date")
    load = time.perf_counter() - t1

    last = END - timedelta(days=7)
    days = [last - timedelta(days=args.every * k) for k in range(args.snapshots)][::-1]
    t2 = time.perf_counter()
    snapshots = []
    for moment, batch in history.snapshots(days, excluded=lambda m: churned_by(outcomes, m)):
        snapshots.append(
            Snapshot(moment.date(), batch.account_ids, batch.score, batch.grade, batch.points)
        )
    scored = time.perf_counter() - t2
    churn = {a: o.churn_date for a, o in outcomes.items()}
    data = label(snapshots, churn, HORIZON, list(card.measures))
    result = run_backtest(data, draws=args.draws)
    seconds = time.perf_counter() - t2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "accounts": args.accounts,
                "snapshots": len(snapshots),
                "signal_rows": signal_rows,
                "seconds": round(seconds, 2),
                "seconds_per_snapshot": round(seconds / len(snapshots), 3),
                "peak_rss_mb": round(peak_mb),
                "score_seconds": round(scored, 2),
                "metrics_seconds": round(seconds - scored, 2),
                "load_seconds": round(load, 2),
                "setup_seconds": round(setup, 2),
                "rows": len(data),
                "bootstrap_draws": args.draws,
                "roc_auc": round(result.summary["roc_auc"], 4),
                "roc_auc_ci": [round(v, 4) for v in result.summary["roc_auc_ci"]],
                "churners": result.summary["churners"],
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": sys.version.split()[0],
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
