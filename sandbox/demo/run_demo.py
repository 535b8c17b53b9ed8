"""``healthscore demo``: the whole product on a laptop, against the sandbox emulators.

Starts the Salesforce (HTTPS), HubSpot and Slack emulators, seeds one synthetic org into both
CRMs (Salesforce is the CRM of record; HubSpot holds the same companies, half of them carrying
the Salesforce Account id and half matched by domain, plus a few prospects no account owns),
and runs the real cycle — simple-salesforce, hubspot-api-client and slack-sdk over the wire —
several times on unchanged data, so later cycles show that nothing is written or posted twice.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connectors.hubspot import HubSpotClient, ensure_properties
from connectors.hubspot.csm_tasks import ensure_task_key_property
from connectors.registry import Settings
from healthscore.config import Config
from healthscore.core.quota import LocalQuota
from healthscore.pipeline.cycle import ActReport, CycleReport, Pipeline
from healthscore.pipeline.runtime import setup_logging
from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator, generate_org
from sandbox.chaos.demo_kill import deliver_with_kills
from sandbox.demo.demo_actions import action_counts, exactly_once, start_storm
from sandbox.demo.demo_delivery import DELIVERY_VENDORS, delivery_counts, tasks_once
from sandbox.demo.demo_governance import hubspot_stops, print_governance, seed_crm_overrides
from sandbox.demo.demo_keep import fresh_keep_dir, keep_paths, write_config
from sandbox.demo.demo_usage import enable_usage, write_usage_drop
from sandbox.demo.serve_demo import SEED_AGE, demo_sandbox, demo_story_config
from store import Store

CYCLE_EVERY = timedelta(minutes=15)


class _SettableClock:
    """The Salesforce emulator's clock: a fixed moment while seeding, then real time."""

    def __init__(self, moment: datetime | None) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        now = self.moment or datetime.now(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)


# HubSpot as the CRM of record: the example scorecard's metrics from company properties
HUBSPOT_RECORD_METRICS = {
    "licensed_seats": "licensed_seats",
    "active_users_30d": "active_users_30d",
    "logins_30d": "logins_30d",
    "logins_prev_30d": "logins_prev_30d",
    "feature_adoption_pct": "feature_adoption",
    "last_login_at": "last_login_date",
    "onboarding_complete": "onboarding_complete",
    "open_cases": "open_cases",
    "urgent_open_cases": "urgent_open_cases",
    "nps": "nps_score",
    "last_csm_touch_at": "last_csm_touch_date",
    "exec_meetings_90d": "exec_sponsor_meetings_90d",
    "customer_since": "customer_since",
}
HUBSPOT_RECORD_ATTRIBUTES = {"plan_tier": "plan_tier", "arr": "arr", "renewal_date": "renewal_date"}


def hubspot_record_config(config: Config, portal_id: int) -> Config:
    """The example scorecard on HubSpot as the CRM of record (Salesforce off)."""
    hubspot = config.sources.hubspot.model_copy(
        update={
            "enabled": True,
            "record_system": True,
            "metrics": HUBSPOT_RECORD_METRICS,
            "attributes": HUBSPOT_RECORD_ATTRIBUTES,
            "portal_id": portal_id,
        }
    )
    salesforce = config.sources.salesforce.model_copy(update={"enabled": False})
    return config.model_copy(
        update={
            "sources": config.sources.model_copy(
                update={"salesforce": salesforce, "hubspot": hubspot}
            )
        }
    )


console = Console(stderr=False)


