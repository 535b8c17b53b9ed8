"""Product usage into ``usage_daily``: the file drop and the SQL warehouse.

Source batches are checked and matched to accounts on this thread
(:class:`connectors.usage.rows.Normalizer`) while writer threads upsert the previous chunk
(PostgreSQL: a binary COPY, merged through a staging table only where keys exist already —
see :mod:`store.usage`), so parsing and the database work side by side; bounded queues keep
at most two chunks per writer in memory, whatever the size of the file.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connectors.identity import IdentityIndex
from connectors.usage.config import UsageFileSource, UsageMapping, WarehouseSource
from connectors.usage.files import UsageFile, content_hash, discover, file_format, read_batches
from connectors.usage.rows import AccountResolver, Normalizer
from connectors.usage.tally import Problem, UsageTally, storable_id
from connectors.usage.warehouse import read_warehouse, warehouse_engine
from healthscore.core.errors import SkippableRecord
from healthscore.core.text import printable
from store import Store

log = logging.getLogger(__name__)

USAGE_FILE = "usage_file"
WAREHOUSE = "warehouse"
CURSOR_OBJECT = "usage_daily"  # sync_cursors key of the warehouse's last loaded day
UNMATCHED_OBJECT = "usage"
# rows per write unless ``chunk_rows`` says otherwise: each SQLite commit rewrites every
# primary-key page its chunk touched (all of them, for a day-ordered file), so SQLite loads
# faster in fewer, larger chunks (store/usage_sqlite.py)
CHUNK_ROWS = {"postgresql": 250_000, "sqlite": 1_000_000}

Progress = Callable[[int], None]  # source rows just processed
Batches = Iterable[tuple[pa.RecordBatch, Callable[[int], str]]]


@dataclass
class FileResult:
    name: str
    status: str  # loaded | already_loaded | failed
    digest: str = ""
    rows_read: int = 0
    values: int = 0
    rows_changed: int = 0
    seconds: float = 0.0
    error: str = ""


@dataclass
class UsageLoadReport:
    source: str
    dry_run: bool = False
    tally: UsageTally = field(default_factory=UsageTally)
    files: list[FileResult] = field(default_factory=list)
    rows_changed: int = 0  # rows inserted or given a new value in usage_daily
    seconds: float = 0.0
    since: date | None = None  # warehouse: the :since the query ran with
    cursor: str | None = None  # warehouse: the last loaded day after this sync

    @property
    def rows_per_second(self) -> float:
        return self.tally.rows_read / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "dry_run": self.dry_run,
            **self.tally.summary(),
            "rows_changed": self.rows_changed,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
        }
        if self.source == USAGE_FILE:
            out["files"] = [vars(f) | {"seconds": round(f.seconds, 3)} for f in self.files]
        else:
            out["since"] = self.since.isoformat() if self.since else None
            out["cursor"] = self.cursor
        return out


def identity_index(store: Store) -> IdentityIndex:
    return IdentityIndex(store.account_keys(), [a.id for a in store.accounts()])


class _Loader:
    """One source's load: shared resolver and tally, batches → normalizer → writer."""

    def __init__(
        self,
        store: Store,
        source: str,
        mapping: UsageMapping,
        *,
        dry_run: bool,
        progress: Progress | None,
        writers: int = 1,
        chunk_rows: int = 100_000,
    ) -> None:
        self.store = store
        self.source = source
        self.mapping = mapping
        self.dry_run = dry_run
        self.progress = progress
        self.writers = writers
        self.chunk_rows = chunk_rows
        self.resolver = AccountResolver(mapping.match_by, identity_index(store))
        self.reported: set[str] = set()  # unknown ids reported once per load

    def run(self, batches: Batches, tally: UsageTally) -> int:
        """Normalize and write every batch; returns the rows changed in the store."""
        normalizer = Normalizer(self.mapping, self.resolver, tally, self.reported)
        if self.dry_run:
            for batch, locate in batches:
                normalizer.normalize(batch, locate)
                if self.progress:
                    self.progress(batch.num_rows)
            return 0
        return _pipelined(
            self.store,
            self.source,
            normalizer,
            batches,
            self.progress,
            self.writers,
            self.chunk_rows,
        )

    def remember_unmatched(self, tally: UsageTally) -> None:
        if self.dry_run:
            return
        unmatched: dict[str, tuple[str, str]] = {}  # as shown: PostgreSQL refuses a NUL
        for value, (reason, detail) in tally.unmatched.items():
            unmatched.setdefault(storable_id(value), (reason, printable(detail, 400)))
        matched = [storable_id(v) for v in self.resolver.matched_values()]
        self.store.record_unmatched(self.source, UNMATCHED_OBJECT, unmatched, matched)


