"""Benchmark: syncing 100,000 accounts' worth of records from the emulators under the vendors'
real limits, through the real Pipeline sync steps (the registry's), into a SQLite store.

- Salesforce Accounts: ``SalesforceEmulator`` (page size 2,000; no per-minute limit);
- HubSpot companies: ``HubSpotEmulator`` at 190 requests per rolling 10 s (and search at 5/s,
  unused by a first, list-based sync);
- Zendesk organizations, tickets (incremental export, 10 requests/min) and CSAT ratings:
  ``ZendeskEmulator`` at 700 requests/min.

The emulators run in a child process (their memory and CPU are not the sync's). Every limit
is scaled by one factor, ``--limit-scale`` (a "minute" lasts 60/scale s, HubSpot's window
10/scale s), so the run stays short while the ratios keep their meaning:

- ``requests_ratio``: requests the syncs made / the fewest the page sizes allow;
- ``seconds_ratio``: wall time / the floor the (scaled) rate limits impose;
- ``peak_rss_mb``: the syncing process's peak RSS (run with 10k and 100k: it should be flat).

By default the three syncs run at once, each in its own thread, as beat runs the per-source
tasks, on a store that already holds the account identities (ids and web domains, written
before the clock starts, as any earlier CRM sync leaves them): the Salesforce sync still
reads and writes every account, signal and key. ``--first-sync`` starts from an empty store
instead: Salesforce first (its accounts are what the others match), then HubSpot and Zendesk
together. The floor is the larger of HubSpot's and Zendesk's (Salesforce has no per-minute
limit). Prints one JSON line.

    python benchmarks/bench_sync.py [--accounts 100000] [--limit-scale 20] [--first-sync]
        [--ticket-rounds 1]

Measured 2026-12-06 (the 2-core machine, quiet; SQLite; --limit-scale 20; no request drew a
429 in any run):

| order | accounts | records | requests / min | seconds (floor) | ratio | peak RSS MB |
|---|---|---|---|---|---|---|
| concurrent | 10,000 | 86,782 | 406 / 403 | 11.21, 11.34, 11.26 (9.6) | 1.168-1.181 | 204-208 |
| concurrent | 100,000 | 867,078 | 4,003 / 4,000 | 132.33, 132.46, 132.91 (121.2) | 1.093 | 366 |
| first sync | 10,000 | 86,782 | 406 / 403 | 13.25 (9.6) | 1.380 | 180 |
| first sync | 100,000 | 867,078 | 4,003 / 4,000 | 152.33 (121.2) | 1.257 | 335 |

At 100k the export's last page is asked for at 122.5-122.9 s against the 121.2 s floor; what
follows (``after_export_seconds``, 9.8-10.0 s) is the ratings following their tickets
(~1.6 s), and the recompute of 100,000 accounts' support signals (~7.5 s), then read and
aggregated in a worker process while the syncing process wrote 500,000 signals.
In ``--first-sync`` order Salesforce runs alone first (19.5 s at 100k), outside the floor.

Since 2026-12-07 there is no worker process: the database computes the support signals
(grouped SQL over the kept tickets, connectors/zendesk/signals_sql.py), 1,000 accounts a
statement, a chunk or two ahead of the thread writing them. Measured that day on the same
machine, never quite quiet (other work: a 1-minute load average of 0.4-1.1 when the quietest
runs started), before (the worker process) and after, runs interleaved:

| run | load at start | before: seconds | after: seconds |
|---|---|---|---|
| 100k | 0.7-1.1 | 136.12, 133.16, 131.61, 133.29 | 132.24 (2.6), 134.83, 133.72, 135.68, 135.57 |
| 100k | 1.2-7.9, rising | 365.25, 195.39, 160.56, 156.82 | 188.92, 180.60, 161.85 |
| 100k, --first-sync | 0.4-0.6 | 155.51 | 155.56; 165.31 at load 3.3 |
| 10k | 1.8-2.1 | 12.33, 11.72 | 11.38, 11.35 |
| 10k, --ticket-rounds 10 | 1.0-2.1 | 129.36 (286 MB) | 131.37 (257 MB) |

Quiet 100k medians: 133.2 s before (ratio 1.099), 134.8 s after (1.112); the export's last
page at 122.6-125.3 s before, 122.3-125.5 s after; the tail after it 9.0-10.9 s before,
9.8-12.5 s after. requests_ratio 1.001 (100k), 1.007 (10k); no 429 in any run. The recompute
alone (a copy of a synced 100k store: 413,628 kept tickets, 500,000 signals written, load
0.1-1.2 at start) takes 7.2-8.4 s (median 7.6) against 7.5-7.9 s with the worker, and gives the same
500,000 values; its SQL alone is 5.0-5.5 s and the writes 4.4-4.6 s, overlapped in two
threads (one after the other: 9.8-11.0 s). Peak RSS: 415-450 MB (100k), 252-258 MB (10k), 257
MB with ten rounds of tickets (before: 286 MB, the recompute then held a chunk's tickets).

Later on 2026-12-07 the emulators were made cheaper on the two shared cores (HubSpot list
pages found by bisection, not by scanning every company; orjson bodies; Zendesk times by
``time.gmtime``) and ``signal_latest`` became a ``WITHOUT ROWID`` table. The machine otherwise
idle (1-minute load 0.2-0.9 when each run started), 100k, concurrent:

| run | seconds | ratio | export's last page | after it | Salesforce / HubSpot done |
|---|---|---|---|---|---|
| 1 | 134.08 | 1.106 | 122.52 | 11.56 | 58.1 / 40.7 |
| 2 | 140.62 | 1.160 | 127.98 | 12.64 | 68.4 / 53.3 |
| 3 | 138.26 | 1.141 | 126.66 | 11.60 | 65.6 / 54.0 |
| 4 | 144.41 | 1.192 | 131.91 | 12.51 | 72.5 / 51.4 |

Median 1.15, over the 1.1 target: the export's last page leaves 1.3-10.7 s after the floor
from run to run, and the tail after it (the ratings following their tickets, ~2 s; the
recompute, ~9.5 s) is 11.6-12.6 s. The recompute's statements now run in two threads, each
chunk in its own read snapshot (the same speed as one thread — a median of 10.6 s against
11.3 s, three runs each — and SQLite can checkpoint meanwhile). Tried and not kept (no
better): the ticket statements started beside the rating follow; the ratings followed every
50 export pages during the export. The recompute's parts measured alone on a
copy of a synced store: the statements 7.2 s, the writes 6.1 s, the follow 2.1-3.0 s (1.3 s
with nothing left to move); overlapped they take 10.2-11.8 s: SQLite connections in one
process gain little from a second thread. requests_ratio 1.001, no 429, peak RSS 403-419 MB.

(Before the worker process, the one-pass rating follow and the tuple writes — same machine,
same day — the 100k concurrent sync took 139.6, 140.2 and 140.0 s (ratio 1.151-1.157; 17.9 s
after the export's last page) and the first sync 174 s on 2026-11-26; before that day's work
— emulators answering without Nagle's 40 ms, bulk writes without SQLAlchemy's per-row work,
HubSpot bodies read as JSON, orjson, Zendesk's reads overlapped — it took 477-649 s, ratio
3.9-5.4.)

The extra requests are the Salesforce token and describe and HubSpot's archived-companies
check. Peak RSS grows with the number of *accounts* (~1.6 KB each: the identity indexes, the
organization links, the set of accounts to recompute), not with records held: records stream
in pages of at most 2,000 (the export is read at most 4 pages ahead). ``--ticket-rounds``
grows records alone: 10,000 accounts with ten rounds of tickets are 598,845 records (6.9x)
in 128.5 s (floor 121.5, ratio 1.057) at 239 MB peak RSS, against 204-208 MB for one round;
the difference was the recompute holding one chunk of 1,000 accounts' (ten times as many)
tickets — gone since the database computes the signals (above).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HUBSPOT_PER_10S, HUBSPOT_SEARCH_PER_S = 190, 5
ZENDESK_PER_MIN, ZENDESK_EXPORT_PER_MIN = 700, 10
SF_PAGE, HS_PAGE, ZD_EXPORT_PAGE, ZD_PAGE = 2000, 100, 1000, 100


# -- the emulators, in their own process ----------------------------------------------------
def serve(conn: Any, accounts: int, scale: float, now: datetime, ticket_rounds: int) -> None:
    from sandbox import HubSpotEmulator, SalesforceEmulator, ZendeskEmulator, generate_org

    org = generate_org(accounts, seed=17, now=now, related=False)
    with (
        SalesforceEmulator(page_size=SF_PAGE) as sf,
        HubSpotEmulator(
            requests_per_10s=HUBSPOT_PER_10S,
            rate_window=10.0 / scale,
            search_per_second=max(1, round(HUBSPOT_SEARCH_PER_S * scale)),
            daily_limit=10**9,
        ) as hs,
        ZendeskEmulator(
            limit_scale=scale,
            requests_per_minute=ZENDESK_PER_MIN,
            export_requests_per_minute=ZENDESK_EXPORT_PER_MIN,
        ) as zd,
    ):
        ids = sf.seed(org)
        hs.seed(org, account_ids=ids)
        zd.seed(org, now, account_ids=ids, ticket_rounds=ticket_rounds)
        for emu in (sf, hs, zd):
            emu.clear_log()
        hs.reset_usage()
        zd.set_rate_limits()  # buckets full again after seeding
        rated = sum(1 for r in zd.data.ratings.values())
        conn.send(
            {
                "known": [
                    (i, a["Name"], a.get("Website")) for i, a in zip(ids, org.accounts, strict=True)
                ],
                "sf": {
                    "instance_url": sf.base_url,
                    "token_url": sf.token_url,
                    "client_id": sf.client_id,
                    "client_secret": sf.client_secret,
                    "ca_bundle": sf.ca_bundle_path,
                },
                "hs": {"token": hs.access_token, "base_url": hs.base_url},
                "zd": {"email": zd.email, "token": zd.api_token, "base_url": zd.api_url},
                "counts": {
                    "accounts": len(ids),
                    "companies": len(ids),
                    "organizations": zd.organization_count,
                    "tickets": zd.ticket_count,
                    "ratings": rated,
                },
            }
        )
        while True:
            command = conn.recv()
            if command == "log":
                conn.send(
                    {
                        name: [(r.path, r.status, r.at) for r in emu.requests()]
                        for name, emu in (("salesforce", sf), ("hubspot", hs), ("zendesk", zd))
                    }
                )
            else:
                break


# -- floors ---------------------------------------------------------------------------------
def bucket_floor(requests: int, per_minute: int, scale: float) -> float:
    """Seconds a bucket of ``per_minute`` tokens refilled per (scaled) minute needs."""
    return max(0, requests - per_minute) * 60.0 / (per_minute * scale)


def window_floor(requests: int, limit: int, window: float) -> float:
    """Seconds ``requests`` need at ``limit`` per rolling ``window``."""
    return max(0, math.ceil(requests / limit) - 1) * window


@dataclass
class Result:
    name: str
    records: int
    seconds: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--limit-scale", type=float, default=20.0)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a temp SQLite)")
    parser.add_argument(
        "--first-sync",
        action="store_true",
        help="an empty store: Salesforce first, then HubSpot and Zendesk "
        "(default: the account identities are known, as after any "
        "earlier CRM sync, and the three syncs run at once)",
    )
    parser.add_argument(
        "--ticket-rounds",
        type=int,
        default=1,
        help="draw each account's Zendesk tickets this many times: more "
        "records for as many accounts (to show memory does not follow "
        "records)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scale = args.limit_scale
    now = datetime.now(UTC)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(
        target=serve, args=(child, args.accounts, scale, now, args.ticket_rounds), daemon=True
    )
    server.start()
    info = parent.recv()

    from connectors.hubspot import HubSpotClient
    from connectors.registry import Settings
    from connectors.salesforce import SalesforceClient
    from connectors.zendesk import ZendeskClient
    from healthscore.config import load_config
    from healthscore.core.quota import LocalQuota
    from healthscore.pipeline.cycle import Pipeline
    from store import Store

    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    sf, hs, zd = info["sf"], info["hs"], info["zd"]
    settings = Settings(
        database_url=url,
        redis_url="",
        salesforce_instance_url=sf["instance_url"],
        salesforce_token_url=sf["token_url"],
        salesforce_client_id=sf["client_id"],
        salesforce_client_secret=sf["client_secret"],
        salesforce_ca_bundle=Path(sf["ca_bundle"]),
        hubspot_access_token=hs["token"],
        hubspot_base_url=hs["base_url"],
        zendesk_email=zd["email"],
        zendesk_api_token=zd["token"],
        zendesk_base_url=zd["base_url"],
    )
    config = load_config()
    sources = config.sources
    config = config.model_copy(
        update={
            "sources": sources.model_copy(
                update={
                    "hubspot": sources.hubspot.model_copy(
                        update={
                            "enabled": True,
                            "requests_per_10s": HUBSPOT_PER_10S,
                            "write_back": sources.hubspot.write_back.model_copy(
                                update={"enabled": False}
                            ),
                        }
                    ),
                    "zendesk": sources.zendesk.model_copy(
                        update={
                            "enabled": True,
                            "requests_per_minute": ZENDESK_PER_MIN,
                            "export_requests_per_minute": ZENDESK_EXPORT_PER_MIN,
                        }
                    ),
                }
            )
        }
    )
    # HubSpot's limit is a rolling window: a bucket without burst never overdraws it
    hubspot = HubSpotClient(
        settings,
        quota=LocalQuota(HUBSPOT_PER_10S * scale / 10.0, 1),
        search_quota=LocalQuota(HUBSPOT_SEARCH_PER_S * scale, 1),
    )
    pipeline = Pipeline(
        config,
        settings,
        Store(url),
        salesforce=SalesforceClient(settings),
        hubspot=hubspot,
        zendesk=ZendeskClient(
            settings,
            limit_scale=scale,
            requests_per_minute=ZENDESK_PER_MIN,
            export_requests_per_minute=(ZENDESK_EXPORT_PER_MIN),
        ),
    )
    if not args.first_sync:  # what an earlier CRM sync left: account ids and domains
        from connectors.identity import DOMAIN, domain_of
        from store import AccountRow

        known = info.pop("known")
        pipeline.store.upsert_accounts(AccountRow(i, "salesforce", name) for i, name, _ in known)
        pipeline.store.set_account_keys(
            DOMAIN, {i: [d] if (d := domain_of(site)) else [] for i, _, site in known}
        )
        del known
    info.pop("known", None)
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(name: str, fn: Any) -> None:
        started = time.perf_counter()
        try:
            results[name] = (fn(), time.perf_counter() - started, time.time())
        except BaseException as exc:  # reported below
            errors.append(exc)

    def step(name: str) -> Any:
        return lambda: pipeline.sync(name)  # the registry's step, as beat's task runs it

    started = time.perf_counter()
    started_wall = time.time()  # the emulators log their requests' arrival in wall time
    together = [("hubspot", step("hubspot")), ("zendesk", step("zendesk"))]
    if args.first_sync:
        run("salesforce", step("salesforce"))
    else:
        together.insert(0, ("salesforce", step("salesforce")))
    threads = [threading.Thread(target=run, args=job) for job in together]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    parent.send("log")
    logs = parent.recv()
    parent.send("stop")
    server.join(30)

    counts = info["counts"]
    zd_report = results["zendesk"][0]
    zd_log = logs["zendesk"]
    export_times = [at for p, _, at in zd_log if "/incremental/" in p]
    exports = len(export_times)
    per_source = {
        "salesforce": {
            "records": results["salesforce"][0].records,
            "requests": len(logs["salesforce"]),
            "min_requests": math.ceil(counts["accounts"] / SF_PAGE),
            "floor_seconds": 0.0,
        },
        "hubspot": {
            "records": results["hubspot"][0].records,
            "requests": len(logs["hubspot"]),
            "min_requests": math.ceil(counts["companies"] / HS_PAGE),
            "floor_seconds": window_floor(len(logs["hubspot"]), HUBSPOT_PER_10S, 10.0 / scale),
        },
        "zendesk": {
            "records": zd_report.organizations + zd_report.tickets + zd_report.ratings,
            "requests": len(zd_log),
            "export_requests": exports,
            # when the export's last page was asked for, and how long the sync went on after
            "export_last_request_seconds": round(max(export_times) - started_wall, 2),
            "after_export_seconds": round(results["zendesk"][2] - max(export_times), 2),
            "min_requests": (
                math.ceil(counts["organizations"] / ZD_PAGE)
                + math.ceil(counts["tickets"] / ZD_EXPORT_PAGE)
                + math.ceil(zd_report.ratings / ZD_PAGE)
            ),
            "floor_seconds": max(
                bucket_floor(exports, ZENDESK_EXPORT_PER_MIN, scale),
                bucket_floor(len(zd_log), ZENDESK_PER_MIN, scale),
            ),
        },
    }
    for name, entry in per_source.items():
        entry["seconds"] = round(results[name][1], 2)
        entry["rate_limited"] = sum(1 for _, status, _ in logs[name] if status == 429)
        entry["floor_seconds"] = round(entry["floor_seconds"], 2)
    records = sum(e["records"] for e in per_source.values())
    requests = sum(e["requests"] for e in per_source.values())
    min_requests = sum(e["min_requests"] for e in per_source.values())
    floor = max(e["floor_seconds"] for e in per_source.values())
    print(
        json.dumps(
            {
                "records": records,
                "requests": requests,
                "min_requests": min_requests,
                "requests_ratio": round(requests / min_requests, 3),
                "seconds": round(seconds, 2),
                "floor_seconds": round(floor, 2),
                "seconds_ratio": round(seconds / floor, 3) if floor else None,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "limit_scale": scale,
                "accounts": args.accounts,
                "ticket_rounds": args.ticket_rounds,
                "order": "first-sync" if args.first_sync else "concurrent",
                "sources": per_source,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
