"""The attribute-history registry entry: account attributes as of each date from a CSV file,
loaded after the sources that bring the accounts (re-loading an unchanged file writes
nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from connectors.attribute_history.config import SOURCE, AttributeHistoryFile
from connectors.contract import Source, SyncContext, SyncOptions

if TYPE_CHECKING:
    from connectors.attribute_history.load import AttributeLoadReport


def resolved(spec: AttributeHistoryFile, config_path: str) -> AttributeHistoryFile:
    """The section with its path relative to the YAML file (not to where healthscore runs)."""
    if spec.path is None or spec.path.is_absolute() or config_path.startswith("<"):
        return spec
    return spec.model_copy(update={"path": Path(config_path).parent / spec.path})


def sync_step(ctx: SyncContext, opts: SyncOptions) -> AttributeLoadReport:
    from connectors.attribute_history.load import load_attribute_history  # pyarrow: on use

    return load_attribute_history(
        ctx.store,
        resolved(ctx.sources.attribute_history, ctx.config_path),
        opts.extra.get("path"),
        dry_run=opts.dry_run,
        progress=opts.progress("attribute history rows"),
    )


def _attributes(section: AttributeHistoryFile) -> list[tuple[str, str]]:
    return [(a, "attributes") for a in section.attributes]


SOURCE_ENTRY = Source(
    name=SOURCE,
    config=AttributeHistoryFile,
    default=None,  # absent: off
    sync=sync_step,
    describe="account attributes as of each date from a CSV file (seats, plan, renewal date …)",
    metrics=_attributes,
    dry_run=True,
    enabled=lambda section: section is not None and section.path is not None,
    cycle_summary=lambda report: {
        "attribute_values_changed": report.inserted + report.updated,
        "attribute_rows_skipped": sum(report.tally.skipped.values()),
    },
)