_DONE = object()


def _pipelined(
    store: Store,
    source: str,
    normalizer: Normalizer,
    batches: Batches,
    progress: Progress | None,
    writers: int = 1,
    chunk_rows: int = 100_000,
) -> int:
    """Normalize on this thread, write on ``writers`` others; at most two chunks wait for each.

    With several writers (PostgreSQL: one connection each) an account's rows always go to the
    same writer, in file order, so the newer value of a day still wins.
    """
    if store.engine.dialect.name != "postgresql":
        writers = 1  # SQLite has one writer at a time
    queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=1) for _ in range(writers)]
    failure: list[BaseException] = []
    changed = [0] * writers
    lock = threading.Lock()

    def write(k: int) -> None:
        chunks = queues[k]
        try:
            with store.usage_writer(source) as writer:
                while (item := chunks.get()) is not _DONE:
                    table, rows = item
                    changed[k] += writer.write(table)
                    if progress and rows:
                        with lock:
                            progress(rows)
        except BaseException as exc:  # handed to the reading thread, raised there
            failure.append(exc)
            while chunks.get() is not _DONE:  # unblock the reader until it stops
                pass

    threads = [
        threading.Thread(target=write, args=(k,), name=f"usage-writer-{source}-{k}", daemon=True)
        for k in range(writers)
    ]
    for thread in threads:
        thread.start()
    try:
        pending: list[pa.Table] = []  # normalized pieces gathered up to chunk_rows
        pending_rows = source_rows = 0
        for batch, locate in batches:
            if failure:
                break
            pending.append(normalizer.normalize(batch, locate))
            pending_rows += pending[-1].num_rows
            source_rows += batch.num_rows
            if pending_rows >= chunk_rows:
                _hand_out(queues, pending, source_rows)
                pending, pending_rows, source_rows = [], 0, 0
        if pending and not failure:
            _hand_out(queues, pending, source_rows)
    finally:
        for chunks in queues:
            chunks.put(_DONE)
        for thread in threads:
            thread.join()
    if failure:
        raise failure[0]
    return sum(changed)


def _hand_out(queues: list[queue.Queue[Any]], pieces: list[pa.Table], source_rows: int) -> None:
    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    if len(queues) == 1:
        queues[0].put((table, source_rows))
        return
    for k, part in enumerate(_split(table, len(queues))):
        queues[k].put((part, source_rows if k == 0 else 0))


def _split(table: pa.Table, parts: int) -> list[pa.Table]:
    """``table`` split by account into ``parts`` (stable within a process)."""
    accounts = table.column("account_id").combine_chunks()
    uniques = pc.unique(accounts)
    part_of = pa.array([hash(a) % parts for a in uniques.to_pylist()], type=pa.int32())
    which = pc.take(part_of, pc.index_in(accounts, value_set=uniques))
    return [table.filter(pc.equal(which, k)) for k in range(parts)]


