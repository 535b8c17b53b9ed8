"""The usage file drop: CSV (optionally compressed) and Parquet files, read in chunks.

A generator per file yields Arrow record batches of at most ``chunk_rows`` rows with a
``locate`` function naming each row's place — ``usage.csv:17`` (the line; the header is line
1) or ``usage.parquet:row 5`` — so a bad row is reported where a person can find it. Memory
stays flat: CSV is parsed block by block (pyarrow.csv.open_csv), Parquet batch by batch within
its row groups; nothing holds the whole file.

CSV rows with the wrong number of columns are reported (reason ``bad_row``) and skipped by the
parser itself. Line numbers count records: a quoted value spanning two lines counts as one.
A CSV file that is not UTF-8 (a UTF-16 export, Latin-1 bytes) fails as a whole, with one
message saying what it looks like: Arrow would otherwise find no header or fail with a
message of raw bytes.
"""

from __future__ import annotations

import bisect
import csv
import glob
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.usage.tally import BAD_ROW, SHOWN, UsageTally
from healthscore.core.errors import ConfigError, SkippableRecord
from healthscore.core.text import printable, utf8_problem

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# parsed at a time (Arrow reads a few blocks ahead): the memory a CSV load needs, whatever
# the file's size; 1 MiB is about 20,000 rows
CSV_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class UsageFile:
    path: Path
    format: str  # csv | parquet

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def shown(self) -> str:
        """The name as messages show it (a file name may hold control characters)."""
        return printable(self.path.name, 200)


def file_format(path: Path, configured: str = "auto") -> str | None:
    if configured != "auto":
        return configured
    lower = path.name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def discover(pattern: str, configured: str = "auto") -> list[UsageFile]:
    """The files a path names: itself, a folder's usage files, or a glob's matches (sorted).

    Files are loaded in name order, so a later export (``usage-2026-11-02.csv``) overwrites the
    days it shares with an earlier one.
    """
    path = Path(pattern).expanduser()
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.is_file())
    elif any(ch in pattern for ch in "*?["):
        candidates = sorted(
            Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()
        )
    elif path.is_file():
        return [UsageFile(path, file_format(path, configured) or "csv")]
    else:
        raise ConfigError(
            f"sources.usage_file.path: {pattern!r} is not a file, a folder or a "
            "glob that matches files"
        )
    files = []
    for p in candidates:
        fmt = file_format(p, configured)
        if fmt is not None and not p.name.startswith("."):
            files.append(UsageFile(p, fmt))
    return files


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes: the same content is loaded once, whatever its name."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class LineMap:
    """Maps the n-th row the CSV reader returned to its line in the file.

    The parser drops malformed rows (reported through :meth:`skipped`); rows after one sit a
    line further down than their count says.
    """

    first_line: int = 2  # the header is line 1
    dropped: list[int] = field(default_factory=list)  # lines of dropped rows, ascending

    def skipped(self, line: int) -> None:
        bisect.insort(self.dropped, line)

    def line(self, row: int) -> int:
        line = self.first_line + row
        k = 0
        while k < len(self.dropped) and self.dropped[k] <= line:
            k += 1
            line = self.first_line + row + k
        return line


Batches = Iterator[tuple[pa.RecordBatch, Callable[[int], str]]]


def read_batches(
    file: UsageFile, columns: list[str], tally: UsageTally, *, chunk_rows: int, delimiter: str = ","
) -> Batches:
    """Yield (batch, locate) for every chunk of ``file``, only the needed ``columns``.

    Raises :class:`SkippableRecord` (the whole file) when a column is missing or the file is
    not readable as its format.
    """
    if file.format == "parquet":
        yield from _parquet_batches(file, columns, chunk_rows)
    else:
        yield from _csv_batches(file, columns, tally, chunk_rows, delimiter)


def _csv_batches(
    file: UsageFile, columns: list[str], tally: UsageTally, chunk_rows: int, delimiter: str
) -> Batches:
    lines = LineMap()
    name = file.shown
    try:
        verdict = utf8_problem(_head(file.path), whole=False)
    except (OSError, pa.ArrowException) as exc:  # e.g. a damaged .gz
        raise SkippableRecord(name, f"not a readable file ({_said(exc)})") from None
    if verdict:
        raise SkippableRecord(name, verdict)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        line = row.number if row.number is not None else 0
        lines.skipped(line)
        tally.rows_read += 1
        tally.report(
            f"{name}:{line}",
            BAD_ROW,
            f"{row.actual_columns} columns, the header has {row.expected_columns}",
        )
        return "skip"

    try:
        reader = pacsv.open_csv(
            file.path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types={c: pa.string() for c in columns},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except KeyError:
        header = _csv_header(file.path, delimiter)
        missing = [c for c in columns if c not in header]
        has = ", ".join(printable(h, SHOWN) for h in header[:50])
        raise SkippableRecord(
            name,
            f"no column {', '.join(map(repr, missing))} (the header has: {has or 'nothing'})",
        ) from None
    except pa.ArrowInvalid as exc:
        raise SkippableRecord(name, f"not a readable CSV file ({_said(exc)})") from None
    done = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:  # e.g. an unterminated quote: the rest is unreadable
            verdict = _first_bad_byte(file.path) if "invalid UTF8" in str(exc) else None
            raise SkippableRecord(
                name, verdict or f"unreadable after line {lines.line(done)}: {_said(exc)}"
            ) from None
        for start in range(0, batch.num_rows, chunk_rows):
            piece = batch.slice(start, chunk_rows)
            offset = done + start
            yield piece, lambda i, o=offset: f"{name}:{lines.line(o + i)}"
        done += batch.num_rows


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with pa.input_stream(str(path), compression="detect") as stream:
        head = stream.read(1 << 16).decode("utf-8-sig", errors="replace")
    return next(csv.reader(io.StringIO(head), delimiter=delimiter), [])


def _chunks(path: Path, size: int = CSV_BLOCK_BYTES) -> Iterator[bytes]:
    """The file's bytes block by block (uncompressed, for a .gz/.bz2/.zst file)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        while chunk := stream.read(size):
            yield chunk


def _head(path: Path) -> list[bytes]:
    """The file's first block: enough to tell its encoding, read before Arrow parses it."""
    with pa.input_stream(str(path), compression="detect") as stream:
        return [stream.read(CSV_BLOCK_BYTES)]


def _first_bad_byte(path: Path) -> str | None:
    """Where a file Arrow found not UTF-8 past its first block is not (read again, once)."""
    try:
        return utf8_problem(_chunks(path))
    except (OSError, pa.ArrowException):
        return None


def _said(exc: Exception) -> str:
    """Arrow's message, which may quote a whole row of the file, as a message may show it."""
    return printable(str(exc), 300)


def _parquet_batches(file: UsageFile, columns: list[str], chunk_rows: int) -> Batches:
    name = file.shown
    try:
        parquet = pq.ParquetFile(file.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SkippableRecord(name, f"not a readable Parquet file ({_said(exc)})") from None
    present = parquet.schema_arrow.names
    missing = [c for c in columns if c not in present]
    if missing:
        has = ", ".join(printable(c, SHOWN) for c in present[:50])
        raise SkippableRecord(
            name, f"no column {', '.join(map(repr, missing))} (the file has: {has})"
        )
    done = 0
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
            offset = done
            yield batch, lambda i, o=offset: f"{name}:row {o + i + 1}"
            done += batch.num_rows
    finally:
        parquet.close()
