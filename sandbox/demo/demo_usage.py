"""The demo's product usage: a usage file dropped for the org's accounts, scored by usage windows.

The same hidden-behaviour population the backtest uses (sandbox/population.py) writes its
daily usage for the demo org's Salesforce accounts as a long-form CSV; the demo turns on the
``usage_file`` source pointing at it, so the first sync loads it through the real file drop
(source ``usage_file``), and the scorecard gains the usage-window measures (per licensed seat,
active days, login trend, invites, support tickets).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from healthscore.config import Config
from sandbox.population import METRICS, USAGE_DERIVED, USAGE_MEASURES, generate_population
from sandbox.population import write_usage_csv as write_population_usage
from sandbox.synthetic import SyntheticOrg
from scoring import Scorecard

# enough history for the longest window (90-day invites) and a 30-day trend vs the 30 before
USAGE_DAYS = 120
SEATS_FIELD = "Licensed_Seats__c"


def write_usage_drop(
    org: SyntheticOrg, account_ids: list[str], folder: Path, *, seed: int, last_day: date
) -> tuple[Path, int]:
    """The org's daily usage up to ``last_day`` as ``folder/usage.csv``; (path, rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    population = generate_population(
        org=org, account_ids=account_ids, seed=seed, end=last_day, days=USAGE_DAYS
    )
    path = folder / "usage.csv"
    return path, write_population_usage(population, path)


def enable_usage(config: Config, usage_csv: Path) -> Config:
    """The usage file source on, licensed seats as an attribute, usage windows scored."""
    sources = config.sources
    usage_file = sources.usage_file.model_copy(
        update={
            "enabled": True,
            "path": str(usage_csv),
            "form": "long",
            "metrics": {m: m for m in METRICS},
        }
    )
    salesforce = sources.salesforce.model_copy(
        update={"attributes": {**sources.salesforce.attributes, "seats": SEATS_FIELD}}
    )
    card = config.scorecard.model_dump(by_alias=True)
    card["derived"] = {**card["derived"], **USAGE_DERIVED}
    card["measures"] = {**card["measures"], **USAGE_MEASURES}
    return config.model_copy(
        update={
            "sources": sources.model_copy(
                update={"usage_file": usage_file, "salesforce": salesforce}
            ),
            "scorecard": Scorecard.model_validate(card),
        }
    )
