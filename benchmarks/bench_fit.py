"""Benchmark: does ``healthscore fit`` learn a card that ranks churn as well as a model would?

A simulated SaaS population whose churn mechanism is neither a scorecard's formula nor the
demo's (``sandbox.population``): each account has hidden propensities — product fit, a
fragility to bad spells, a budget risk never visible in usage — and a health that drifts
day by day (an AR(1) walk around its fit, with incidents that knock it down and heal). The
daily churn hazard is non-linear in that health (a softplus: only a poor spell matters),
higher for young accounts and small teams; an account that decides to leave often winds its
use down first. Eight event types are drawn from the health with noise (seats active,
logins, page views, edits, shares, comments, exports, API calls — a quarter of the accounts
integrate by API — and support tickets, which rise when health falls), weekends quiet,
nothing reported for a day without activity (a long-form usage export has no zero rows).

Four monthly snapshots, a 30-day horizon: the card is fitted on the first two and judged on
the last two, through the product's own functions (``healthscore.backtest``: the current
card's backtest, then ``learn_card`` with the point-in-time scorer over the usage held in
memory as ``usage_daily`` would be). Beside it, fitted in the same run on the same fitting
snapshots and judged on the same rows: scikit-learn's ``LogisticRegression`` (L2, standardized)
and ``HistGradientBoostingClassifier`` on, per event type, the log-scaled 30-day and prior
30-day counts, the 60-day daily rate, the active days of the last 30 and the trend (log
ratio of the two windows), plus the account's log age.

Prints one JSON line: {"auc_hand", "auc_fitted", "auc_logreg", "auc_gbm", "seconds",
"peak_rss_mb", ...}; ``seconds`` is the fit (reading candidates, binning, selection, writing
and judging the card), not generating the population.

    python benchmarks/bench_fit.py [--accounts 14000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np

from healthscore.backtest.inventory import inventory_from, memory_card_scorer
from healthscore.backtest.learn import learn_card
from healthscore.backtest.run import Plan, evaluate
from healthscore.pipeline.outcomes import Outcome
from scoring.backtest import roc_auc
from scoring.windows import MetricDays, UsageHistory
from store.models import Account

EVENTS = ("login", "page_view", "edit", "share", "comment", "export", "api_call", "support_ticket")
END = date(2026, 9, 30)
DAYS = 420
HORIZON = timedelta(days=30)
EVERY = timedelta(days=30)
FIRST_SNAPSHOT = 240  # day index of the first snapshot: 180 days of history before it

HAND_CARD = """\
# a card a CS lead would write for this product, before any fit
sources:
  accounts_file: {path: accounts.csv}
scorecard:
  name: hand
  derived:
    logins_30d: {window: {metric: login, agg: sum, within: 30d}}
    active_days_30d: {window: {metric: login, agg: active_days, within: 30d}}
    days_since_login: {window: {metric: login, agg: days_since}}
    views_change: {window: {metric: page_view, agg: sum, within: 30d, vs_previous: true}}
    edits_30d: {window: {metric: edit, agg: sum, within: 30d}}
    exports_90d: {window: {metric: export, agg: sum, within: 90d}}
    tickets_30d: {window: {metric: support_ticket, agg: sum, within: 30d}}
  groups:
    engagement: {label: Engagement, weight: 40}
    adoption: {label: Adoption, weight: 35}
    support: {label: Support, weight: 25}
  measures:
    logins:
      label: Logins (30d)
      group: engagement
      weight: 2
      metric: logins_30d
      linear: {from: 10, to: 500, log: true}
    active_days:
      label: Active days (30d)
      group: engagement
      weight: 2
      metric: active_days_30d
      linear: {from: 5, to: 20}
    last_login:
      label: Days since last login
      group: engagement
      weight: 1
      metric: days_since_login
      better: lower
      linear: {from: 2, to: 14}
      unit: days
    views_trend:
      label: Page views vs prior 30 days
      group: adoption
      weight: 1
      metric: views_change
      linear: {from: -50, to: 0}
      unit: pct
    edits:
      label: Edits (30d)
      group: adoption
      weight: 2
      metric: edits_30d
      linear: {from: 5, to: 200, log: true}
    exports:
      label: Exports (90d)
      group: adoption
      weight: 1
      metric: exports_90d
      linear: {from: 0, to: 5}
    tickets:
      label: Support tickets (30d)
      group: support
      weight: 1
      metric: tickets_30d
      better: lower
      linear: {from: 0, to: 4}
