"""The support signals a sync stores equal the Python reference on the same kept records.

``connectors.zendesk.signals.aggregate`` is the reference: one account's tickets and ratings
in, its five signals out. The sync computes the signals of many accounts at once in the
database (connectors/zendesk/signals_sql.py); these tests hold it to the reference on emulator
data and on hand-built edge cases (window boundaries to the second, tag case, ties, deleted
and legacy records), on SQLite and on the real PostgreSQL.

The reference is fed each account's tickets in ticket-id order: tickets created at the same
second are taken in id order by the database too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import connectors.zendesk.sync as zendesk_sync
from connectors.registry import Settings
from connectors.salesforce import SalesforceClient
from connectors.salesforce.sync import sync_accounts
from connectors.zendesk import METRICS, ZendeskClient, aggregate, signals_sql, ticket_record
from connectors.zendesk.config import ZendeskSource
from connectors.zendesk.sync import ORG_KEY, ZendeskSync
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, ZendeskEmulator, generate_org
from store import AccountRow, Store
from store.models import SourceRecord
from tests.conftest import FAST_RETRY
from tests.zendesk_helpers import zendesk_config, zendesk_settings

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXAMPLE = resources.files("healthscore").joinpath("healthscore.example.yaml")
SECOND = timedelta(seconds=1)
Signals = dict[tuple[str, str], float | None]


def days(n: float) -> datetime:
    return T - timedelta(days=n)


def kept(store: Store, obj: str) -> dict[str, list[dict[str, Any]]]:
    """Each account's live kept records of ``obj``, in record-id order."""
    table = SourceRecord.__table__
    out: dict[str, list[dict[str, Any]]] = {}
    with store.session() as s:
        for acct, fields in s.execute(
            select(table.c.account_id, table.c.fields)
            .where(
                table.c.source == "zendesk",
                table.c.object == obj,
                table.c.deleted.is_(False),
                table.c.account_id.is_not(None),
            )
            .order_by(table.c.id)
        ):
            out.setdefault(acct, []).append(fields)
    return out


def reference(store: Store, now: datetime, tag_prefix: str = "topic_") -> Signals:
    """The reference's values for every live account, from the records kept in ``store``."""
    tickets, ratings = kept(store, "tickets"), kept(store, "satisfaction_ratings")
    return {
        (acct, metric): value
        for acct in store.account_ids()
        for metric, value in aggregate(
            tickets.get(acct, []), ratings.get(acct, []), now, tag_prefix
        ).items()
    }


def stored(store: Store) -> Signals:
    return {(a, m): v for a, m, v, _ in store.latest_signals() if m.startswith("zendesk_")}


def recompute(store: Store, accounts: list[str], now: datetime, tag_prefix: str) -> None:
    """The sync's recompute alone (no pull), as a sync of ``now`` runs it."""
    source = ZendeskSource(enabled=True, topic_tag_prefix=tag_prefix)
    ZendeskSync(None, store, source, lambda: now).recompute(accounts)  # type: ignore[arg-type]


def assert_every_metric_exercised(values: Signals) -> None:
    """The data reaches each signal: some account has a non-zero count of every kind, some
    a CSAT and some none."""
    for metric in METRICS[:4]:
        assert any(v for (_, m), v in values.items() if m == metric), metric
    csat = [v for (_, m), v in values.items() if m == "zendesk_csat_90d"]
    assert None in csat and any(v is not None and 0 < v < 1 for v in csat)


@dataclass
class Desk:
    """A Salesforce org and a Zendesk desk (emulators) and a pipeline on ``db_url``."""

    sf: SalesforceEmulator
    zd: ZendeskEmulator
    settings: Settings
    store: Store

    def pipeline(self, **source: Any) -> Pipeline:
        return Pipeline(
            zendesk_config(**source),
            self.settings,
            self.store,
            salesforce=SalesforceClient(self.settings, retry=FAST_RETRY),
            zendesk=ZendeskClient(self.settings, retry=FAST_RETRY, limit_scale=self.zd.limit_scale),
            clock=lambda: T,
        )


