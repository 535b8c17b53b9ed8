"""The 90-day email engagement window moves once a day, not with each sync.

Regression (issue 18: the 5,000-account demo's cycle 2 on unchanged data wrote one Salesforce
and one HubSpot record): a sync recomputes only the accounts whose facts it re-read (the
overlap window re-reads the last minutes), and each recompute cut the window at its own
``now - 90 days`` to the second. A message sent 90 days and a few minutes before cycle 1 was
in cycle 1's window and out of cycle 2's (15 minutes later) for just the re-read accounts, so
their open rate, score and CRM fields changed on unchanged data. The window now starts at
00:00 UTC 90 days before the day of ``now``, and every account holding facts is recomputed
when the UTC day changes, so every account's window moves at the same moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.email.engagement import engagement, fact
from connectors.registry import Settings
from connectors.sendgrid import SendGridClient
from healthscore.pipeline.cycle import Pipeline
from sandbox import SendGridEmulator
from store import Store
from tests.conftest import FAST_RETRY
from tests.email_helpers import ACME, NOW, email_config, signals, two_account_store

DAY = timedelta(days=1)


@pytest.fixture
def sg() -> Iterator[SendGridEmulator]:
    with SendGridEmulator() as emu:
        yield emu


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    yield from two_account_store(f"sqlite:///{tmp_path / 'hs.db'}")


def test_two_syncs_minutes_apart_on_unchanged_data_change_no_signal(
    sg: SendGridEmulator, store: Store
) -> None:
    moment = {"now": NOW}
    settings = Settings(
        database_url=store.url, sendgrid_api_key=sg.api_key, sendgrid_base_url=sg.base_url
    )
    pipeline = Pipeline(
        email_config(sendgrid={"per_recipient": "activity_api"}),
        settings,
        store,
        sendgrid=SendGridClient(sg.api_key, sg.base_url, retry=FAST_RETRY),
        clock=lambda: moment["now"],
    )
    # opened (last event: 10 minutes after the send) 90 days minus 12 minutes before the first
    # sync: in its window
    sg.add_message("ana@acme.example.com", NOW - 90 * DAY + timedelta(minutes=2), opened=True)
    sg.add_message("bo@acme.example.com", NOW - 10 * DAY)
    # sent 2 minutes before the first sync: the next sync's overlap reads it again
    sg.add_message("cy@acme.example.com", NOW - timedelta(minutes=2))
    pipeline.sync("sendgrid")
    first = signals(store, "sendgrid")[ACME]
    assert first["sendgrid_open_rate_90d"] == round(1 / 3, 4)

    moment["now"] = NOW + timedelta(minutes=15)  # the next cycle, nothing changed at SendGrid
    report = pipeline.sync("sendgrid")

    assert report.accounts_recomputed == 1  # the account whose message was read again
    assert signals(store, "sendgrid")[ACME] == first
    assert report.signals_changed == 0


def test_the_window_starts_at_midnight_90_days_before_and_moves_at_the_day_change() -> None:
    rows = [
        fact("old", "ana@acme.example.com", NOW - 90 * DAY - timedelta(hours=3), opened=True),
        fact("new", "bo@acme.example.com", NOW - DAY, delivered=True),
    ]
    midnight = NOW.replace(hour=0, minute=0)
    same_day = [midnight, NOW, midnight + DAY - timedelta(seconds=1)]
    rates = {t: engagement(rows, t, "x_")["x_open_rate_90d"] for t in same_day}
    assert set(rates.values()) == {0.5}  # 12:00 - 90 d - 3 h is after 00:00 - 90 d
    assert engagement(rows, midnight + DAY, "x_")["x_open_rate_90d"] == 0.0
