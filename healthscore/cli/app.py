"""The ``healthscore`` Typer app and what every command shares: options, error reporting,
the runtime."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.text import Text

from healthscore.core.errors import ConfigError, HealthscoreError
from healthscore.core.text import printable

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    help="Customer health scores: pull, score, write back to the CRM, alert.",
)


class PipeFriendlyConsole(Console):
    """Wraps at the terminal's width, and not at all when the output is piped to a file (a
    table piped to a file came out one word per line at the default 80 columns)."""

    PIPED_WIDTH = 10_000

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(self.PIPED_WIDTH, size.height)
        return size


console = PipeFriendlyConsole(stderr=True)


def stdout_console() -> Console:
    """Where tables go (stdout), with the same wrapping rule."""
    return PipeFriendlyConsole()


F = TypeVar("F", bound=Callable[..., Any])
MESSAGE_LIMIT = 2000  # a line quoting a huge value is shortened, never echoed whole

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration (default: $HEALTHSCORE_CONFIG or ./healthscore.yaml)",
    ),
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="show what would happen; write nothing to the CRM or Slack"),
]


def reports_errors(fn: F) -> F:
    """Print a HealthscoreError as one clear message and exit non-zero (2 for config)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HealthscoreError as exc:
            message = Text("error", style="bold red")
            lines = [printable(line, MESSAGE_LIMIT) for line in str(exc).splitlines()]
            message.append(f" ({exc.failure_type}): " + "\n".join(lines))
            console.print(message, highlight=False)  # the text may quote data: no markup
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None

    return wrapper  # type: ignore[return-value]


def _runtime(config: Path | None):
    from healthscore.pipeline.runtime import load_runtime, setup_logging

    setup_logging()
    return load_runtime(config)