@pytest.fixture
def desk(sf_emu: SalesforceEmulator, db_url: str) -> Iterator[Desk]:
    with ZendeskEmulator(limit_scale=600) as emu:
        store = Store(db_url)
        yield Desk(sf_emu, emu, zendesk_settings(sf_emu, emu, db_url), store)
        store.close()


def seed_desk(desk: Desk, accounts: int = 40) -> tuple[list[str], str]:
    """The synthetic desk of ``accounts`` accounts at T, and one more account whose tickets
    sit on every boundary the signals have (returned second)."""
    emu = desk.zd
    emu.set_time(T)
    org = generate_org(accounts + 1, seed=23, now=T)
    ids = desk.sf.seed(org)
    # the last account has none of the synthetic tickets: only the hand-made ones below
    emu.seed(replace(org, accounts=org.accounts[:-1]), T, account_ids=ids[:-1])
    edge = ids[-1]
    org_id = emu.add_organization("Edge cases", external_id=edge)

    def ticket(at: datetime, subject: str, *, created: datetime | None = None, **kw: Any) -> int:
        emu.set_time(at)
        return emu.add_ticket(org_id, subject, created=created or at, **kw)

    def change(at: datetime, ticket_id: int, **kw: Any) -> None:
        emu.set_time(at)
        emu.update_ticket(ticket_id, **kw)

    # repeated topics: exactly 90 days apart repeats, 90 days and a second does not
    ticket(days(100), "Export fails")
    ticket(days(10), "RE: Export fails (#2)!")
    ticket(days(150), "Login broken")
    ticket(days(60) + SECOND, "Login broken!")
    # a tag topic in three cases and twice on one ticket; the middle one is older than 90
    # days (not counted) but is what the last one repeats
    ticket(days(95), "Dashboard slow", tags=["Topic_Perf"])
    ticket(days(91), "Charts lag", tags=["topic_perf", "vip"])
    ticket(days(5), "Graphs", tags=["TOPIC_PERF", "topic_perf"], priority="urgent", status="hold")
    # two tickets at the same second on one topic: one repeats the other
    ticket(days(3), "Billing question", status="solved", priority="urgent")
    ticket(days(3), "Billing question", status="solved")
    # a shared tag without the prefix is no topic; subjects without letters have none
    ticket(days(20), "Alpha thing", tags=["vip"])
    ticket(days(15), "Beta thing", tags=["vip"])
    ticket(days(2), "#123", priority="urgent", status="new")
    ticket(days(1), "#456")
    # the 30-day window to the second, and a ticket created after now
    ticket(days(30), "Month edge in")
    ticket(days(30) - SECOND, "Month edge out")
    ticket(days(1), "From the future", created=T + timedelta(hours=1))
    # urgent in every open status, and not open
    for status in ("new", "open", "pending", "hold", "solved", "closed"):
        ticket(days(50), f"Urgent {status} case", status=status, priority="urgent")
    ticket(days(50), "High open case", status="open", priority="high")
    # reopened: last changed exactly 90 days ago counts, a second earlier does not
    inside = ticket(days(120), "Reopen inside")
    change(days(90), inside, reopens=1)
    outside = ticket(days(120), "Reopen outside")
    change(days(90) - SECOND, outside, reopens=2)
    # deleted: counts for nothing (it would repeat "Export fails")
    gone = ticket(days(8), "Export fails", status="open", priority="urgent")
    change(days(7), gone, status="deleted")
    # CSAT: exactly 90 days ago is in; ratings of a good and a bad ticket
    rated = ticket(days(92), "Rated long ago", status="solved")
    emu.set_time(days(90))
    emu.rate_ticket(rated, "good")
    for n, (subject, score) in enumerate((("Alpha", "good"), ("Bravo", "bad"), ("Echo", "bad"))):
        rated = ticket(days(6 + n), f"Rated {subject}", status="solved")
        emu.set_time(days(4 + n))
        emu.rate_ticket(rated, score)
    emu.set_time(T)
    return ids, edge


