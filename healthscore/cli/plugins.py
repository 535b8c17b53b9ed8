"""Commands from other distributions, through the ``healthscore.cli`` entry point group.

The development tooling — ``healthscore demo`` and ``healthscore sandbox serve`` — ships in the
``healthscore-sandbox`` distribution (``pip install 'healthscore[demo]'``), never in the
runtime. Each entry point names a function that takes the Typer app and adds its commands.
Without the tooling, its commands stay listed and say in one line how to install it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

GROUP = "healthscore.cli"
INSTALL = "pip install 'healthscore[demo]' (from a checkout: pip install -e ./sandbox)"
# the commands the tooling adds, and what --help says of them when it is missing
TOOLING = {
    "demo": "The sandbox demo end to end (not installed: the demo extra).",
    "sandbox": "The vendor emulators: sandbox serve (not installed: the demo extra).",
}


def load_plugins(app: typer.Typer) -> None:
    """Let every installed ``healthscore.cli`` entry point register its commands; a command
    of the tooling that none registered answers with the install hint."""
    failures: list[str] = []
    for entry in entry_points(group=GROUP):
        try:
            register = entry.load()
        except ImportError as exc:  # installed, but a dependency is missing
            failures.append(f"{entry.value} did not load: {exc}")
            continue
        register(app)
    present = {info.name or info.callback.__name__ for info in app.registered_commands} | {
        info.name for info in app.registered_groups
    }
    for name, help_text in TOOLING.items():
        if name not in present:
            _missing(app, name, help_text, "; ".join(failures))


def _missing(app: typer.Typer, name: str, help_text: str, failure: str) -> None:
    def missing() -> None:
        why = f" ({failure})" if failure else ""
        typer.echo(
            f"healthscore {name} is development tooling, not installed{why}: {INSTALL}", err=True
        )
        raise typer.Exit(2)

    app.command(
        name,
        help=help_text,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(missing)
