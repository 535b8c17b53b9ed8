"""Sync orchestration: one source's step, or every enabled source in the registry's order."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connectors.contract import Progress, SyncContext, SyncOptions
from connectors.registry import client_factories, enabled, source
from healthscore.core.errors import ConfigError
from healthscore.governance.overrides import CrmOverrides

if TYPE_CHECKING:
    from healthscore.config import Config
    from store import Store

log = logging.getLogger(__name__)


class Sync:
    """Pull from the sources (a mixin of ``Pipeline``)."""

    config: Config
    store: Store
    settings: Any
    config_path: str
    clock: Callable[[], datetime]
    _clients: dict[str, Any]

    @property
    def context(self) -> SyncContext:
        """What a source's step sees; its clients are this pipeline's (built once)."""
        churn = self.config.scorecard.churn_model
        return SyncContext(
            store=self.store,
            settings=self.settings,
            sources=self.config.sources,
            clock=lambda: self.clock(),
            config_path=self.config_path,
            overrides=CrmOverrides(self.store, self.config.overrides),
            clients=self._clients,
            client_factories=client_factories(),
            churn_roles=() if churn is None else churn.crm_roles(),
        )

    def client(self, vendor: str) -> Any:
        """The vendor's one client (shared by pulls, write-back and actions)."""
        return self.context.client(vendor)

    def enabled_sources(self) -> list[str]:
        return [s.name for s in enabled(self.config.sources)]

    def sync(
        self,
        name: str,
        *,
        full: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
        tracker: Callable[[str], Progress] | None = None,
        **extra: Any,
    ) -> Any:
        """Run one source's sync step, enabled or not (the caller chose it). ``full`` ignores
        the cursor; ``dry_run`` (sources that support it) checks and writes nothing;
        ``progress`` gets the count of each page pulled, ``tracker(label)`` one such callback
        per object."""
        entry = source(name)  # an unknown name says so, with the known ones
        if getattr(self.config.sources, name, None) is None:
            raise ConfigError(f"no sources.{name} section in {self.config_path}")
        if dry_run and not entry.dry_run:
            raise ConfigError(f"--dry-run is not supported by source {name!r}")
        if tracker is None and progress is not None:
            tracker = lambda _label: progress  # noqa: E731
        options = SyncOptions(full=full, dry_run=dry_run, tracker=tracker, extra=extra)
        return entry.sync(self.context, options)

    def sync_all(self) -> dict[str, Any]:
        """Every enabled source once, each after the sources it depends on."""
        return {name: self.sync(name) for name in self.enabled_sources()}