def test_stored_signals_equal_the_reference_on_emulator_data(desk, monkeypatch) -> None:
    """A sync (its recompute in chunks of 7 accounts) stores what the reference computes —
    all of it in SQL: every ticket read carries its topic, so no count is finished in Python."""
    monkeypatch.setattr(zendesk_sync, "RECOMPUTE_CHUNK", 7)
    monkeypatch.setattr(signals_sql, "repeated_topics", None)  # called, it would raise
    ids, edge = seed_desk(desk)
    pipeline = desk.pipeline()
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    assert report.accounts_recomputed == len(ids) and report.skipped == 0
    expected = reference(desk.store, T)
    assert len(expected) == 5 * len(ids)
    assert stored(desk.store) == expected
    assert_every_metric_exercised(expected)
    # the edge cases land where the reference puts them
    assert {m: expected[(edge, m)] for m in METRICS} == {
        # Export fails again, Graphs, 2 Billing, Alpha, Beta, #123, #456, Month edge in,
        # 3 Rated (Rated long ago is 92 days old)
        "zendesk_tickets_30d": 12.0,
        # Graphs (hold), #123 (new), Urgent new/open/pending/hold
        "zendesk_urgent_open": 6.0,
        "zendesk_reopened_90d": 1.0,  # Reopen inside
        "zendesk_repeated_topic_90d": 3.0,  # RE: Export fails, Graphs, one Billing question
        "zendesk_csat_90d": pytest.approx(2 / 4),  # 90 days ago good; good, bad, bad
    }


def test_tag_prefixes_and_a_later_moment_equal_the_reference(desk) -> None:
    """The recompute on the same kept records with other tag prefixes (none, another case)
    and at a later moment (tickets leave the windows) still equals the reference."""
    ids, _ = seed_desk(desk, accounts=12)
    pipeline = desk.pipeline()
    sync_accounts(pipeline.context)
    pipeline.sync("zendesk")
    for prefix, now in (("", T), ("TOPIC_", T), ("topic_p", T), ("topic_", T + timedelta(days=7))):
        recompute(desk.store, ids, now, prefix)
        assert stored(desk.store) == reference(desk.store, now, prefix), (prefix, now)


def test_hand_kept_records_and_legacy_tickets_equal_the_reference(store) -> None:
    """Records as a sync keeps them, written to the store directly: ratings at the 90-day
    edge and after now, tickets without a topic (kept before topics were), without dates
    or tags, moved to no account, and an account with none."""
    store.upsert_accounts(AccountRow(a, "salesforce", a) for a in ("A", "B", "C"))

    def raw(rid: int, created: datetime, subject: str, **kw: Any) -> dict[str, Any]:
        stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "id": rid,
            "subject": subject,
            "created_at": stamp,
            "updated_at": kw.pop("updated", stamp),
            "status": "open",
            **kw,
        }

    tickets = [
        raw(1, days(40), "Sync stalls", tags=["topic_sync"]),
        raw(2, days(35), "Sync stalls again", tags=["topic_sync", "Topic_Sync"]),
        raw(3, days(20), "sync stalls"),
        raw(4, days(12), "SYNC STALLS!!", priority="urgent"),
        raw(5, days(1), "Upload", metric_set={"reopens": 3}),
        raw(6, days(200), "Ancient", metric_set={"reopens": 1}, updated=days(2).isoformat()),
        raw(7, days(3), "Sync stalls", status="closed"),
    ]
    rows = []
    for n, t in enumerate(tickets):
        rid, _org, fields, deleted, modified = ticket_record(t)
        if n % 2:  # kept before the topic was: the recompute derives it from the subject
            del fields["topic"]
        rows.append((rid, "A", fields, deleted, modified))
    rows.append(("8", "B", {"org": "9"}, False, T))  # nothing but an organization
    rows.append(("9", None, ticket_record(raw(9, days(2), "Sync stalls"))[2], False, T))
    store.upsert_source_records("zendesk", "tickets", rows)

    def rating(rid: str, ticket: str, score: str, at: datetime) -> tuple[Any, ...]:
        fields = {"score": score, "ticket_id": ticket, "created_at": at.isoformat()}
        return (rid, "A", fields, False, at)

    store.upsert_source_records(
        "zendesk",
        "satisfaction_ratings",
        [
            rating("r1", "1", "good", days(90)),
            rating("r2", "2", "bad", days(90) - timedelta(microseconds=1)),
            rating("r3", "3", "bad", days(1)),
            rating("r4", "4", "good", T + SECOND),
            rating("r5", "5", "offered", days(1)),
            rating("r6", "6", "good", days(0.5)),
        ],
    )
    for now in (T, T + timedelta(microseconds=500), T + timedelta(days=30)):
        recompute(store, ["A", "B", "C"], now, "topic_")
        expected = reference(store, now)
        assert stored(store) == expected, now
    recompute(store, ["A", "B", "C"], T, "topic_")
    got = stored(store)
    assert got[("A", "zendesk_repeated_topic_90d")] == 4.0  # 2, 3, 4, 7 repeat "sync stalls"
    assert got[("A", "zendesk_reopened_90d")] == 2.0  # 5, and 6 (changed two days ago)
    assert got[("A", "zendesk_csat_90d")] == pytest.approx(2 / 3)  # r1, r6 good; r3 bad
    assert {got[("B", m)] for m in METRICS[:4]} == {got[("C", m)] for m in METRICS[:4]} == {0.0}
    assert got[("B", "zendesk_csat_90d")] is None