"""


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def generate(n: int, seed: int, days: int = DAYS) -> dict[str, object]:
    """The population (see the module docstring): starts, seats, churn days, daily usage."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    old = rng.random(n) < 0.75  # three in four were customers before the history starts
    start = np.where(old, -rng.integers(1, 1100, n), rng.integers(0, days - 60, n))
    seats = np.clip(np.round(rng.lognormal(2.3, 0.9, n)), 1, 400).astype(int)
    fit = rng.normal(0, 1, n)
    fragile = rng.normal(0, 1, n)
    budget = rng.normal(0, 1.0, n)  # hidden, never in the usage
    mix = rng.dirichlet(np.full(5, 0.8), n)  # which work events an account favours
    api = rng.random(n) < 0.25
    health = np.empty((n, days), np.float32)
    level = fit + rng.normal(0, 0.6, n)
    for d in range(days):  # an AR(1) walk around the account's fit
        level = fit + 0.97 * (level - fit) + rng.normal(0, 0.18, n)
        health[:, d] = level
    incidents = rng.poisson(1.2, n)
    for k in range(int(incidents.max())):  # knocks that heal over weeks
        who = np.flatnonzero(incidents > k)
        at = rng.integers(-30, days, len(who))
        size = rng.uniform(0.5, 2.0, len(who))
        heal = rng.uniform(10, 40, len(who))
        since = t[None, :] - at[:, None]
        health[who] -= (
            size[:, None] * np.exp(-np.clip(since, 0, None) / heal[:, None]) * (since >= 0)
        ).astype(np.float32)
    age = t[None, :] - start[:, None]
    z = (
        1.6 * _softplus(-(health + 0.3) * 1.5)
        + 0.5 * fragile[:, None] * (health < 0)
        + 0.9 * np.exp(-np.clip(age, 0, None) / 90.0)
        - 0.25 * np.log(seats)[:, None]
        + budget[:, None]
    )
    base = np.log(0.03 / 30) - np.log(np.mean(np.exp(z[:, 200:]))) + 3.4
    hazard = np.exp(base + z)
    leaves = (rng.random((n, days)) < hazard) & (age >= 0)
    churn_day = np.where(leaves.any(axis=1), leaves.argmax(axis=1), 10**6)
    del z, hazard, leaves
    lead = rng.integers(10, 50, n)
    wind = np.clip((churn_day[:, None] - t[None, :]) / lead[:, None], 0.0, 1.0)
    wind = np.where((rng.random(n) < 0.5)[:, None], wind, 1.0)  # half wind down first
    eff = (health - 1.5 * (1 - wind)).astype(np.float32)
    del wind, health
    customer = (age >= 0) & (t[None, :] <= churn_day[:, None])
    ramp = np.clip((age + 1) / 45.0, 0.2, 1.0)
    week = np.where(t % 7 < 5, 1.0, 0.25)[None, :]
    share = 1 / (1 + np.exp(-(eff - 0.2)))
    users = rng.binomial(seats[:, None], np.clip(share * ramp * week, 0, 1)).astype(np.float32)
    del share, ramp, age
    usage: dict[str, MetricDays] = {}

    def keep(name: str, counts: np.ndarray) -> None:
        """As the store holds it: a long-form export has no row for a day without activity."""
        present = customer & (counts > 0)
        usage[name] = MetricDays(np.where(present, counts, 0).astype(np.float32), present)

    keep("login", rng.poisson(users * 1.4).astype(np.float32))
    rates = {"page_view": 6.0, "edit": 2.0, "share": 0.4, "comment": 0.8, "export": 0.15}
    for j, (name, rate) in enumerate(rates.items()):
        lam = users * (rate * 3 * mix[:, j])[:, None] * np.exp(0.3 * eff)
        keep(name, rng.poisson(lam * rng.gamma(2.0, 0.5, (n, days))).astype(np.float32))
    del lam
    lam = np.where(api, 40.0, 0.5)[:, None] * np.sqrt(seats)[:, None] * np.exp(0.4 * eff)
    keep("api_call", rng.poisson(lam * rng.gamma(1.5, 1 / 1.5, (n, days))).astype(np.float32))
    lam = 0.02 * seats[:, None] ** 0.4 * np.exp(-0.9 * eff)
    keep("support_ticket", rng.poisson(lam).astype(np.float32))
    return {"start": start, "seats": seats, "churn_day": churn_day, "usage": usage}


def anchor_features(pop: dict, usage: UsageHistory, day: date, rows: np.ndarray) -> np.ndarray:
    """Per row (account index) at ``day``: per event type the log1p 30-day count, prior
    30-day count and 60-day daily rate, active days (30d), the trend; the log age."""
    d = (day - usage.start).days
    cols = []
    for metric in EVENTS:  # the held daily values: 0 where no row was reported
        v = usage.metrics[metric].values[rows, d - 59 : d + 1].astype(np.float64)
        last, prior = v[:, 30:].sum(axis=1), v[:, :30].sum(axis=1)
        cols += [
            np.log1p(last),
            np.log1p(prior),
            np.log1p(v.sum(axis=1) / 60),
            (v[:, 30:] > 0).sum(axis=1),
            np.log1p(last) - np.log1p(prior),
        ]
    cols.append(np.log1p(d - pop["start"][rows]))
    return np.column_stack(cols)


