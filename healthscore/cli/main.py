"""The ``healthscore`` command line: the app with every command registered."""

from healthscore.cli import (  # noqa: F401  (each module registers its commands)
    demo_cmd,
    destinations,
    governance,
    proof,
    scores,
    sync,
    webhook,
)
from healthscore.cli.app import app, console

__all__ = ["app", "console"]

if __name__ == "__main__":  # pragma: no cover
    app()
