"""Related objects (Opportunity, Case, Task, Event) → per-account signals, end to end.

Everything goes through the real simple-salesforce client against the HTTPS emulator, seeded
with the synthetic org, whose related records agree with their Account (sandbox/synthetic.py):
the expected aggregates are read off the Account fields the generator derives them from.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from sqlalchemy import select

from connectors.registry import Settings
from connectors.salesforce import SalesforceClient
from connectors.salesforce.related import RELATED
from connectors.salesforce.sync import sync_accounts, sync_related
from healthscore.config import Config
from healthscore.core.errors import RateLimited
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, generate_org
from sandbox.synthetic import SyntheticOrg
from store import Store
from store.models import SignalHistory, SignalLatest
from tests.conftest import FAST_RETRY, fast_config

OBJECTS = ["Opportunity", "Case", "Task", "Event"]
RELATED_METRICS = {m for name in OBJECTS for m in RELATED[name].metrics}
Signals = dict[str, dict[str, float | None]]


def related_config(bulk_threshold: int = 1_000_000, objects: list[str] | None = None) -> Config:
    config = fast_config()
    source = config.sources.salesforce.model_copy(
        update={"related": objects or OBJECTS, "bulk_threshold": bulk_threshold}
    )
    return config.model_copy(
        update={"sources": config.sources.model_copy(update={"salesforce": source})}
    )


def seed(emu: SalesforceEmulator, n: int, seed: int) -> tuple[SyntheticOrg, list[str]]:
    """Seed the org relative to *today* (the pipeline's clock is the real one) and make the
    related records look last modified an hour ago: an org at rest, older than any overlap."""
    org = generate_org(n, seed=seed, now=datetime.now(UTC))
    ids = emu.seed(org)
    stamp = datetime.now(UTC) - timedelta(hours=1)
    for name in OBJECTS:
        for rid in emu.seeded[name]:
            emu.update(name, rid, {"SystemModstamp": stamp})
    return org, ids


def signals(store: Store, metrics: set[str] = RELATED_METRICS) -> Signals:
    out: Signals = defaultdict(dict)
    for account, metric, value, _ in store.latest_signals():
        if metric in metrics:
            out[account][metric] = value
    return dict(out)


def midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def soql_log(emu: SalesforceEmulator) -> list[str]:
    return [unquote_plus(r.query["q"]) for r in emu.requests("GET", r"/query(All)?/?$")]


def open_renewal(org: SyntheticOrg, index: int) -> dict[str, Any] | None:
    return next(
        (
            o
            for o in org.related(index)["opportunities"]
            if o["Type"] == "Renewal" and not o["IsClosed"]
        ),
        None,
    )


@pytest.fixture
def no_bulk_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """simple-salesforce sleeps ``wait`` (1 s) before the first poll of a Bulk 2.0 job; the
    emulator needs no time (``polls_to_complete = 0``), so the test does not either."""
    slept: list[float] = []
    monkeypatch.setattr("simple_salesforce.bulk2.sleep", slept.append)
    return slept


def synced(make_pipeline: Callable[..., Pipeline], config: Config) -> Pipeline:
    pipeline = make_pipeline(config)
    sync_accounts(pipeline.context)  # the accounts: latest_signals() only shows known accounts
    return pipeline


def test_related_metric_names_do_not_collide_with_account_metrics() -> None:
    config = related_config()
    account_metrics = set(config.sources.salesforce.metrics)
    assert not RELATED_METRICS & account_metrics
    assert config.metrics >= RELATED_METRICS | account_metrics
    per_object = [m for name in OBJECTS for m in RELATED[name].metrics]
    assert len(per_object) == len(set(per_object))


def test_full_sync_over_rest_matches_the_synthetic_org(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org, ids = seed(sf_emu, 60, seed=11)
    pipeline = synced(make_pipeline, related_config())
    reports = sync_related(pipeline.context)

    assert not any(r.bulk for r in reports.values())
    assert sf_emu.bulk.jobs_created == 0
    for name, attr in (
        ("Opportunity", "opportunities"),
        ("Case", "cases"),
        ("Task", "tasks"),
        ("Event", "events"),
    ):
        assert reports[name].records == len(getattr(org, attr)), name
        assert reports[name].skipped_ids == []
        assert pipeline.store.cursor("salesforce", name) is not None
    (soql,) = [
        q
        for q in soql_log(sf_emu)
        if q.startswith("SELECT Id, AccountId, SystemModstamp") and "Case" in q
    ]
    assert "WHERE" not in soql and soql.endswith("FROM Case ORDER BY SystemModstamp, Id")

    values = signals(pipeline.store)
    assert set(values) == set(ids)
    lost = renewal_checked = task_checked = 0
    for index, (account, aid) in enumerate(zip(org.accounts, ids, strict=True)):
        got = values[aid]
        assert set(got) == RELATED_METRICS, account["Name"]
        urgent, open_cases = account["Urgent_Open_Cases__c"], account["Open_Cases__c"]
        # Open_Cases__c, except where a stuck_onboarding account has more urgent than open
        assert got["cases_open"] == max(open_cases, urgent)
        if open_cases >= urgent:
            assert got["cases_open"] == open_cases
        assert got["cases_urgent_open"] == urgent
        assert got["exec_sponsor_meetings_90d"] == account["Exec_Sponsor_Meetings_90d__c"]
        related = org.related(index)
        if open_renewal(org, index) is not None:
            assert got["renewal_next_at"] == midnight(account["Renewal_Date__c"])
            assert got["renewal_lost_at"] is None
            renewal_checked += 1
        else:  # an about_to_churn account whose renewal was lost
            assert org.archetypes[account["Name"]] == "about_to_churn"
            (closed_lost,) = [
                o
                for o in related["opportunities"]
                if o["Type"] == "Renewal" and o["StageName"] == "Closed Lost"
            ]
            assert got["renewal_next_at"] is None
            assert got["renewal_lost_at"] == midnight(closed_lost["CloseDate"])
            lost += 1
        assert got["renewals_won"] == sum(
            1 for o in related["opportunities"] if o["Type"] == "Renewal" and o["IsWon"]
        )
        assert got["open_pipeline"] == sum(
            o["Amount"] for o in related["opportunities"] if not o["IsClosed"]
        )
        # the latest completed CSM task is on Last_CSM_Touch_Date__c, unless that day is
        # before Customer_Since__c (then the generator writes no completed task)
        touch = account["Last_CSM_Touch_Date__c"]
        if touch >= account["Customer_Since__c"]:
            assert got["last_task_at"] == midnight(touch), account["Name"]
            task_checked += 1
        else:
            assert got["last_task_at"] is None
    assert renewal_checked > 40 and task_checked > 40
    assert lost + renewal_checked == 60

    # the Account-level metrics live beside them, untouched by the related sync
    accounts = signals(pipeline.store, {"open_cases", "exec_meetings_90d"})
    assert accounts[ids[0]]["open_cases"] == org.accounts[0]["Open_Cases__c"]


def test_full_sync_above_the_threshold_uses_bulk_and_matches_rest(
    sf_emu: SalesforceEmulator,
    make_pipeline: Callable[..., Pipeline],
    settings: Settings,
    tmp_path: Path,
    no_bulk_sleep: list[float],
) -> None:
    org, ids = seed(sf_emu, 40, seed=12)
    # a deleted record comes through queryAll in both paths and must not count in either
    renewal = next(i for i in range(40) if open_renewal(org, i) is not None)
    opp_id = sf_emu.seeded["Opportunity"][org.opportunities.index(open_renewal(org, renewal))]
    sf_emu.delete("Opportunity", opp_id)
    sf_emu.bulk.polls_to_complete = 0

    rest = synced(make_pipeline, related_config())
    rest_reports = sync_related(rest.context)
    assert not any(r.bulk for r in rest_reports.values())
    assert sf_emu.bulk.jobs_created == 0

    bulk_store = Store(f"sqlite:///{tmp_path / 'bulk.db'}")
    try:
        bulk = Pipeline(
            related_config(bulk_threshold=10),
            settings,
            bulk_store,
            salesforce=SalesforceClient(settings, retry=FAST_RETRY),
        )
        sync_accounts(bulk.context)
        sf_emu.clear_log()
        bulk_reports = sync_related(bulk.context)
        assert all(r.bulk for r in bulk_reports.values())
        assert sf_emu.bulk.jobs_created == 4
        assert sorted(j.object for j in sf_emu.bulk.jobs) == sorted(OBJECTS)
        assert {j.operation for j in sf_emu.bulk.jobs} == {"queryAll"}
        assert len(sf_emu.requests("POST", r"/jobs/query/?$")) == 4
        # only the COUNT() queries went over REST
        assert all(q.startswith("SELECT COUNT() FROM") for q in soql_log(sf_emu))
        for name in OBJECTS:
            assert bulk_reports[name].records == rest_reports[name].records > 10
        bulk_values = signals(bulk_store)
    finally:
        bulk_store.close()

    rest_values = signals(rest.store)
    assert set(rest_values) == set(ids)
    assert bulk_values == rest_values
    assert rest_values[ids[renewal]]["renewal_next_at"] is None  # the deleted one is gone


def test_incremental_resync_reads_from_the_cursor_and_recomputes_only_touched_accounts(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org, ids = seed(sf_emu, 40, seed=13)
    pipeline = synced(make_pipeline, related_config())
    sync_related(pipeline.context)
    before = signals(pipeline.store)
    cursors = {
        n: datetime.fromisoformat(pipeline.store.cursor("salesforce", n) or "") for n in OBJECTS
    }
    case_ids, opp_ids = sf_emu.seeded["Case"], sf_emu.seeded["Opportunity"]

    # close an urgent open case of account A
    ci = next(
        i
        for i, c in enumerate(org.cases)
        if not c["IsClosed"] and c["Priority"] in ("Urgent", "High")
    )
    a = ids[org.cases[ci]["AccountIndex"]]
    sf_emu.update("Case", case_ids[ci], {"Status": "Closed"})
    # delete the open renewal of account B
    b_index = next(i for i in range(40) if ids[i] != a and open_renewal(org, i) is not None)
    b = ids[b_index]
    oi = org.opportunities.index(open_renewal(org, b_index))
    sf_emu.delete("Opportunity", opp_ids[oi])
    # move an open case from account C to account D
    mi = next(
        i
        for i, c in enumerate(org.cases)
        if not c["IsClosed"] and ids[c["AccountIndex"]] not in (a, b)
    )
    c = ids[org.cases[mi]["AccountIndex"]]
    d = next(x for x in ids if x not in (a, b, c))
    sf_emu.update("Case", case_ids[mi], {"AccountId": d})

    sf_emu.clear_log()
    reports = sync_related(pipeline.context)
    overlap = pipeline.config.sources.salesforce.overlap
    queries = soql_log(sf_emu)
    assert len(queries) == 4 and not any("COUNT()" in q for q in queries)
    for name in OBJECTS:
        since = (cursors[name] - overlap).strftime("%Y-%m-%dT%H:%M:%SZ")
        (soql,) = [q for q in queries if f" FROM {name} " in q]
        assert f"WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id" in soql
        new_cursor = datetime.fromisoformat(pipeline.store.cursor("salesforce", name) or "")
        assert new_cursor > cursors[name]
    assert [reports[n].records for n in OBJECTS] == [1, 2, 0, 0]

    after = signals(pipeline.store)
    assert after[a]["cases_open"] == before[a]["cases_open"] - 1
    assert after[a]["cases_urgent_open"] == before[a]["cases_urgent_open"] - 1
    assert after[b]["renewal_next_at"] is None and before[b]["renewal_next_at"] is not None
    assert after[b]["open_pipeline"] == before[b]["open_pipeline"] - org.opportunities[oi]["Amount"]
    assert after[c]["cases_open"] == before[c]["cases_open"] - 1
    assert after[d]["cases_open"] == before[d]["cases_open"] + 1
    changed = {
        (acct, m) for acct in after for m in after[acct] if after[acct][m] != before[acct][m]
    }
    assert {acct for acct, _ in changed} == {a, b, c, d}


def test_an_account_without_records_gets_zero_counts_not_missing_values(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    seed(sf_emu, 20, seed=21)
    pipeline = synced(make_pipeline, related_config())
    sync_related(pipeline.context)
    (new,) = sf_emu.insert("Account", [{"Name": "Brand New Ltd"}])
    sync_accounts(pipeline.context)
    reports = sync_related(pipeline.context)  # no related record changed
    assert all(r.records == 0 for r in reports.values())
    got = signals(pipeline.store)[new]
    assert set(got) == RELATED_METRICS
    assert got["cases_open"] == got["cases_urgent_open"] == got["renewals_won"] == 0
    assert got["exec_sponsor_meetings_90d"] == got["open_pipeline"] == 0
    assert got["renewal_next_at"] is got["last_task_at"] is got["last_event_at"] is None


def test_a_second_sync_on_unchanged_data_is_one_request_per_object(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    seed(sf_emu, 30, seed=14)
    pipeline = synced(make_pipeline, related_config())
    sync_related(pipeline.context)
    with pipeline.store.session() as s:
        history = len(s.scalars(select(SignalHistory.id)).all())
    before = signals(pipeline.store)
    sf_emu.clear_log()

    reports = sync_related(pipeline.context)
    api = sf_emu.requests(path=r"^/services/")
    assert len(api) <= len(OBJECTS)
    for name in OBJECTS:
        assert sum(1 for q in soql_log(sf_emu) if f" FROM {name} " in q) <= 1
        assert reports[name].records == 0 and not reports[name].bulk
    assert signals(pipeline.store) == before
    with pipeline.store.session() as s:
        assert len(s.scalars(select(SignalHistory.id)).all()) == history


def test_server_errors_on_the_query_are_retried(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    org, ids = seed(sf_emu, 20, seed=15)
    pipeline = synced(make_pipeline, related_config())
    sf_emu.clear_log()
    sf_emu.faults.add("server_error", method="GET", path=r"/queryAll", times=3)
    reports = sync_related(pipeline.context)
    assert [reports[n].records for n in OBJECTS] == [
        len(org.opportunities),
        len(org.cases),
        len(org.tasks),
        len(org.events),
    ]
    statuses = [r.status for r in sf_emu.requests("GET", r"/queryAll")]
    assert statuses[:4] == [503, 503, 503, 200] and set(statuses[4:]) == {200}
    values = signals(pipeline.store)
    for account, aid in zip(org.accounts, ids, strict=True):
        assert values[aid]["cases_urgent_open"] == account["Urgent_Open_Cases__c"]
        assert values[aid]["exec_sponsor_meetings_90d"] == account["Exec_Sponsor_Meetings_90d__c"]


def test_the_daily_request_limit_stops_the_sync_and_the_next_one_resumes(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline]
) -> None:
    """403 REQUEST_LIMIT_EXCEEDED "TotalRequests" (the only 403 the emulator answers) is not
    slept on in-process (its wait is far above max_wait): it goes up as RateLimited for the task
    to retry later; the objects already done keep their cursor, the next sync completes."""
    seed(sf_emu, 20, seed=16)
    pipeline = synced(make_pipeline, related_config())
    pages: list[int] = []

    def progress(n: int) -> None:  # after Opportunity's only page: the next query is refused
        if not pages:
            sf_emu.faults.add("rate_limit", method="GET", path=r"/queryAll", times=1)
        pages.append(n)

    with pytest.raises(RateLimited, match="daily API allocation") as err:
        sync_related(pipeline.context, progress=progress)
    assert err.value.retry_after is not None and err.value.retry_after > FAST_RETRY.max_wait
    assert [r.status for r in sf_emu.requests("GET", r"/queryAll")][-1] == 403
    assert pipeline.store.cursor("salesforce", "Opportunity") is not None
    assert pipeline.store.cursor("salesforce", "Case") is None

    sf_emu.clear_log()
    reports = sync_related(pipeline.context)
    queries = soql_log(sf_emu)
    opportunity = [q for q in queries if "FROM Opportunity" in q]
    assert len(opportunity) == 1 and "WHERE SystemModstamp >=" in opportunity[0]
    assert "SELECT COUNT() FROM Case" in queries  # Case starts over with a full read
    assert reports["Case"].records == len(sf_emu.records("Case"))
    assert all(set(v) == RELATED_METRICS for v in signals(pipeline.store).values())


def test_an_expired_session_during_a_bulk_job_logs_in_again_and_restarts_the_job(
    sf_emu: SalesforceEmulator,
    make_pipeline: Callable[..., Pipeline],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(sf_emu, 20, seed=17)
    sf_emu.bulk.polls_to_complete = 0
    pipeline = synced(make_pipeline, related_config(bulk_threshold=10, objects=["Case"]))
    expired: list[float] = []

    def sleep_and_expire(seconds: float) -> None:  # between job creation and its first poll
        if not expired:
            sf_emu.expire_tokens()
        expired.append(seconds)

    monkeypatch.setattr("simple_salesforce.bulk2.sleep", sleep_and_expire)
    sf_emu.clear_log()
    report = sync_related(pipeline.context)["Case"]
    assert report.bulk and report.records == len(sf_emu.records("Case"))
    assert sf_emu.bulk.jobs_created == 2  # the first job's poll was refused: a new job
    assert next(r.status for r in sf_emu.requests("GET", r"/jobs/query/\w+$")) == 401
    assert len(sf_emu.requests("POST", r"/services/oauth2/token")) == 1
    assert set(signals(pipeline.store)) == {a["Id"] for a in sf_emu.records("Account")}


def test_an_expired_session_on_the_bulk_results_restarts_the_job(
    sf_emu: SalesforceEmulator, make_pipeline: Callable[..., Pipeline], no_bulk_sleep: list[float]
) -> None:
    org, ids = seed(sf_emu, 20, seed=18)
    sf_emu.bulk.polls_to_complete = 0
    pipeline = synced(make_pipeline, related_config(bulk_threshold=10, objects=["Case"]))
    sf_emu.clear_log()
    sf_emu.faults.add("expired_session", method="GET", path=r"/jobs/query/\w+/results", times=1)
    report = sync_related(pipeline.context)["Case"]
    assert report.bulk and report.records == len(org.cases)
    assert sf_emu.bulk.jobs_created == 2
    assert len(sf_emu.requests("POST", r"/services/oauth2/token")) == 1
    values = signals(pipeline.store)
    for account, aid in zip(org.accounts, ids, strict=True):
        assert values[aid]["cases_urgent_open"] == account["Urgent_Open_Cases__c"]


def _bogus_signal_accounts(store: Store) -> set[str]:
    known = {a.id for a in store.accounts(include_deleted=True)}
    with store.session() as s:
        held = set(s.scalars(select(SignalLatest.account_id)))
        held |= set(s.scalars(select(SignalHistory.account_id)))
    return held - known


@pytest.mark.parametrize("bulk_threshold", [1_000_000, 10], ids=["rest", "bulk"])
def test_records_not_on_an_account_are_kept_out_of_the_signals(
    sf_emu: SalesforceEmulator,
    make_pipeline: Callable[..., Pipeline],
    no_bulk_sleep: list[float],
    bulk_threshold: int,
) -> None:
    org, ids = seed(sf_emu, 20, seed=19)
    sf_emu.bulk.polls_to_complete = 0
    opp_id, case_id = sf_emu.seeded["Opportunity"][0], sf_emu.seeded["Case"][0]
    today = datetime.now(UTC).date()
    # a Case with no account, a Task on an Opportunity and an Event on a Case, all "recent"
    sf_emu.insert("Case", [{"Subject": "orphan", "Status": "New", "Priority": "Urgent"}])
    sf_emu.insert(
        "Task",
        [{"Subject": "deal call", "Status": "Completed", "WhatId": opp_id, "ActivityDate": today}],
    )
    sf_emu.insert(
        "Event",
        [
            {
                "Subject": "case review",
                "Type": "Executive Sponsor Meeting",
                "WhatId": case_id,
                "StartDateTime": datetime.now(UTC) - timedelta(hours=2),
            }
        ],
    )
    pipeline = synced(make_pipeline, related_config(bulk_threshold=bulk_threshold))
    reports = sync_related(pipeline.context)
    assert all(r.bulk == (bulk_threshold == 10) for r in reports.values())
    assert reports["Case"].records == len(org.cases) + 1
    assert _bogus_signal_accounts(pipeline.store) == set()
    values = signals(pipeline.store)
    assert set(values) == set(ids)
    for account, aid in zip(org.accounts, ids, strict=True):
        assert values[aid]["cases_urgent_open"] == account["Urgent_Open_Cases__c"]
        assert values[aid]["exec_sponsor_meetings_90d"] == account["Exec_Sponsor_Meetings_90d__c"]
        assert values[aid]["last_task_at"] != midnight(today)

    # the orphan case later attached to an account counts for it on the next sync
    (orphan,) = [c["Id"] for c in sf_emu.records("Case") if c["Subject"] == "orphan"]
    sf_emu.update("Case", orphan, {"AccountId": ids[3]})
    sync_related(pipeline.context)
    after = signals(pipeline.store)
    assert after[ids[3]]["cases_urgent_open"] == org.accounts[3]["Urgent_Open_Cases__c"] + 1


def test_a_record_without_systemmodstamp_is_skipped_and_logged(
    sf_emu: SalesforceEmulator,
    make_pipeline: Callable[..., Pipeline],
    caplog: pytest.LogCaptureFixture,
) -> None:
    org, ids = seed(sf_emu, 20, seed=20)
    ci = next(i for i, c in enumerate(org.cases) if not c["IsClosed"])
    case_id = sf_emu.seeded["Case"][ci]
    sf_emu.update("Case", case_id, {"SystemModstamp": None})
    assert sf_emu.record("Case", case_id)["SystemModstamp"] is None
    pipeline = synced(make_pipeline, related_config())
    with caplog.at_level(logging.WARNING):
        reports = sync_related(pipeline.context)
    assert reports["Case"].skipped_ids == [case_id]
    assert f"skipped Salesforce Case {case_id}: no Id or SystemModstamp" in caplog.text
    account = org.cases[ci]["AccountIndex"]
    expected = max(
        org.accounts[account]["Open_Cases__c"], org.accounts[account]["Urgent_Open_Cases__c"]
    )
    values = signals(pipeline.store)
    assert values[ids[account]]["cases_open"] == expected - 1
    assert set(values) == set(ids)


def test_a_metric_two_sources_would_both_write_is_a_config_error(tmp_path: Path) -> None:
    from healthscore.config import load_config
    from healthscore.core.errors import ConfigError

    text = (
        (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml")
        .read_text()
        .replace("    related: []", "    related: [Case]")
        .replace("      open_cases: Open_Cases__c", "      cases_open: Open_Cases__c")
    )
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    with pytest.raises(
        ConfigError,
        match=r"metric 'cases_open' comes from both "
        r"sources.salesforce.metrics and "
        r"sources.salesforce.related \(Case\)",
    ):
        load_config(path)
