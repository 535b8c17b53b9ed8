"""The SQL warehouse: any SQLAlchemy URL, the query and the column mapping in the YAML.

The URL comes from the environment variable the YAML names (``url_env``), never from the file
and never into a log (errors show it with the password hidden). The query is run once per
sync with ``:since`` bound to a date — the last loaded day minus an overlap, kept as a cursor
in the store — and its rows are streamed (server-side cursor, ``yield_per``), turned into
Arrow batches and handed on a batch at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from connectors.usage.config import WarehouseSource
from healthscore.core.errors import ConfigError, FatalError, RetriableError

log = logging.getLogger(__name__)

Batches = Iterator[tuple[pa.RecordBatch, Callable[[int], str]]]


def warehouse_url(source: WarehouseSource, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    url = env.get(source.url_env, "").strip()
    if not url:
        raise ConfigError(
            f"missing environment variable: {source.url_env} (the warehouse's "
            "SQLAlchemy URL, named by sources.warehouse.url_env)"
        )
    return url


def redacted(url: str) -> str:
    """The URL as it may be shown: password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def warehouse_engine(source: WarehouseSource, environ: dict[str, str] | None = None) -> Engine:
    url = warehouse_url(source, environ)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"{source.url_env}: not a SQLAlchemy URL (e.g. postgresql://user:password@host/db)"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver installed with us
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"{source.url_env}: no driver for {parsed.drivername!r} ({exc}); "
            "install its Python package"
        ) from None


def read_warehouse(engine: Engine, source: WarehouseSource, since: date | None) -> Batches:
    """Yield (batch, locate) for every ``fetch_rows`` rows of the query's result."""
    params: dict[str, Any] = {"since": since} if source.incremental else {}
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(
                stream_results=True, yield_per=source.fetch_rows
            ).execute(text(source.query), params)
            names = list(result.keys())
            missing = [c for c in source.columns() if c not in names]
            if missing:
                raise ConfigError(
                    f"sources.warehouse.query returns no column {', '.join(map(repr, missing))} "
                    f"(it returns: {', '.join(names)}); fix the query or the column mapping"
                )
            done = 0
            for rows in result.partitions():
                batch = _to_batch(names, rows)
                offset = done
                yield batch, lambda i, o=offset: f"warehouse row {o + i + 1}"
                done += len(rows)
    except DBAPIError as exc:
        message = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        if exc.connection_invalidated or _is_connect_error(exc):
            raise RetriableError(f"warehouse {where}: {message}") from None
        raise FatalError(f"warehouse query failed ({where}): {message}") from None
    except SQLAlchemyError as exc:
        raise FatalError(
            f"warehouse query failed ({where}): {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from None


def _is_connect_error(exc: DBAPIError) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


def _to_batch(names: list[str], rows: list[Any]) -> pa.RecordBatch:
    """Rows → an Arrow batch; a column of mixed Python types becomes text (then parsed)."""
    arrays = []
    for k, _ in enumerate(names):
        values = [row[k] for row in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(
                pa.array([None if v is None else str(v) for v in values], type=pa.string())
            )
    return pa.RecordBatch.from_arrays(arrays, names=names)