def test_an_in_memory_store_is_recomputed_in_chunks_in_its_own_thread(monkeypatch) -> None:
    """An in-memory SQLite database is one per connection's thread: its chunks are computed in
    the sync's thread, and give what the reference gives."""
    monkeypatch.setattr(zendesk_sync, "RECOMPUTE_CHUNK", 1)
    store = Store("sqlite://")
    store.upsert_accounts(AccountRow(a, "salesforce", a) for a in ("A", "B", "C"))
    tickets = [
        ticket_record({"id": n, "subject": "Export fails", "created_at": at, "updated_at": at})
        for n, at in enumerate(("2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z"), start=1)
    ]
    rows = [(rid, "A", fields, deleted, modified) for rid, _, fields, deleted, modified in tickets]
    store.upsert_source_records("zendesk", "tickets", rows)
    recompute(store, ["A", "B", "C"], T, "topic_")
    assert stored(store) == reference(store, T)
    assert stored(store)[("A", "zendesk_repeated_topic_90d")] == 1.0
    store.close()


def test_a_yaml_still_setting_recompute_processes_names_the_file_line_and_key(
    tmp_path: Path,
) -> None:
    """The worker processes are gone, and their setting with them: a YAML that still sets it
    is refused at load, with where."""
    lines = EXAMPLE.read_text("utf-8").splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("    topic_tag_prefix:")) + 1
    lines.insert(at, "    recompute_processes: 1")
    path = tmp_path / "healthscore.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{at + 1} sources.zendesk.recompute_processes: unknown field" in str(err.value)


def test_a_celery_prefork_worker_runs_the_sync(sf_emu, tmp_path, redis_url) -> None:
    """A sync task on a Celery prefork worker (daemonic processes, which may not start
    children of their own) computes the same signals as the reference: the recompute runs
    in the database, no process is started for it."""
    with ZendeskEmulator(limit_scale=600) as emu:
        db_url = f"sqlite:///{tmp_path / 'prefork.db'}"
        desk = Desk(sf_emu, emu, zendesk_settings(sf_emu, emu, db_url), Store(db_url))
        ids, _ = seed_desk(desk, accounts=10)
        sync_accounts(desk.pipeline().context)
        queue = f"prefork-{uuid.uuid4().hex[:8]}"
        root = Path(__file__).resolve().parent.parent
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "tests.prefork_app", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--queues", queue),
                *("--loglevel", "warning"),
            ],
            cwd=root,
            env={**os.environ, "PREFORK_BROKER_URL": redis_url},
        )
        try:
            from celery import Celery

            app = Celery(broker=redis_url, backend=redis_url)
            reply = app.send_task(
                "tests.prefork_app.zendesk_sync",
                args=[db_url, emu.api_url, emu.email, emu.api_token, T.isoformat()],
                queue=queue,
            ).get(timeout=120)
        finally:
            worker.terminate()
            worker.wait(30)
        assert reply["task_pid"] != os.getpid() and reply["children"] == []
        assert reply["accounts_recomputed"] == len(ids)
        assert {a for _, _, a in desk.store.account_keys(ORG_KEY)} == set(ids)
        expected = reference(desk.store, T)
        assert stored(desk.store) == expected
        assert_every_metric_exercised(expected)
        desk.store.close()
