"""Support signals on a small hand-built desk, end to end and as a pure function."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.salesforce.sync import sync_accounts
from connectors.zendesk.signals import aggregate, subject_topic
from sandbox import SalesforceEmulator, ZendeskEmulator, generate_org
from tests.zendesk_helpers import PipelineFactory

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def zd(sf_emu: SalesforceEmulator, tmp_path: Path) -> Iterator[PipelineFactory]:
    with ZendeskEmulator(limit_scale=600) as emu:
        factory = PipelineFactory(sf_emu, emu, tmp_path)
        yield factory
        factory.close()


def test_signal_values_on_a_hand_built_desk(zd) -> None:
    emu = zd.zd
    a, b = zd.sf.seed(generate_org(2, seed=9, now=T))
    org_a = emu.add_organization("A", external_id=a)
    emu.add_organization("B", external_id=b)

    def at(days: float) -> datetime:
        emu.set_time(T - timedelta(days=days))
        return T - timedelta(days=days)

    at(150)
    old = emu.add_ticket(org_a, "Export fails", status="solved")  # 140 days before #1
    at(120)
    emu.rate_ticket(old, "bad")  # outside the 90 days
    at(100)
    emu.update_ticket(old, reopens=2)  # reopened, but last changed 100 days ago
    at(60)
    login = emu.add_ticket(org_a, "Login broken", status="solved")
    at(40)
    slow = emu.add_ticket(org_a, "Dashboard slow", status="solved", tags=["topic_perf"])
    at(39)
    emu.rate_ticket(slow, "good")
    at(20)
    emu.update_ticket(login, reopens=1)  # reopened 20 days ago
    emu.add_ticket(
        org_a, "Charts lag", status="pending", priority="urgent", tags=["topic_perf", "vip"]
    )  # urgent, open, same tag topic as "slow"
    at(10)
    first = emu.add_ticket(org_a, "Export fails", status="solved")
    at(9.9)
    emu.rate_ticket(first, "good")
    at(8)
    gone = emu.add_ticket(org_a, "Export fails", status="open")
    emu.update_ticket(gone, status="deleted")  # deleted: counts for nothing
    at(5)
    emu.add_ticket(org_a, "RE: Export fails (#2)!", status="open")  # repeats #1
    at(3)
    billing = emu.add_ticket(org_a, "Billing question", status="solved", priority="urgent")
    at(2)
    emu.rate_ticket(billing, "bad")
    emu.set_time(T)
    pipeline = zd(clock=lambda: T)
    sync_accounts(pipeline.context)
    report = pipeline.sync("zendesk")
    assert report.tickets == 8 and report.ratings == 3  # CSAT is read 90 days back
    got = {
        (acct, m): v
        for acct, m, v, _ in pipeline.store.latest_signals()
        if m.startswith("zendesk_")
    }
    assert {m: got[(a, m)] for _, m in got if _ == a} == {
        "zendesk_tickets_30d": 4.0,  # charts, export #1, RE: export, billing
        "zendesk_urgent_open": 1.0,  # charts (billing is solved)
        "zendesk_reopened_90d": 1.0,  # login (the old one changed 100 days ago)
        "zendesk_repeated_topic_90d": 2.0,  # RE: export (subject), charts (tag)
        "zendesk_csat_90d": pytest.approx(2 / 3),  # slow, export #1 good; billing bad
    }
    assert {m: got[(b, m)] for _, m in got if _ == b} == {
        "zendesk_tickets_30d": 0.0,
        "zendesk_urgent_open": 0.0,
        "zendesk_reopened_90d": 0.0,
        "zendesk_repeated_topic_90d": 0.0,
        "zendesk_csat_90d": None,
    }


def test_subject_topics_ignore_reply_prefixes_numbers_and_punctuation() -> None:
    assert subject_topic("RE: Fwd: Export fails (#4312)!") == "export fails"
    assert subject_topic("export   FAILS") == "export fails"
    assert subject_topic("#123") is None


def test_no_tickets_means_zero_counts_and_no_csat() -> None:
    assert aggregate([], [], T) == {
        "zendesk_tickets_30d": 0.0,
        "zendesk_urgent_open": 0.0,
        "zendesk_reopened_90d": 0.0,
        "zendesk_repeated_topic_90d": 0.0,
        "zendesk_csat_90d": None,
    }