def run_demo(
    *,
    accounts: int,
    cycles: int,
    seed: int,
    crm: str = "salesforce",
    workdir: Path | None = None,
    backtest: bool = True,
    keep: Path | None = None,
    chaos: bool = False,
) -> dict[str, Any]:
    """``crm="salesforce"``: Salesforce is the CRM of record and HubSpot a second CRM;
    ``crm="hubspot"``: HubSpot's companies are the accounts. ``chaos``: cycle 1 delivers
    through a Slack 429 storm, in worker processes SIGKILLed inside a request to each channel's
    vendor."""
    setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    # Virtual time: the org was last edited an hour before the first cycle; cycles run
    # CYCLE_EVERY apart (like beat would) within one UTC day that has passed. Both emulators
    # and the pipeline read this one clock, so cursors and overlap windows behave as in
    # production.
    start = (
        datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=1)
        + timedelta(hours=2)
    )
    org = generate_org(accounts, seed=seed, now=start)
    seeded_at = start - SEED_AGE
    sf_clock = _SettableClock(seeded_at)
    with (
        tempfile.TemporaryDirectory(prefix="healthscore-demo-") as tmp,
        demo_sandbox(org, seeded_at=seeded_at, email_at=start, clock=sf_clock) as box,
    ):
        sf_emu, hs_emu, slack_emu, email = box.salesforce, box.hubspot, box.slack, box.email
        sf_ids = box.sf_ids
        if keep is not None:
            fresh_keep_dir(keep)  # a previous demo's store: replaced, not continued
        base = workdir or keep or Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{base / 'healthscore-demo.db'}", **box.settings()
        )
        config = demo_story_config(email)
        if crm == "salesforce":  # usage per licensed seat: seats come from the Account
            usage_csv, _ = write_usage_drop(
                org,
                sf_ids,
                (base / "usage-drop").resolve(),
                seed=seed,
                last_day=start.date() - timedelta(days=1),
            )
            config = enable_usage(config, usage_csv)
        if crm == "hubspot":
            config = hubspot_record_config(config, hs_emu.portal_id)
        if keep is not None:
            write_config(config, keep_paths(keep)[1])
        store = Store(settings.database_url)
        # one process: a local quota at HubSpot's default 100 requests per 10 s
        hubspot = HubSpotClient(
            settings, quota=LocalQuota(10.0, 100), search_quota=LocalQuota(5.0, 5)
        )
        pipeline = Pipeline(
            config,
            settings,
            store,
            config_path="<packaged example>",
            hubspot=hubspot,
            clock=lambda: sf_clock(),
        )

        def at(step: int) -> None:
            sf_clock.moment = start + CYCLE_EVERY * step
            hs_emu.set_time(sf_clock.moment)

        console.print(
            f"[bold]healthscore demo[/]: {accounts} synthetic accounts, Salesforce "
            f"emulator at {sf_emu.base_url} (TLS), HubSpot emulator at "
            f"{hs_emu.base_url}, Slack emulator at {slack_emu.base_url}"
        )
        ensure_properties(hubspot, config.sources.hubspot.write_back)  # `setup-crm`
        email.deliver_webhook(store, config)  # SendGrid's events, before the first sync
        if crm == "hubspot":
            ensure_task_key_property(hubspot, config.actions.hubspot_task_key_property)
        summaries = []
        overrides = seed_crm_overrides(sf_emu, org, sf_ids, seeded_at)
        emulators = (sf_emu, hs_emu, slack_emu, email.sendgrid)
        for step in range(cycles):
            at(step)
            counts = (
                _request_counts(sf_emu, hs_emu, slack_emu)
                | action_counts(*emulators)
                | delivery_counts(*emulators)
            )
            if chaos and step == 0:
                console.print(
                    "[bold]chaos[/]: a Slack 429 storm, and the delivery's worker process "
                    "SIGKILLed inside a Slack post, a CRM task upsert and a SendGrid send"
                )
                start_storm(slack_emu)
                vendors = {"slack": slack_emu, "salesforce": sf_emu, "sendgrid": email.sendgrid}
                cycle = _chaotic_cycle(pipeline, config, settings, vendors, base)
            else:
                cycle = pipeline.run_cycle()
            after = (
                _request_counts(sf_emu, hs_emu, slack_emu)
                | action_counts(*emulators)
                | delivery_counts(*emulators)
            )
            summary = cycle.summary()
            delta = {k: after[k] - counts[k] for k in after}
            summary["crm_write_requests"] = delta["sf_writes"]
            summary["hubspot_write_requests"] = delta["hs_writes"]
            summary["slack_messages"] = delta["slack"]
            summary["tasks_created"] = delta["tasks"]
            summary["emails_sent"] = delta["emails"]
            summary["delivery_requests"] = sum(delta[f"{v}_delivery"] for v in DELIVERY_VENDORS)
            summary["delivery_requests_by_vendor"] = {
                v: delta[f"{v}_delivery"] for v in DELIVERY_VENDORS
            }
            summary["sync_requests"] = {
                "salesforce": delta["sf_reads"],
                "hubspot": delta["hs_reads"],
            }
            summaries.append(summary)
        # one more sync after the cycles, on unchanged data (the first sync after a write-back
        # re-reads what our own write touched: its modification stamps moved; this one not)
        at(cycles)
        counts = _request_counts(sf_emu, hs_emu, slack_emu)
        pipeline.sync_all()
        after = _request_counts(sf_emu, hs_emu, slack_emu)
        resync = {
            "salesforce": after["sf_reads"] - counts["sf_reads"],
            "hubspot": after["hs_reads"] - counts["hs_reads"],
        }
        signals = store.signal_counts()
        unmatched = store.unmatched_counts()
        stopped = (
            hubspot_stops(
                pipeline, lambda t: (setattr(sf_clock, "moment", t), hs_emu.set_time(t)), sf_clock()
            )
            if crm == "salesforce"
            else {"stale_accounts": 0}
        )
        once = exactly_once(store, *emulators) | {"tasks": tasks_once(store, sf_emu, hs_emu)}
        _print_cycles(summaries)
        _print_sources(signals, unmatched, store)
        _print_reds(store, slack_emu)
        store.close()
        _print_checks(summaries, resync)
        print_governance(console, overrides, stopped, keep)
        _print_once(once, chaos)
    result = {
        "accounts": accounts,
        "signals_by_source": signals,
        "resync_requests": resync,
        "unmatched_by_source": {"salesforce": 0, "hubspot": 0, **unmatched},
        "cycles": summaries,
        "overrides_active": summaries[-1]["overrides_active"],
        "stale_accounts": stopped["stale_accounts"],
        "governance": {"overrides": overrides, "hubspot_stopped": stopped},
        "exactly_once": once,
        **({"chaos": True} if chaos else {}),
    }
    if backtest:
        result["backtest"] = _backtest(accounts, seed, backtest_dir(workdir, keep))
    return result


