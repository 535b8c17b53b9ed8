"""The product-usage registry entries: a drop folder of CSV/Parquet files, or a warehouse
query. Both load daily values into ``usage_daily``; they map to the accounts, so they run
after the sources that bring accounts."""

from __future__ import annotations

from connectors.contract import Source, SyncContext, SyncOptions
from connectors.usage.config import UsageFileSource, WarehouseSource
from connectors.usage.load import USAGE_FILE, WAREHOUSE, UsageLoadReport


def sync_files(ctx: SyncContext, opts: SyncOptions) -> UsageLoadReport:
    """Load the drop folder's new usage files (or ``extra["paths"]``) into usage_daily."""
    from connectors.usage.load import load_usage_files  # pyarrow only when usage is loaded

    section = ctx.sources.usage_file
    form = opts.extra.get("form")
    if form is not None:
        section = section.model_validate({**section.model_dump(), "form": form})
    return load_usage_files(
        ctx.store,
        section,
        paths=opts.extra.get("paths"),
        dry_run=opts.dry_run,
        force=opts.full or opts.extra.get("force", False),
        progress=opts.progress("usage files"),
    )


def sync_query(ctx: SyncContext, opts: SyncOptions) -> UsageLoadReport:
    """Run the warehouse usage query from its cursor and upsert the rows."""
    from connectors.usage.load import sync_warehouse

    return sync_warehouse(
        ctx.store,
        ctx.sources.warehouse,
        today=ctx.clock().date(),
        dry_run=opts.dry_run,
        full=opts.full,
        progress=opts.progress("warehouse rows"),
    )


def _usage_metrics(section: UsageFileSource | WarehouseSource) -> list[tuple[str, str]]:
    return [(m, "") for m in section.metric_names]


FILE_ENTRY = Source(
    name=USAGE_FILE,
    config=UsageFileSource,
    default=UsageFileSource(),
    sync=sync_files,
    describe="product usage files (CSV/Parquet) into usage_daily",
    metrics=_usage_metrics,
    dry_run=True,
)

WAREHOUSE_ENTRY = Source(
    name=WAREHOUSE,
    config=WarehouseSource,
    default=WarehouseSource(),
    sync=sync_query,
    describe="product usage from a SQL query into usage_daily",
    metrics=_usage_metrics,
    dry_run=True,
)
