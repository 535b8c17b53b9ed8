"""Build the pieces a command needs from the environment and the YAML file, once."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from connectors.registry import Settings, load_settings
from healthscore.config import Config, load_config
from healthscore.pipeline.cycle import Pipeline
from store import Store


@dataclass
class Runtime:
    settings: Settings
    config: Config
    config_path: str
    store: Store

    def pipeline(self) -> Pipeline:
        return Pipeline(self.config, self.settings, self.store, config_path=self.config_path)


def load_runtime(config_path: str | Path | None = None) -> Runtime:
    settings = load_settings()
    path = Path(config_path) if config_path else settings.healthscore_config
    config = load_config(path)
    return Runtime(settings, config, str(path), Store(settings.database_url))


def setup_logging(verbose: bool = False) -> None:
    level = (
        logging.DEBUG
        if verbose
        else getattr(logging, os.environ.get("HEALTHSCORE_LOG_LEVEL", "INFO").upper(), logging.INFO)
    )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietLibraries(level))


OWN_PACKAGES = ("healthscore", "connectors", "scoring", "store", "actions", "tasks", "celery")


class QuietLibraries(logging.Filter):
    """Client libraries (HTTP, vendor SDKs) log below WARNING only in verbose mode: their
    request lines would drown ours and may carry URLs with ids."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.split(".", 1)[0] in OWN_PACKAGES
        return own or record.levelno >= max(self.level, logging.WARNING)
