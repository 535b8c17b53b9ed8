"""`healthscore override`, `healthscore history` and `healthscore diff-scorecard`.

Registered on the main app by ``healthscore.cli.main`` (one import line there).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from healthscore.cli.app import ConfigOption, _runtime, app, console, reports_errors, stdout_console
from healthscore.core.durations import parse_duration
from healthscore.core.errors import ConfigError

USER_ENV = "HEALTHSCORE_USER"


def _expiry(text: str | None) -> tuple[timedelta | None, datetime | None]:
    """``30d`` (a duration) or ``2026-12-31`` (through the end of that day, UTC)."""
    if not text:
        return None, None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        try:
            return parse_duration(text), None
        except ValueError as exc:
            raise ConfigError(f"--expires {exc} (or a date like 2026-12-31)") from None
    return None, datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


@app.command()
@reports_errors
def override(
    account: Annotated[str | None, typer.Argument(help="account id or exact name")] = None,
    grade: Annotated[str | None, typer.Option(help="red, yellow or green")] = None,
    reason: Annotated[
        str | None, typer.Option(help="why (shown on the Account and in Slack)")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="how long it lasts, e.g. 30d (default: overrides.default_duration)"),
    ] = None,
    by: Annotated[str | None, typer.Option(help=f"your email (default: ${USER_ENV})")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="end the account's override now")] = False,
    list_: Annotated[
        bool,
        typer.Option("--list", help="list overrides (all, or the account's), refused ones too"),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Override an account's grade until a date: who, why, until when; or --list / --clear."""
    from healthscore.governance.overrides import (
        clear_override,
        find_account,
        list_overrides,
        set_override,
    )

    pipeline = _runtime(config).pipeline()
    store, now = pipeline.store, pipeline.clock()
    user = by or os.environ.get(USER_ENV)
    if list_:
        target = find_account(store, account) if account else None
        names = {a.id: a.name for a in store.accounts(include_deleted=True)}
        rows = list_overrides(store, target.id if target else None)
        table = Table(title="overrides")
        for col in (
            "account",
            "grade",
            "state",
            "by",
            "origin",
            "set",
            "expires",
            "reason",
            "note",
        ):
            table.add_column(col, overflow="fold")
        for o in rows:
            table.add_row(
                names.get(o.account_id, o.account_id),
                o.grade,
                o.state(now),
                o.set_by,
                o.origin,
                f"{o.set_at:%Y-%m-%d %H:%M}",
                f"{o.expires_at:%Y-%m-%d %H:%M}",
                o.reason,
                o.note or "",
            )
        stdout_console().print(table)
        print(
            json.dumps(
                {
                    "overrides": [
                        {
                            **o.as_dict(),
                            "account_id": o.account_id,
                            "state": o.state(now),
                            "note": o.note,
                        }
                        for o in rows
                    ]
                }
            )
        )
        return
    if account is None:
        raise ConfigError("give an ACCOUNT (or --list)")
    found = find_account(store, account)
    if not user:
        raise ConfigError(
            f"who is this? give --by EMAIL (or set {USER_ENV}): overrides record "
            "who set them, and only allowed users may"
        )
    if clear:
        ended = clear_override(store, pipeline.config.overrides, found, by=user, now=now)
        console.print(
            f"{'[green]cleared[/]' if ended else 'no active override on'} {found.name}",
            highlight=False,
        )
        print(json.dumps({"account_id": found.id, "cleared": ended}))
        return
    if grade is None or not reason:
        raise ConfigError("give --grade and --reason (a CSM override says what and why)")
    length, until = _expiry(expires)
    view = set_override(
        store,
        pipeline.config.overrides,
        found,
        grade=grade,
        reason=reason,
        set_by=user,
        now=now,
        expires=length,
        expires_at=until,
    )
    console.print(
        f"[green]ok[/] {found.name}: [bold]{view.grade}[/] until "
        f"{view.expires_at:%Y-%m-%d %H:%M} UTC (by {view.set_by}); the next run "
        f"writes it to the CRM",
        highlight=False,
    )
    print(json.dumps({"account_id": found.id, **view.as_dict()}))