def _chaotic_cycle(
    pipeline: Pipeline,
    config: Config,
    settings: Settings,
    vendors: dict[str, Any],
    workdir: Path,
) -> CycleReport:
    """One cycle whose delivery runs in real worker processes, SIGKILLed inside a Slack
    post, a task upsert and a mail send, each replaced (see ``sandbox.chaos.demo_kill``)."""
    started = time.perf_counter()
    syncs = pipeline.sync_all()
    scoring, _ = pipeline.score()
    writes = pipeline.write_back()
    delivery, _ = deliver_with_kills(
        config,
        settings,
        pipeline.clock(),
        vendors,
        lambda m: console.print(f"  [yellow]chaos[/]: {m}", highlight=False),
        workdir,
    )
    act = ActReport(scoring, writes, delivery)
    return CycleReport.of(pipeline, syncs, act, time.perf_counter() - started)


def _print_once(once: dict[str, Any], chaos: bool) -> None:
    for channel, label in (("slack", "Slack alert"), ("tasks", "CSM task"), ("emails", "email")):
        console.print(
            f"{'[green]✓' if once[channel] else '[red]✗'}[/] each {label} exactly "
            f"once in the emulator's log (by idempotency key)"
        )
    if chaos:
        console.print(
            f"  chaos: {once['slack_429s']} Slack 429s waited out; "
            f"{once['unknown']} email outcome(s) unrecorded when its worker died — "
            f"sent once, never re-sent (email has no look-up by key)",
            highlight=False,
        )


def backtest_dir(workdir: Path | None, keep: Path | None) -> Path:
    """The backtest's own folder: under the demo's work folder (``workdir``, or ``--keep
    DIR``), else a fresh one per run, so two demos at once never write the same report."""
    if workdir is not None or keep is not None:
        return (workdir or keep) / "backtest"
    return Path(tempfile.mkdtemp(prefix="healthscore-demo-backtest-"))


def _backtest(accounts: int, seed: int, out: Path) -> dict[str, Any]:
    """Does the score predict churn? A year of the population's usage, backtested and fitted
    (sandbox/demo/backtest_demo.py); the report stays on disk for the browser."""
    from sandbox.demo.backtest_demo import demo_backtest

    console.print(
        f"[bold]backtest[/]: a year of daily usage for {accounts} accounts, "
        "scored every 14 days, churn within 30 days …"
    )
    block = demo_backtest(
        out, accounts=accounts, seed=seed, end=datetime.now(UTC).date() - timedelta(days=1)
    )
    if block["auc_fitted"] is None:
        console.print(f"  no fit: {block['fit_error']}", highlight=False)
    else:
        console.print(
            f"  held-out ROC AUC: current scorecard {block['auc_default']:.3f}, "
            f"fitted {block['auc_fitted']:.3f} ({block['held_out_snapshots']} later "
            f"snapshots); all {block['snapshots']} snapshots "
            f"{block['auc_all_snapshots']} (every row; scored rows only "
            f"{block['auc_all_snapshots_scored_only']}, {block['insufficient_rows']} "
            "insufficient-data rows)",
            highlight=False,
        )
        for label, ok in block["checks"].items():
            console.print(f"  {'[green]✓' if ok else '[red]✗'}[/] {label}")
    console.print(f"  report: {block['report']}", highlight=False)
    return block