# -- the file drop ------------------------------------------------------------------------------
def load_usage_files(
    store: Store,
    source: UsageFileSource,
    *,
    paths: list[Path] | None = None,
    dry_run: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> UsageLoadReport:
    """Load every file of the drop (or ``paths``) not loaded before; report each one.

    A file whose content hash was loaded completely is skipped without being read (``force``
    reads it again: the upsert makes that harmless). A file that cannot be read at all (a
    missing column, not a CSV) is reported and left for the next run; the others go on.
    """
    started = time.perf_counter()
    report = UsageLoadReport(USAGE_FILE, dry_run=dry_run)
    files = (
        [UsageFile(p, file_format(p, source.format) or "csv") for p in paths]
        if paths is not None
        else discover(source.path, source.format)
    )
    loader = _Loader(
        store,
        USAGE_FILE,
        source,
        dry_run=dry_run,
        progress=progress,
        writers=source.writers,
        chunk_rows=source.chunk_rows or CHUNK_ROWS.get(store.engine.dialect.name, 250_000),
    )
    for file in files:
        report.files.append(_load_one(loader, file, source, report, force=force))
    loader.remember_unmatched(report.tally)
    report.seconds = time.perf_counter() - started
    log.info(
        "usage files: %d loaded, %d already loaded, %d failed; %d rows read, %d values, "
        "%d rows changed, skipped %s",
        *(sum(f.status == s for f in report.files) for s in ("loaded", "already_loaded", "failed")),
        report.tally.rows_read,
        report.tally.values,
        report.rows_changed,
        dict(report.tally.skipped) or "none",
    )
    return report


def _load_one(
    loader: _Loader,
    file: UsageFile,
    source: UsageFileSource,
    report: UsageLoadReport,
    *,
    force: bool,
) -> FileResult:
    started = time.perf_counter()
    try:
        digest = content_hash(file.path)
    except OSError as exc:
        return FileResult(file.name, "failed", error=f"cannot read: {printable(exc, 300)}")
    result = FileResult(file.name, "loaded", digest=digest)
    done = None if force else loader.store.usage_load(USAGE_FILE, digest)
    if done is not None:
        result.status = "already_loaded"
        log.info(
            "usage file %s: already loaded on %s (same content); skipped",
            file.shown,
            f"{done.loaded_at:%Y-%m-%d %H:%M}",
        )
        return result
    tally = UsageTally()
    try:
        result.rows_changed = loader.run(
            read_batches(
                file,
                source.columns(),
                tally,
                chunk_rows=loader.chunk_rows,
                delimiter=source.delimiter,
            ),
            tally,
        )
    except SkippableRecord as exc:
        reason = printable(exc.reason, 400)
        result.status, result.error = "failed", reason
        log.error("usage file %s not loaded: %s", file.shown, reason)
        tally.note(Problem(file.shown, "unreadable_file", reason))
    result.rows_read, result.values = tally.rows_read, tally.values
    result.seconds = time.perf_counter() - started
    report.tally.merge(tally)
    report.rows_changed += result.rows_changed
    if result.status == "loaded" and not loader.dry_run:
        loader.store.record_usage_load(
            USAGE_FILE,
            digest,
            name=str(file.path),
            size=file.path.stat().st_size,
            rows_read=tally.rows_read,
            values_loaded=tally.values,
            rows_skipped=sum(tally.skipped.values()),
            unmatched=len(tally.unmatched),
            first_day=tally.first_day,
            last_day=tally.last_day,
        )
    return result


# -- the warehouse ------------------------------------------------------------------------------
def warehouse_since(store: Store, source: WarehouseSource, *, full: bool, today: date) -> date:
    """The :since of this sync: the last loaded day minus the overlap, else the start."""
    stored = None if full else store.cursor(WAREHOUSE, CURSOR_OBJECT)
    if stored:
        return date.fromisoformat(stored) - timedelta(days=source.overlap.days)
    return source.start_date or today - timedelta(days=source.initial_lookback.days)


def sync_warehouse(
    store: Store,
    source: WarehouseSource,
    *,
    today: date,
    dry_run: bool = False,
    full: bool = False,
    progress: Progress | None = None,
    environ: dict[str, str] | None = None,
) -> UsageLoadReport:
    """Run the query from :since and upsert its rows; advance the cursor when it completed."""
    started = time.perf_counter()
    report = UsageLoadReport(WAREHOUSE, dry_run=dry_run)
    report.since = warehouse_since(store, source, full=full, today=today)
    engine = warehouse_engine(source, environ)
    loader = _Loader(
        store,
        WAREHOUSE,
        source,
        dry_run=dry_run,
        progress=progress,
        writers=source.writers,
        chunk_rows=source.fetch_rows,
    )
    try:
        report.rows_changed = loader.run(read_warehouse(engine, source, report.since), report.tally)
    finally:
        engine.dispose()
    loader.remember_unmatched(report.tally)
    stored = store.cursor(WAREHOUSE, CURSOR_OBJECT)
    newest = report.tally.last_day
    report.cursor = stored
    if not dry_run and newest is not None and (stored is None or newest.isoformat() > stored):
        store.set_cursor(WAREHOUSE, CURSOR_OBJECT, newest.isoformat())
        report.cursor = newest.isoformat()
    report.seconds = time.perf_counter() - started
    log.info(
        "warehouse: since %s, %d rows read, %d values, %d changed, skipped %s; cursor %s",
        report.since,
        report.tally.rows_read,
        report.tally.values,
        report.rows_changed,
        dict(report.tally.skipped) or "none",
        report.cursor,
    )
    return report
