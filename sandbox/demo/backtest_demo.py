"""The demo's backtest: a year of a synthetic product's usage, the churn it led to, and the
same ``backtest`` + ``fit`` (the learned card: measures, bands, weights) a CS lead runs on
their own history.

The population (``sandbox.population``: churn from hidden behaviour, never from a scorecard)
is written as the three files of a team without usable CRM history — accounts, daily usage in
long form, outcomes — and loaded the product's way: the accounts file through
``import-accounts``, the usage into ``usage_daily`` as the usage file drop stores it, the
outcomes file named in the YAML. The scorecard is the packaged ``usage.example.yaml``.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from connectors.registry import Settings
from healthscore.backtest.inventory import inventory_of, pipeline_card_scorer
from healthscore.backtest.learn import LearnedFit, learn_card
from healthscore.backtest.run import Plan, churn_dates, evaluate, pipeline_scorer, write_report
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from healthscore.pipeline.cycle import Pipeline
from healthscore.pipeline.outcomes import load_outcomes
from sandbox.population import (
    generate_population,
    write_accounts_csv,
    write_outcomes_csv,
    write_usage_csv,
)
from store import Store

USAGE_CONFIG = "usage.example.yaml"
HORIZON = timedelta(days=30)
EVERY = timedelta(days=14)
WARMUP = timedelta(days=35)  # the first snapshot waits until the 30-day windows are full


def demo_backtest(out_dir: Path, *, accounts: int, seed: int, end: date) -> dict[str, Any]:
    """Generate, load, backtest and fit; returns the demo JSON's ``backtest`` block."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pop = generate_population(accounts, seed=seed, end=end, days=365)
    write_accounts_csv(pop, out_dir / "accounts.csv")
    write_outcomes_csv(pop, out_dir / "outcomes.csv")
    usage_rows = write_usage_csv(pop, out_dir / "usage.csv")
    config_path = out_dir / "healthscore.yaml"
    with resources.as_file(resources.files("healthscore").joinpath(USAGE_CONFIG)) as packaged:
        shutil.copyfile(packaged, config_path)
    db = out_dir / "backtest.db"
    db.unlink(missing_ok=True)
    config = load_config(config_path)
    store = Store(f"sqlite:///{db}")
    fit_error: str | None = None
    try:
        pipeline = Pipeline(
            config, Settings(database_url=store.url), store, config_path=str(config_path)
        )
        pipeline.sync("accounts_file")
        pipeline.sync("usage_file", paths=[out_dir / "usage.csv"], force=True)  # the file drop
        outcomes = load_outcomes(config, store)
        plan = Plan(pop.first_day + WARMUP, end - HORIZON, EVERY, HORIZON)
        result = evaluate(
            config.scorecard,
            pipeline_scorer(pipeline, outcomes),
            churn_dates(outcomes),
            plan,
            observed_until=end,
        )
        text = config_path.read_text(encoding="utf-8")
        fitted: LearnedFit | None = None
        try:  # the learned fit, as `healthscore fit` runs it
            fitted = learn_card(
                config.scorecard,
                text,
                str(config_path),
                result.data,
                pipeline_card_scorer(pipeline, outcomes),
                inventory_of(config, store, pipeline.start_attribute),
            )
        except ConfigError as exc:  # too small a population to fit: the backtest still stands
            fit_error = str(exc)
    finally:
        store.close()
    s = result.report["summary"]
    block: dict[str, Any] = {}
    if fitted is not None:
        fitted_path = out_dir / "fitted.yaml"
        fitted_path.write_text(fitted.text, encoding="utf-8")
        result.report["fit"] = fitted.as_dict(str(fitted_path))
        block = {
            "auc_default": round(fitted.auc_default, 4),
            "auc_fitted": round(fitted.auc_fitted, 4),
            "held_out_snapshots": len(fitted.split.test_dates),
            "measures": [m.name for m in fitted.learned.measures],
            "fitted": str(fitted_path),
            "checks": _checks(fitted, fitted_path, s),
        }
    else:
        block = {"auc_default": None, "auc_fitted": None, "fit_error": fit_error}
    json_path, html_path = write_report(result.report, out_dir)
    return {
        **block,
        "snapshots": s["snapshots"],
        "accounts": s["accounts"],
        "auc_all_snapshots": _round(s["roc_auc"]),
        "auc_all_snapshots_ci": [_round(v) for v in s["roc_auc_ci"]],
        "auc_all_snapshots_scored_only": _round(s["roc_auc_scored_only"]),
        "insufficient_rows": s["insufficient"]["rows"],
        "churners": s["churners"],
        "horizon_days": HORIZON.days,
        "usage_rows": usage_rows,
        "report": str(html_path),
        "json": str(json_path),
    }


def _checks(fitted: LearnedFit, path: Path, summary: dict[str, Any]) -> dict[str, bool]:
    """What the demo's fit must hold, whatever the population's numbers."""
    train, test = fitted.split.train_dates, fitted.split.test_dates
    last_train = date.fromisoformat(train[-1])
    judged = fitted.judged
    return {
        "the fitted card is written and loads like any configuration": (
            load_config(path).scorecard.version == fitted.card.version
        ),
        "no fitting label reaches the judged snapshots": (
            last_train + HORIZON <= date.fromisoformat(test[0])
        ),
        "the held-out AUCs count every judged row, unscored ones too": (
            judged is not None and fitted.rows_compared == len(judged)
        ),
        "the backtest's headline counts every row": (
            summary["rows"] == summary["scored_rows"] + summary["insufficient"]["rows"]
        ),
    }


def _round(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 4)
