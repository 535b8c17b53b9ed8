"""One cycle, in-process: pull → store → score → write back → alert.

The CLI, the demo, the tests and the Celery tasks all run these same methods; ``tasks.py``
only unpacks arguments and maps errors to retries. ``Pipeline`` is composed of one class per
stage: ``Sync`` (the registry's sources), ``Compute`` (scores at a moment), ``ScoringRun``
(a recorded run and its alerts), ``WriteBack`` (CRM fields) and ``Delivery`` (Slack, tasks,
email).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from actions import Channels, DeliveryReport, SlackAlerter
from actions.deliver import STUCK_SENDING
from connectors.contract import summarize
from connectors.registry import source
from healthscore.config import Config
from healthscore.pipeline.compute import Compute
from healthscore.pipeline.delivery import Delivery
from healthscore.pipeline.scoring_run import CRM_GRADES, ScoreReport, ScoringRun
from healthscore.pipeline.sync import Sync
from healthscore.pipeline.writeback import WriteBack, WriteReport
from store import Store
from store.models import utcnow


@dataclass
class ActReport:
    """What one score → write back → deliver pass did (writes by summary prefix)."""

    scoring: ScoreReport
    writes: dict[str, WriteReport]
    delivery: DeliveryReport

    @property
    def write(self) -> WriteReport:
        """The primary CRM's write-back (the summary's ``crm_*`` keys)."""
        return self.writes.get("crm") or WriteReport()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: the scoring, each CRM's write (``write`` is the primary one), delivery."""
        return {**asdict(self), "write": asdict(self.write)}

    @property
    def pending_write_error(self) -> WriteReport | None:
        """A write-back that stopped early with records still pending and worth retrying soon
        (one that needs a person — credentials, missing fields — waits for the next cycle)."""
        for report in self.writes.values():
            if report.error and report.pending and report.retriable:
                return report
        return None


@dataclass
class CycleReport:
    syncs: dict[str, Any]
    scoring: ScoreReport
    writes: dict[str, WriteReport]
    delivery: DeliveryReport
    seconds: float = 0.0
    record_system: str = ""
    sync_summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, pipeline: Pipeline, syncs: dict[str, Any], act: ActReport, seconds: float
    ) -> CycleReport:
        """A cycle's report from its syncs and its score → write back → deliver pass."""
        summaries = {}
        for name, report in syncs.items():
            keys = source(name).cycle_summary
            if keys is not None:
                summaries[name] = keys(report)
        return cls(
            syncs,
            act.scoring,
            act.writes,
            act.delivery,
            seconds,
            pipeline.config.sources.record_crm,
            summaries,
        )

    @property
    def write(self) -> WriteReport:
        return self.writes.get("crm") or WriteReport()

    @property
    def sync(self) -> Any:
        """The record system's sync report (accounts pulled, skipped, deleted)."""
        return self.syncs.get(self.record_system)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scored": self.scoring.scored,
            "grades": {g: self.scoring.grades.get(g, 0) for g in CRM_GRADES},
            "accounts_pulled": 0,
            "records_skipped": 0,
        }
        for keys in self.sync_summaries.values():
            if "accounts_pulled" in keys:
                out.update(keys)
        out.update(_write_keys("crm", self.write))
        out.update(
            {
                "entered_red": self.scoring.entered_red,
                "slack_messages": self.delivery.sent,
                "overrides_active": self.scoring.overrides_active,
                "stale_accounts": self.scoring.stale_accounts,
                "tasks_created": self.delivery.tasks_created,
                "emails_sent": self.delivery.emails_sent,
                "emails_skipped": self.delivery.emails_skipped,
            }
        )
        for keys in self.sync_summaries.values():
            out.update({k: v for k, v in keys.items() if k not in out})
        for prefix, report in self.writes.items():
            if prefix != "crm":
                out.update(_write_keys(prefix, report))
        out["seconds"] = round(self.seconds, 3)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "syncs": {k: summarize(v) for k, v in self.syncs.items()}}


def _write_keys(prefix: str, report: WriteReport) -> dict[str, int]:
    return {
        f"{prefix}_records_updated": report.records_updated,
        f"{prefix}_write_requests": report.requests,
        f"{prefix}_writes_pending": report.pending,
    }


class Pipeline(Sync, Compute, ScoringRun, WriteBack, Delivery):
    """The product's main job: the registry's sources, one scorecard, the CRMs' fields and
    the delivery channels. ``clients`` (by vendor name) replace the ones built from the
    settings, e.g. clients talking to the sandbox."""

    def __init__(
        self,
        config: Config,
        settings: Any,
        store: Store,
        *,
        config_path: str = "healthscore.yaml",
        slack: SlackAlerter | None = None,
        clock: Callable[[], datetime] = utcnow,
        **clients: Any,
    ) -> None:
        self.config = config
        self.settings = settings
        self.store = store
        self.config_path = config_path
        self._slack = slack
        self._clients = {k: v for k, v in clients.items() if v is not None}
        self.clock = clock
        self._channels: Channels | None = None

    def score_and_act(self, *, stuck_after: timedelta = STUCK_SENDING) -> ActReport:
        """``stuck_after``: how old a ``sending`` row must be to count as a dead worker's
        (the worker passes less: under its cycle lock no live worker can be sending)."""
        scoring, _ = self.score()
        writes = self.write_back()
        return ActReport(scoring, writes, self.deliver(stuck_after=stuck_after))

    def run_cycle(self) -> CycleReport:
        started = time.perf_counter()
        syncs = self.sync_all()
        act = self.score_and_act()
        return CycleReport.of(self, syncs, act, time.perf_counter() - started)
