"""The ``healthscore`` command line: the app with every command registered (the development
tooling's ``demo`` and ``sandbox`` through the ``healthscore.cli`` entry points)."""

from healthscore.cli import (  # noqa: F401  (each module registers its commands)
    destinations,
    governance,
    proof,
    scores,
    sync,
    webhook,
)
from healthscore.cli.app import app, console
from healthscore.cli.plugins import load_plugins

load_plugins(app)

__all__ = ["app", "console"]

if __name__ == "__main__":  # pragma: no cover
    app()
