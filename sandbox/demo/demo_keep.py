"""Keep what the demo built, so a new user can try the CLI on it afterwards.

``healthscore demo --keep DIR`` leaves ``DIR/healthscore-demo.db`` (the store: accounts,
signals, score history, overrides, action log) and ``DIR/healthscore.yaml`` (the exact
configuration the demo ran with), and prints the two environment variables that point the
CLI at them. Commands that read the store — ``explain``, ``history``, ``override``,
``diff-scorecard``, ``score --dry-run``, ``actions --log`` — then work on the demo's data
(the emulators are gone, so ``sync`` and ``run`` do not).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from healthscore.config import Config, load_config
from healthscore.core.errors import ConfigError

DB_NAME = "healthscore-demo.db"
CONFIG_NAME = "healthscore.yaml"


def _plain(value: Any) -> Any:
    """Durations as ``Ns`` strings, tuples as lists: what the YAML loader reads back."""
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_config(config: Config, path: Path) -> None:
    """Write ``config`` as YAML that loads back to an equal configuration (checked)."""
    data = _plain(config.model_dump(mode="python", by_alias=True))
    path.write_text(
        "# written by `healthscore demo --keep`: the configuration the demo ran "
        "with\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    if load_config(path) != config:
        raise ConfigError(f"{path}: the demo configuration did not survive a YAML round trip")


def keep_paths(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / DB_NAME, directory / CONFIG_NAME


def fresh_keep_dir(directory: Path) -> None:
    """Remove a previous demo's store from ``directory`` (only the files the demo writes): a
    demo always starts from an empty store, as its numbers assume."""
    db, _ = keep_paths(directory)
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
