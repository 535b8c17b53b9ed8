"""The sync step every email platform shares: pull from the cursor, keep facts, recompute."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.contract import SyncContext, SyncOptions
from connectors.email.sync import EmailSyncReport


def email_step(
    source: str, obj: str, sync: Callable[..., EmailSyncReport], vendor: str, label: str
) -> Callable[[SyncContext, SyncOptions], EmailSyncReport]:
    """A step pulling ``source`` through ``vendor``'s client; ``obj`` holds its cursor."""

    def step(ctx: SyncContext, opts: SyncOptions) -> EmailSyncReport:
        started = ctx.clock()
        report = sync(
            ctx.client(vendor),
            ctx.store,
            ctx.section(source),
            since=ctx.cursor(source, obj, full=opts.full),
            started=started,
            now=ctx.clock,
            progress=opts.progress(label),
        )
        report.cursor = ctx.advance_cursor(source, obj, started)
        return report

    return step


def email_metrics(source: str) -> Callable[[Any], list[tuple[str, str]]]:
    return lambda s: [
        (m, f"sources.{source} (metric_prefix {s.metric_prefix!r})") for m in s.metrics
    ]