@app.command()
@reports_errors
def history(
    account: Annotated[str, typer.Argument(help="account id or exact name")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead")] = False,
) -> None:
    """An account's score history: grades, overrides, critical conditions and the runs where
    the scorecard changed."""
    from healthscore.governance.overrides import find_account
    from healthscore.governance.versioning import changed

    pipeline = _runtime(config).pipeline()
    store = pipeline.store
    found = find_account(store, account)
    versions = {r.id: r.scorecard_version for r in store.runs()}
    out, last = [], None
    for s in store.score_history(found.id):
        version = versions.get(s.run_id, "")
        out.append(
            {
                "scored_at": s.scored_at.isoformat(),
                "score": s.score,
                "grade": s.grade,
                "scorecard_version": version,
                "scorecard_changed": changed(last, version),
                "override": s.reasons.get("override"),
                "computed_grade": s.reasons.get("computed_grade"),
                "critical": s.reasons.get("critical"),
                "stale_sources": s.reasons.get("stale_sources"),
            }
        )
        last = version
    if as_json:
        print(json.dumps({"account_id": found.id, "name": found.name, "history": out}))
        return
    table = Table(title=f"{found.name} ({found.id})")
    for col in ("scored at", "score", "grade", "scorecard", "note"):
        table.add_column(col, overflow="fold")
    for h in out:
        notes = []
        if h["scorecard_changed"]:
            notes.append("scorecard changed")
        if h["override"]:
            o = h["override"]
            notes.append(
                f"override by {o['set_by']} until {o['expires_at'][:10]} "
                f"(computed {h['computed_grade']})"
            )
        if h["critical"]:
            notes.append(f"critical: {h['critical']}")
        if h["stale_sources"]:
            notes.append("stale: " + ", ".join(h["stale_sources"]))
        table.add_row(
            h["scored_at"][:16],
            "–" if h["score"] is None else f"{h['score']:.0f}",
            h["grade"],
            h["scorecard_version"],
            "; ".join(notes),
        )
    stdout_console().print(table)


@app.command(name="diff-scorecard")
@reports_errors
def diff_scorecard(
    old: Annotated[
        Path, typer.Argument(help="the scorecard in use (a config file or a scorecard-only YAML)")
    ],
    new: Annotated[Path, typer.Argument(help="the changed scorecard")],
    config: ConfigOption = None,
    show: Annotated[int, typer.Option(help="accounts to list (all: 0)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print only JSON")] = False,
) -> None:
    """Preview a scorecard change on the current data: which accounts change grade (dry run,
    nothing is written)."""
    from healthscore.backtest.scorecard_diff import diff_scorecards, load_scorecard

    pipeline = _runtime(config).pipeline()
    provided = pipeline.config.fields
    result = diff_scorecards(pipeline, load_scorecard(old, provided), load_scorecard(new, provided))
    if not as_json:
        out = stdout_console()
        out.print(
            f"{result.accounts} accounts scored with {old} (version "
            f"{result.old_version}) and {new} (version {result.new_version}); "
            f"[bold]{len(result.changes)}[/] change grade, {result.score_changed} change "
            f"score (mean {result.mean_score_change:+.1f} points)",
            highlight=False,
        )
        if result.transitions:
            counts = Table(title="grade transitions")
            counts.add_column("from → to")
            counts.add_column("accounts", justify="right")
            for transition, n in result.transitions.items():
                counts.add_row(transition, str(n))
            out.print(counts)
        listed = result.changes if show <= 0 else result.changes[:show]
        if listed:
            table = Table(title="accounts whose grade changes")
            for col in ("account", "id", "old", "new", "old score", "new score"):
                table.add_column(col, overflow="fold")
            for c in listed:
                table.add_row(
                    c.name,
                    c.account_id,
                    c.old_grade,
                    c.new_grade,
                    "–" if c.old_score is None else f"{c.old_score:.0f}",
                    "–" if c.new_score is None else f"{c.new_score:.0f}",
                )
            out.print(table)
    print(json.dumps(result.as_dict()))
