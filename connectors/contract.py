"""The source contract: what one vendor package gives the rest of healthscore.

A source is a package under ``connectors/`` (its config model, one client, its error mapping,
its pulls as generators taking the cursor as an argument, the aggregation of its records into
signals) plus one ``Source`` entry in ``connectors.registry``. The beat schedule, the Celery
tasks, ``healthscore sync``/``sources``/``run``/``check``, the cycle and the demo read the
registry; none of them names a vendor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from store import Store

Progress = Callable[[int], None]


class OverrideSink(Protocol):
    """Records the grade overrides CSMs set in a CRM (the governance layer decides)."""

    def record(
        self, origin: str, values: Mapping[str, Mapping[str, Any]], now: datetime
    ) -> dict[str, int]: ...

    def active(self, now: datetime, account_ids: Any = None) -> dict[str, Any]: ...


@dataclass
class SyncContext:
    """What a sync step may use: the store, the settings, every source's section, the clock
    and one client per vendor (built on first use, shared by pulls, write-back and actions)."""

    store: Store
    settings: Any
    sources: Any
    clock: Callable[[], datetime]
    config_path: str = "healthscore.yaml"
    overrides: OverrideSink | None = None
    clients: dict[str, Any] = field(default_factory=dict)
    # the churn-model health roles the card fills (churn_risk, arr_at_risk): only these
    # are written, read back, checked and created besides the core health fields
    churn_roles: tuple[str, ...] = ()
    client_factories: Mapping[str, Callable[[SyncContext], Any]] = field(default_factory=dict)

    def client(self, vendor: str) -> Any:
        """The vendor's one client (built lazily, so a dry run needs no credentials)."""
        if vendor not in self.clients:
            make = self.client_factories.get(vendor)
            if make is None:
                raise LookupError(f"source {vendor!r} has no client")
            self.clients[vendor] = make(self)
        return self.clients[vendor]

    def section(self, name: str) -> Any:
        return getattr(self.sources, name)

    def cursor(self, source: str, obj: str, *, full: bool = False) -> datetime | None:
        """Where the last complete pull of ``obj`` started (None: never, or ``full``)."""
        stored = None if full else self.store.cursor(source, obj)
        return datetime.fromisoformat(stored) if stored else None

    def advance_cursor(self, source: str, obj: str, started: datetime) -> str:
        """After a complete pull, the cursor is the moment the pull *started*.

        The next pull reads from there minus the overlap: what was modified during this pull,
        or committed late with an earlier timestamp, comes again; what was read before the
        overlap window is not read twice (a cursor at the newest record seen would re-read
        the newest records on every sync).
        """
        stored = self.store.cursor(source, obj)
        if stored is None or started > datetime.fromisoformat(stored):
            self.store.set_cursor(source, obj, started.isoformat())
            return started.isoformat()
        return stored


@dataclass(frozen=True)
class SyncOptions:
    """How one sync runs: ``full`` ignores the cursor; ``dry_run`` (usage sources) checks and
    writes nothing; ``tracker(label)`` gives a progress callback per object pulled."""

    full: bool = False
    dry_run: bool = False
    tracker: Callable[[str], Progress] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def progress(self, label: str) -> Progress | None:
        return None if self.tracker is None else self.tracker(label)


def summarize(report: Any) -> dict[str, Any]:
    """A sync report as JSON-able data (Celery results, ``healthscore sync`` output)."""
    if hasattr(report, "summary"):
        return report.summary()
    if is_dataclass(report) and not isinstance(report, type):
        return asdict(report)
    return dict(report)


def _no_metrics(section: Any) -> list[tuple[str, str]]:
    return []


def _enabled(section: Any) -> bool:
    return section is not None and bool(getattr(section, "enabled", True))


@dataclass(frozen=True)
class Crm:
    """What a CRM source adds: the health fields written back, and — as the record system —
    links, CSM tasks and the contacts tech-touch email goes to.

    ``write_back(sources)`` says whether the fields are written; ``select(ctx, desired)``
    picks the accounts (and values, given each account's grade) this CRM receives;
    ``writer(ctx)`` writes a batch of
    pending changes; ``summary_prefix`` names its keys in the cycle summary.
    """

    name: str
    summary_prefix: str
    write_back: Callable[[Any], bool]
    select: Callable[
        [SyncContext, dict[str, dict[str, Any]], Mapping[str, str]], dict[str, dict[str, Any]]
    ]
    writer: Callable[[SyncContext], Any]
    record_system: Callable[[Any], bool]
    record_url: Callable[[SyncContext, str], str | None]
    task_backend: Callable[[SyncContext, Any], Any]
    contacts: tuple[str, Callable[[Mapping[str, Any]], Any]] | None = None
    setup: Callable[[SyncContext, Any, bool], list[str]] | None = None
    renewal_lost_metric: str | None = None


@dataclass(frozen=True)
class Source:
    """One registry entry.

    ``config`` is its ``sources.<name>`` section; ``default`` the section when the YAML has
    none (None: absent means off). ``after`` names the sources a cycle must sync first
    (support and email after the CRM, usage after the accounts). ``sync`` is the step run by
    the beat schedule, the Celery task, ``healthscore sync`` and the cycle. ``metrics`` says
    which signals an enabled section provides and where in the YAML they come from.
    ``email_sender(ctx, email settings, common)`` builds the tech-touch sender on the
    context's client for this vendor (None when its key is not set).
    """

    name: str
    config: type[BaseModel]
    sync: Callable[[SyncContext, SyncOptions], Any]
    default: BaseModel | None = None
    after: tuple[str, ...] = ()
    describe: str = ""
    make_client: Callable[[SyncContext], Any] | None = None
    metrics: Callable[[Any], list[tuple[str, str]]] = _no_metrics
    check: Callable[[SyncContext], list[str]] | None = None
    dry_run: bool = False
    cycle_summary: Callable[[Any], dict[str, Any]] | None = None
    enabled: Callable[[Any], bool] = _enabled
    crm: Crm | None = None
    email_sender: Callable[[SyncContext, Any, dict[str, Any]], Any] | None = None