def anchors(
    pop: dict, usage: UsageHistory, fit_rows: list, judged_rows: list
) -> tuple[float, float]:
    """(ROC AUC of the logistic regression, of the gradient boosting) on the judged rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def matrix(rows: list) -> tuple[np.ndarray, np.ndarray]:
        xs = [anchor_features(pop, usage, day, idx) for day, idx, _ in rows]
        return np.vstack(xs), np.concatenate([y for _, _, y in rows])

    x, y = matrix(fit_rows)
    xt, yt = matrix(judged_rows)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)).fit(x, y)
    gbm = HistGradientBoostingClassifier(random_state=0).fit(x, y)
    return (
        roc_auc(logreg.predict_proba(xt)[:, 1], yt),
        roc_auc(gbm.predict_proba(xt)[:, 1], yt),
    )


def main() -> None:
    from healthscore.config import config_from_document
    from healthscore.core.yamlfile import parse_yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=14_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-measures", type=int, default=12)
    parser.add_argument("--write", help="also write the fitted YAML and its explanation here")
    parser.add_argument(
        "--no-seats", action="store_true", help="an accounts file without a seat count"
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    pop = generate(args.accounts, args.seed)
    first = END - timedelta(days=DAYS - 1)
    ids = [f"acct-{i:06d}" for i in range(args.accounts)]
    start_day = [first + timedelta(days=int(s)) for s in pop["start"]]
    plans = np.where(
        pop["seats"] >= 40, "Enterprise", np.where(pop["seats"] >= 10, "Growth", "Starter")
    )
    accounts = [
        Account(
            id=a,
            name=a,
            attributes={"start_date": s.isoformat(), "plan": str(p)}
            | ({} if args.no_seats else {"seats": int(n)}),
        )
        for a, s, n, p in zip(ids, start_day, pop["seats"], plans, strict=True)
    ]
    churn = {
        a: (first + timedelta(days=int(c)) if c < DAYS else None)
        for a, c in zip(ids, pop["churn_day"], strict=True)
    }
    outcomes = {a: Outcome(a, c) for a, c in churn.items()}
    usage = UsageHistory(ids, first, DAYS, pop.pop("usage"))
    setup = time.perf_counter() - t0

    doc = parse_yaml(HAND_CARD, "bench-hand.yaml")
    card = config_from_document(doc).scorecard
    scorer = memory_card_scorer(accounts, usage, outcomes, start_attribute="start_date")
    d1 = first + timedelta(days=FIRST_SNAPSHOT)
    plan = Plan(d1, d1 + 3 * EVERY, EVERY, HORIZON)
    t1 = time.perf_counter()
    current = evaluate(
        card,
        lambda times: scorer(card, [t.date() for t in times]),
        churn,
        plan,
        observed_until=END,
        draws=0,
    )
    backtest_seconds = time.perf_counter() - t1
    fields = {k: [a.attributes[k] for a in accounts[:500]] for k in accounts[0].attributes}
    inventory = inventory_from(EVENTS, fields, start="start_date")
    t2 = time.perf_counter()
    fit = learn_card(
        card,
        HAND_CARD,
        "bench-hand.yaml",
        current.data,
        scorer,
        inventory,
        holdout=0.5,
        max_measures=args.max_measures,
        say=lambda m: print(f"  {m}", file=sys.stderr),
    )
    seconds = time.perf_counter() - t2

    if args.write:
        from pathlib import Path

        Path(args.write).write_text(fit.text, encoding="utf-8")
        Path(args.write).with_suffix(".json").write_text(
            json.dumps(fit.as_dict(args.write), indent=1), encoding="utf-8"
        )
    judged = fit.judged
    assert judged is not None and fit.compared is not None
    index = {a: i for i, a in enumerate(ids)}

    def rows_at(data, keep: np.ndarray) -> list:
        out = []
        for s, day in enumerate(data.dates):
            pick = keep[data.snapshot[keep] == s]
            if len(pick):
                accts = np.array([index[data.account_ids[a]] for a in data.account[pick]])
                out.append((day, accts, data.churned[pick]))
        return out

    train = current.data
    fit_days = set(fit.split.train_dates)
    train_keep = np.flatnonzero(
        np.isin(np.array([d.isoformat() for d in train.dates])[train.snapshot], list(fit_days))
    )
    auc_logreg, auc_gbm = anchors(
        pop, usage, rows_at(train, train_keep), rows_at(judged, fit.compared)
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "auc_hand": round(fit.auc_default, 4),
                "auc_fitted": round(fit.auc_fitted, 4),
                "auc_logreg": round(auc_logreg, 4),
                "auc_gbm": round(auc_gbm, 4),
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(peak),
                "accounts": args.accounts,
                "rows_judged": fit.rows_compared,
                "churned_judged": int(judged.churned[fit.compared].sum()),
                "rows_fitted": fit.train_rows,
                "measures": [m.name for m in fit.learned.measures],
                "calibration_max_gap": fit.calibration.get("max_gap"),
                "backtest_seconds": round(backtest_seconds, 1),
                "setup_seconds": round(setup, 1),
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    )


if __name__ == "__main__":
    main()
