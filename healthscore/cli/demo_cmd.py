"""`healthscore demo`: the sandbox story end to end (needs the demo extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from healthscore.cli.app import app, reports_errors
from healthscore.core.errors import ConfigError


@app.command()
@reports_errors
def demo(
    accounts: Annotated[int, typer.Option(help="synthetic accounts to seed")] = 500,
    cycles: Annotated[int, typer.Option(help="cycles to run on unchanged data")] = 2,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic org")] = 42,
    crm: Annotated[
        str, typer.Option(help="the CRM of record: salesforce (HubSpot mirrored) or hubspot")
    ] = "salesforce",
    backtest: Annotated[
        bool, typer.Option(help="also backtest and fit on a year of synthetic usage")
    ] = True,
    keep: Annotated[
        Path | None,
        typer.Option(
            help="keep the demo's store and configuration in this directory, to try "
            "explain, history, override and diff-scorecard on them"
        ),
    ] = None,
    chaos: Annotated[
        bool,
        typer.Option(
            "--chaos",
            help="cycle 1 through a Slack 429 "
            "storm, with a worker killed after each vendor "
            "accepted a delivery, then restarted",
        ),
    ] = False,
) -> None:
    """Start the sandbox, seed it, run cycles through the real clients, print a summary.

    The last line printed is one JSON object with each cycle's numbers.
    """
    from healthscore.demo.run_demo import run_demo

    if crm not in ("salesforce", "hubspot"):
        raise ConfigError(f"--crm must be salesforce or hubspot, not {crm!r}")
    result = run_demo(
        accounts=accounts,
        cycles=cycles,
        seed=seed,
        crm=crm,
        backtest=backtest,
        keep=keep,
        chaos=chaos,
    )
    sys.stdout.flush()
    print(json.dumps(result))
