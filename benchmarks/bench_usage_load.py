"""Benchmark: a long-form usage CSV streamed into PostgreSQL's usage_daily.

Generates deterministic files (``account_id,date,metric,value``; ordered by day, then account,
then metric, like a warehouse's daily export) in a temporary folder, then loads each size in a
fresh process and a fresh schema — so each size's peak memory is its own — through the product
path (``connectors.usage.load.load_usage_files``: Arrow CSV reader, identity matching, binary
COPY straight into usage_daily). Each load is then repeated: the file is recognised by its
hash and nothing is added. With ``--force-reload`` the smallest file is also re-read (every
row already there: the chunks meet existing keys and are merged through the staging table):
nothing changes either. ``superuser`` says whether the load could compress its WAL (a
superuser's setting; see store/usage.py).

Prints one JSON line: the largest size's numbers (medians of ``--repeats`` runs) and the
smallest's peak memory beside it, to show memory does not grow with the file.

    python benchmarks/bench_usage_load.py [--rows 1000000,10000000] [--repeats 3]
        [--accounts 10000] [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.usage.config import UsageFileSource

METRICS = ("logins", "active_users", "minutes_used", "features_used", "invites_sent")
START = date(2025, 1, 1)
DEFAULT_DB = os.environ.get("HEALTHSCORE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def account_ids(accounts: int) -> list[str]:
    return [f"001BENCH{i:010d}" for i in range(accounts)]


def generate(path: Path, rows: int, accounts: int, seed: int = 7) -> None:
    """``rows`` rows: every account × metric for day after day (the last day partly)."""
    rng = np.random.default_rng(seed)
    ids = np.array(account_ids(accounts), dtype=object)
    per_day = accounts * len(METRICS)
    acct = np.repeat(ids, len(METRICS))
    metric = np.tile(np.array(METRICS, dtype=object), accounts)
    written = 0
    day = 0
    options = pacsv.WriteOptions(include_header=True, quoting_style="none")
    with pacsv.CSVWriter(
        str(path),
        pa.schema(
            [
                ("account_id", pa.string()),
                ("date", pa.string()),
                ("metric", pa.string()),
                ("value", pa.string()),
            ]
        ),
        write_options=options,
    ) as writer:
        while written < rows:
            n = min(per_day, rows - written)
            stamp = (START + timedelta(days=day)).isoformat()
            values = rng.poisson(20, n).astype(str)
            writer.write_table(
                pa.table(
                    {
                        "account_id": pa.array(acct[:n], pa.string()),
                        "date": pa.array(np.full(n, stamp, dtype=object), pa.string()),
                        "metric": pa.array(metric[:n], pa.string()),
                        "value": pa.array(values.astype(object), pa.string()),
                    }
                )
            )
            written += n
            day += 1


def _schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_usage_{uuid.uuid4().hex[:8]}"
    return schema, f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def child(
    path: Path, database: str, accounts: int, force_reload: bool, writers: int, chunk_rows: int
) -> dict:
    """One load in this (fresh) process; returns its numbers."""
    import psycopg

    from connectors.usage.config import UsageFileSource
    from connectors.usage.load import load_usage_files
    from store import AccountRow, Store

    schema, url = _schema_url(database)
    admin = psycopg.connect(database, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = Store(url)
        store.upsert_accounts(AccountRow(a, "salesforce", a) for a in account_ids(accounts))
        source = UsageFileSource(
            enabled=True, path=str(path), writers=writers, chunk_rows=chunk_rows
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load_before = os.getloadavg()[0]
        cpu_before = time.process_time()
        started = time.perf_counter()
        report = load_usage_files(store, source)
        seconds = time.perf_counter() - started
        python_cpu = time.process_time() - cpu_before
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        def count() -> int:
            with psycopg.connect(url) as conn:
                return int(conn.execute("SELECT count(*) FROM usage_daily").fetchone()[0])

        held = count()
        again_started = time.perf_counter()
        again = load_usage_files(store, source)
        again_seconds = time.perf_counter() - again_started
        superuser = admin.execute("SHOW is_superuser").fetchone()[0] == "on"
        out = {
            "rows": report.tally.rows_read,
            "superuser": superuser,
            "values_loaded": report.tally.values,
            "rows_held": held,
            "seconds": seconds,
            "rows_per_second": report.tally.rows_read / seconds,
            "peak_rss_mb": peak,
            "rss_before_load_mb": rss_before,
            "python_cpu_seconds": python_cpu,
            "load_average": (load_before + os.getloadavg()[0]) / 2,
            "reload_rows_added": count() - held,
            "reload_status": again.files[0].status,
            "reload_seconds": again_seconds,
            "skipped": dict(report.tally.skipped),
        }
        if force_reload:
            forced_started = time.perf_counter()
            forced = load_usage_files(store, source, force=True)
            out["forced_reload_seconds"] = time.perf_counter() - forced_started
            out["forced_reload_rows_changed"] = forced.rows_changed
            out["forced_reload_rows_added"] = count() - held
        store.close()
        return out
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default="1000000,10000000",
        help="comma-separated sizes (the first and last are compared)",
    )
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument(
        "--writers", type=int, default=2, help="PostgreSQL connections writing in parallel"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=UsageFileSource.model_fields["chunk_rows"].default,
        help="rows per write",
    )
    parser.add_argument(
        "--force-reload",
        action="store_true",
        help="also re-read the smallest file ignoring its hash",
    )
    parser.add_argument("--child", nargs=2, metavar=("FILE", "FORCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                child(
                    Path(args.child[0]),
                    args.database,
                    args.accounts,
                    args.child[1] == "1",
                    args.writers,
                    args.chunk_rows,
                )
            )
        )
        return

    import psycopg

    try:
        psycopg.connect(args.database, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        sys.exit(
            f"bench_usage_load: PostgreSQL at {args.database} unreachable ({exc}); "
            "set HEALTHSCORE_TEST_PG_URL or --database"
        )
    sizes = [int(s) for s in args.rows.split(",")]
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory(prefix="bench_usage_") as tmp:
        files = {}
        for n in sizes:
            files[n] = Path(tmp) / f"usage_{n}.csv"
            generate(files[n], n, args.accounts)
        for _ in range(args.repeats):
            for n in sizes:
                force = "1" if args.force_reload and n == sizes[0] else "0"
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(files[n]),
                        force,
                        "--accounts",
                        str(args.accounts),
                        "--database",
                        args.database,
                        "--writers",
                        str(args.writers),
                        "--chunk-rows",
                        str(args.chunk_rows),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                print(json.dumps({"size": n, **result}), file=sys.stderr)
                runs[n].append(result)

    def median(n: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[n])

    big, small = sizes[-1], sizes[0]
    out = {
        "rows": big,
        "accounts": args.accounts,
        "repeats": args.repeats,
        "writers": args.writers,
        "chunk_rows": args.chunk_rows,
        "seconds": round(median(big, "seconds"), 2),
        "rows_per_second": round(median(big, "rows_per_second")),
        "peak_rss_mb": round(median(big, "peak_rss_mb"), 1),
        f"rows_per_second_{_label(small)}": round(median(small, "rows_per_second")),
        f"peak_rss_mb_{_label(small)}": round(median(small, "peak_rss_mb"), 1),
        "rows_held": runs[big][0]["rows_held"],
        "reload_rows_added": max(r["reload_rows_added"] for n in sizes for r in runs[n]),
        "reload_seconds": round(median(big, "reload_seconds"), 2),
        "python_cpu_seconds": round(median(big, "python_cpu_seconds"), 1),
        "load_average_during": round(median(big, "load_average"), 1),
        "cpus": os.cpu_count(),
        "superuser": runs[big][0]["superuser"],
    }
    if args.force_reload:
        out[f"forced_reload_rows_added_{_label(small)}"] = max(
            r["forced_reload_rows_added"] for r in runs[small]
        )
        out[f"forced_reload_rows_changed_{_label(small)}"] = max(
            r["forced_reload_rows_changed"] for r in runs[small]
        )
        out[f"forced_reload_rows_per_second_{_label(small)}"] = round(
            small / median(small, "forced_reload_seconds")
        )
    print(json.dumps(out))


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


if __name__ == "__main__":
    main()