def _request_counts(
    sf_emu: SalesforceEmulator, hs_emu: HubSpotEmulator, slack_emu: SlackEmulator
) -> dict[str, int]:
    return {
        "sf_writes": len(sf_emu.requests("PATCH", r"/composite/sobjects/?$")),  # not tasks
        "sf_reads": len(sf_emu.requests("GET", r"/(query|queryAll|sobjects/\w+/describe)"))
        + len(sf_emu.requests("POST", r"/jobs/query$")),
        "hs_writes": len(hs_emu.requests("POST", r"/objects/companies/batch/update$")),
        "hs_reads": len(hs_emu.requests("GET", r"/crm/v3/objects/companies$"))
        + len(hs_emu.requests("POST", r"/objects/companies/search$")),
        "slack": _posted(slack_emu),
    }


def _print_sources(signals: dict[str, int], unmatched: dict[str, int], store: Store) -> None:
    table = Table(title="sources")
    for col in ("source", "values held", "unmatched records"):
        table.add_column(col)
    for source in sorted(set(signals) | set(unmatched)):
        table.add_row(source, str(signals.get(source, 0)), str(unmatched.get(source, 0)))
    console.print(table)
    for u in store.unmatched()[:5]:
        console.print(
            f"  unmatched {u.source} {u.object} {u.record_id}: {u.reason} — {u.detail}",
            highlight=False,
        )


def _posted(slack_emu: SlackEmulator) -> int:
    """Messages Slack accepted (a 200 with ok: false is an error, not a message)."""
    return len(slack_emu.messages)


ROWS = (
    ("accounts pulled", "accounts_pulled"),
    ("accounts scored", "scored"),
    ("red", "red"),
    ("yellow", "yellow"),
    ("green", "green"),
    ("insufficient data", "insufficient_data"),
    ("records skipped", "records_skipped"),
    ("CRM records updated", "crm_records_updated"),
    ("CRM write requests", "crm_write_requests"),
    ("CRM writes pending", "crm_writes_pending"),
    ("HubSpot companies pulled", "hubspot_companies_pulled"),
    ("HubSpot companies matched", "hubspot_companies_matched"),
    ("HubSpot records updated", "hubspot_records_updated"),
    ("HubSpot write requests", "hubspot_write_requests"),
    ("entered red", "entered_red"),
    ("Slack messages", "slack_messages"),
    ("overrides active", "overrides_active"),
    ("stale accounts", "stale_accounts"),
    ("CSM tasks created", "tasks_created"),
    ("emails sent", "emails_sent"),
    ("seconds", "seconds"),
)


def _print_cycles(summaries: list[dict[str, Any]]) -> None:
    table = Table(title="cycles on unchanged data")
    table.add_column("")
    for n in range(1, len(summaries) + 1):
        table.add_column(f"cycle {n}", justify="right")
    for label, key in ROWS:
        table.add_row(
            label,
            *(str(s["grades"][key] if key in s["grades"] else s.get(key, "–")) for s in summaries),
        )
    table.add_row(
        "sync requests (Salesforce / HubSpot)",
        *(
            f"{s['sync_requests']['salesforce']} / {s['sync_requests']['hubspot']}"
            for s in summaries
        ),
    )
    console.print(table)


def _print_reds(store: Store, slack_emu: SlackEmulator) -> None:
    messages = slack_emu.messages[:5]
    if not messages:
        return
    table = Table(title=f"first Slack alerts ({len(slack_emu.messages)} in all)")
    table.add_column("channel")
    table.add_column("fallback text")
    for m in messages:
        table.add_row(str(m.get("channel")), str(m.get("text")))
    console.print(table)


def _print_checks(summaries: list[dict[str, Any]], resync: dict[str, int]) -> None:
    first = summaries[0]
    ok_requests = first["crm_write_requests"] == math.ceil(first["crm_records_updated"] / 200)
    ok_slack = first["slack_messages"] == first["entered_red"]
    ok_hubspot = first.get("hubspot_write_requests") == math.ceil(
        first.get("hubspot_records_updated", 0) / 100
    )
    ok_quiet = all(
        s["crm_records_updated"] == 0
        and s["slack_messages"] == 0
        and s["tasks_created"] == 0
        and s["emails_sent"] == 0
        and s.get("hubspot_records_updated", 0) == 0
        for s in summaries[1:]
    )
    for label, ok in (
        ("cycle 1 writes in ceil(updated/200) requests", ok_requests),
        ("cycle 1 mirrors to HubSpot in ceil(updated/100) requests", ok_hubspot),
        ("cycle 1 posts one alert per account that entered red", ok_slack),
        ("later cycles on unchanged data write, post, create and send nothing", ok_quiet),
    ):
        console.print(f"{'[green]✓' if ok else '[red]✗'}[/] {label}")
    console.print(
        f"  a sync on unchanged data after the cycles: {resync['salesforce']} "
        f"Salesforce and {resync['hubspot']} HubSpot requests",
        highlight=False,
    )
