"""Benchmark: the vectorized scorer on 1,000,000 accounts × 20 measures.

The scorecard has 4 groups, 2 segments (onboarding by age, and the default), every kind of
normalization (linear, log, bands, boolean, categories, percentile in segment, staleness,
two ratio metrics) and 10 % of values missing. Grades (with hysteresis) and each account's
top reasons are part of the timed run.

The baseline is the plain per-account loop in ``scoring.reference`` on a sample, scaled to
the full size, timed in the same run; the two must agree on the sample before any number is
printed. Times are medians of ``--repeats`` runs. Prints one JSON line.

    python benchmarks/bench_scoring.py [--accounts 1000000] [--sample 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from datetime import UTC, datetime

import numpy as np

from scoring import LabelColumn, Scorecard, SignalTable, score
from scoring.reference import plain_reference, row_of, score_account

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
N_MEASURES = 20


def scorecard() -> Scorecard:
    lin = {"linear": {"from": 10, "to": 90}}
    measures: dict[str, dict] = {}
    groups = ["deployment", "engagement", "adoption", "roi"]
    kinds = (
        [("linear", lin)] * 6
        + [("lower", {"better": "lower", "linear": {"from": 5, "to": 60}})] * 2
        + [("log", {"linear": {"from": 1, "to": 1000, "log": True}})] * 3
        + [
            (
                "bands",
                {
                    "bands": [
                        {"below": 30, "points": 0},
                        {"below": 60, "points": 50},
                        {"points": 100},
                    ]
                },
            )
        ]
        * 3
        + [("boolean", {"boolean": {"if_true": 100, "if_false": 0}})] * 2
        + [("percentile", {"percentile": True})] * 2
    )
    for j, (_kind, spec) in enumerate(kinds):
        measures[f"m{j:02d}"] = {
            "label": f"Measure {j}",
            "group": groups[j % 4],
            "weight": 1 + j % 3,
            "metric": f"x{j:02d}",
            **spec,
        }
    measures["m18"] = {
        "label": "Usage per seat",
        "group": "adoption",
        "weight": 2,
        "metric": "usage_per_seat",
        "linear": {"from": 0.1, "to": 2},
    }
    measures["m19"] = {
        "label": "Plan",
        "group": "roi",
        "weight": 1,
        "metric": "plan",
        "categories": {"Enterprise": 100, "Growth": 70, "Starter": 40},
    }
    measures["m00"]["stale_after"] = "90d"
    assert len(measures) == N_MEASURES
    return Scorecard.model_validate(
        {
            "groups": {
                g: {"label": g, "weight": w} for g, w in zip(groups, (20, 25, 35, 20), strict=True)
            },
            "derived": {"usage_per_seat": {"ratio": ["usage", "seats"]}},
            "measures": measures,
            "segments": [
                {
                    "name": "onboarding",
                    "when": [{"field": "age_days", "below": 90}],
                    "weights": {"m01": 4, "m17": 0},
                }
            ],
        }
    )


def synthetic_table(n: int, seed: int = 7) -> SignalTable:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for j in range(18):
        values = rng.uniform(0, 100, n) if j not in (8, 9, 10) else rng.lognormal(3, 2, n)
        if j in (14, 15):
            values = (values > 40).astype(float)
        columns[f"x{j:02d}"] = values
    columns["usage"] = rng.uniform(0, 400, n)
    columns["seats"] = rng.integers(0, 200, n).astype(float)  # some zeros: x/0 → missing
    columns["age_days"] = rng.uniform(0, 1500, n)
    for name, values in columns.items():
        if name != "age_days":
            values[rng.random(n) < 0.10] = np.nan  # 10 % missing
    observed = {"x00": AS_OF.timestamp() - rng.uniform(0, 120, n) * 86400}
    plans = np.array(["Enterprise", "Growth", "Starter", "Free"])
    codes = rng.integers(0, 4, n).astype(np.int32)
    codes[rng.random(n) < 0.10] = -1
    labels = {"plan": LabelColumn(codes, tuple(plans))}
    return SignalTable([f"acct{i:07d}" for i in range(n)], columns, observed, labels)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    card = scorecard()
    table = synthetic_table(args.accounts)
    previous = np.array(["red", "yellow", "green", None], dtype=object)[
        np.random.default_rng(1).integers(0, 4, args.accounts)
    ]

    times = []
    batch = None
    for _ in range(args.repeats):
        del batch
        started = time.perf_counter()
        batch = score(card, table, AS_OF, previous_grades=previous)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    rss = peak_rss_mb()

    sample = np.random.default_rng(2).choice(
        args.accounts, size=min(args.sample, args.accounts), replace=False
    )
    rows = [row_of(table, int(i)) for i in sample]  # input conversion is not timed
    reference = plain_reference(batch.reference)
    base_times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        plain = [
            score_account(card, row, AS_OF, previous_grade=previous[i], reference=reference)
            for row, i in zip(rows, sample, strict=True)
        ]
        base_times.append(time.perf_counter() - started)
        rows = [row_of(table, int(i)) for i in sample]  # score_account adds derived values
    baseline = statistics.median(base_times) * args.accounts / len(sample)

    for result, i in zip(plain, sample, strict=True):
        vec = batch.score[i]
        same_score = (result["score"] is None and math.isnan(vec)) or (
            result["score"] is not None and math.isclose(result["score"], vec, abs_tol=1e-9)
        )
        if not same_score or result["grade"] != batch.grade[i]:
            print(
                f"disagreement on {batch.account_ids[i]}: loop {result} vs vectorized "
                f"{vec} {batch.grade[i]}",
                file=sys.stderr,
            )
            return 1
    segments = np.bincount(batch.segment, minlength=2)
    print(
        json.dumps(
            {
                "accounts": args.accounts,
                "measures": N_MEASURES,
                "segments": len(card.segment_names),
                "groups": len(card.groups),
                "missing_share": 0.10,
                "seconds": round(seconds, 3),
                "runs": [round(t, 3) for t in times],
                "cold_seconds": round(times[0], 3),
                "baseline_seconds": round(baseline, 1),
                "baseline_sample": len(sample),
                "speedup": round(baseline / seconds, 1),
                "peak_rss_mb": round(rss, 1),
                "accounts_per_segment": segments.tolist(),
                "grades": {
                    g: int((batch.grade == g).sum())
                    for g in ("red", "yellow", "green", "insufficient_data")
                },
                "agree_on_sample": True,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
