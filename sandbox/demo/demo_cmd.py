"""`healthscore demo`, `healthscore sandbox serve` and `healthscore sandbox chaos`: the
development tooling's commands.

They join the ``healthscore`` command line through the ``healthscore.cli`` entry point
(sandbox/pyproject.toml), which names :func:`register`; this module is imported on every
``healthscore`` start, so the work is imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from healthscore.cli.app import reports_errors
from healthscore.core.errors import ConfigError
from sandbox.chaos import DEFAULTS as CHAOS

_ACCOUNTS, _CYCLES, _EVERY, _SEED = (CHAOS[k] for k in ("accounts", "cycles", "every", "seed"))

sandbox_app = typer.Typer(
    no_args_is_help=True, help="The vendor emulators (development tooling, not the runtime)."
)


def register(app: typer.Typer) -> None:
    """Add ``demo``, ``sandbox serve`` and ``sandbox chaos`` to the ``healthscore`` app."""
    app.command()(reports_errors(demo))
    app.add_typer(sandbox_app, name="sandbox")


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
            help="cycle 1 through a Slack 429 storm, its delivery in real worker processes "
            "SIGKILLed inside a Slack post, a task upsert and a mail send, each replaced",
        ),
    ] = False,
) -> None:
    """Start the sandbox, seed it, run cycles through the real clients, print a summary.

    The last line printed is one JSON object with each cycle's numbers.
    """
    from sandbox.demo.run_demo import run_demo

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


@sandbox_app.command()
@reports_errors
def serve(
    accounts: Annotated[int, typer.Option(help="synthetic accounts to seed")] = 500,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic org")] = 42,
    port_base: Annotated[
        int,
        typer.Option(
            min=0,
            max=65530,
            help="fixed ports: Salesforce at P, HubSpot P+1, Zendesk P+2, SendGrid P+3, "
            "Mailchimp P+4, Slack P+5 (0: free ports)",
        ),
    ] = 0,
) -> None:
    """Start every emulator, seeded with one synthetic org, until Ctrl-C or SIGTERM.

    Prints `export NAME=value` for each variable that points healthscore at them.

    Try: `healthscore sandbox serve > sandbox.env`, then `source sandbox.env` in another shell.
    """
    from sandbox.demo.serve_demo import serve as serve_sandbox

    serve_sandbox(accounts=accounts, seed=seed, port_base=port_base)


@sandbox_app.command()
@reports_errors
def chaos(
    accounts: Annotated[int, typer.Option(help="synthetic accounts to seed")] = _ACCOUNTS,
    cycles: Annotated[int, typer.Option(help="score cycles under faults (>= 3)")] = _CYCLES,
    every: Annotated[int, typer.Option(help="seconds between score cycles (>= 8)")] = _EVERY,
    seed: Annotated[int, typer.Option(help="random seed of the org and the faults")] = _SEED,
    keep: Annotated[
        Path | None, typer.Option(help="keep every process's log in this directory")
    ] = None,
) -> None:
    """Real workers, beat, Redis and PostgreSQL against the emulators under 10 % vendor
    faults; workers and Redis SIGKILLed mid-cycle. Checks CRM fields, exactly-once actions,
    no lost write or message, recovery within two cycles.

    Prints one JSON line; exits 1 when an invariant fails (`make chaos`).
    """
    from sandbox.chaos.run import main

    raise typer.Exit(main(accounts, cycles, every, seed, keep))
