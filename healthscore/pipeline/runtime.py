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
    for noisy in ("httpx", "urllib3", "slack_sdk", "simple_salesforce"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
