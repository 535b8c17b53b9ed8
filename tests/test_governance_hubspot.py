"""CSM overrides set on HubSpot companies, read by the company sync through hubspot-api-client
against the HubSpot emulator: applied, refused for a user without the right, read once,
cleared when the grade is emptied, and gone after their date — as on the Salesforce side."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.hubspot import ensure_properties
from connectors.hubspot.config import HubSpotOverrideProperties
from connectors.hubspot.source import sync_companies
from connectors.salesforce.sync import sync_accounts
from healthscore.config import Config
from healthscore.governance.overrides import active_overrides, list_overrides
from healthscore.governance.policy import OverridePolicy
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator, generate_org
from sandbox.demo.run_demo import hubspot_record_config
from store import Store
from tests.conftest import (
    fast_config,
    fast_hubspot_client,
    hubspot_config,
    hubspot_record_settings,
)

LEAD = "lead@example.com"
POLICY = OverridePolicy(allowed_roles=["account_owner", "cs_lead"], roles={"cs_lead": [LEAD]})
PROPS = HubSpotOverrideProperties()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def with_overrides(config: Config) -> Config:
    hubspot = config.sources.hubspot.model_copy(update={"override_properties": PROPS})
    return config.model_copy(
        update={
            "overrides": POLICY,
            "sources": config.sources.model_copy(update={"hubspot": hubspot}),
        }
    )


def other(grade: str) -> str:
    """A grade the override really changes (not the computed one)."""
    return "green" if grade == "red" else "red"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def record(
    tmp_path: Path, slack_emu: SlackEmulator, hs_emu: HubSpotEmulator
) -> Iterator[tuple[HubSpotEmulator, Pipeline, Clock]]:
    """HubSpot as the CRM of record, override properties on, on a controlled clock."""
    settings = hubspot_record_settings(hs_emu, slack_emu, tmp_path / "hs.db")
    store = Store(settings.database_url)
    clock = Clock(datetime.now(UTC))
    config = with_overrides(hubspot_record_config(fast_config(), hs_emu.portal_id))
    yield (
        hs_emu,
        Pipeline(config, settings, store, hubspot=fast_hubspot_client(settings), clock=clock),
        clock,
    )
    store.close()


def test_setup_crm_creates_the_override_properties_in_the_health_group(record) -> None:
    hs_emu, pipeline, _ = record
    hs_emu.seed(generate_org(3, seed=40))
    source = pipeline.config.sources.hubspot
    created = ensure_properties(
        pipeline.client("hubspot"), source.write_back, source.override_properties
    )
    assert set(PROPS.roles().values()) <= set(created)
    kinds = {
        name: (
            hs_emu.get_property("companies", name)["type"],
            hs_emu.get_property("companies", name)["groupName"],
        )
        for name in PROPS.roles().values()
    }
    assert kinds == {
        PROPS.grade: ("enumeration", "healthscore"),
        PROPS.reason: ("string", "healthscore"),
        PROPS.until: ("date", "healthscore"),
        PROPS.by: ("string", "healthscore"),
        PROPS.set_at: ("datetime", "healthscore"),
    }
    options = [o["value"] for o in hs_emu.get_property("companies", PROPS.grade)["options"]]
    assert options == ["red", "yellow", "green"]
    assert (
        ensure_properties(pipeline.client("hubspot"), source.write_back, source.override_properties)
        == []
    )
    # off by default: no override property is created or read
    assert hubspot_config().sources.hubspot.override_properties is None


def test_an_override_set_on_a_company_is_read_once_checked_cleared_and_expires(record) -> None:
    hs_emu, pipeline, clock = record
    ids = hs_emu.seed(generate_org(12, seed=41))
    source = pipeline.config.sources.hubspot
    ensure_properties(pipeline.client("hubspot"), source.write_back, source.override_properties)
    assert sync_companies(pipeline.context).overrides == {}  # nothing set yet
    _, computed = pipeline.score(dry_run=True)
    grade_of = {i: computed.grade[computed.index(i)] for i in ids[:3]}
    set_at = stamp(clock.at - timedelta(hours=1))
    until = (clock.at + timedelta(days=14)).date().isoformat()
    hs_emu.update(
        "companies",
        ids[0],
        {
            PROPS.grade: other(grade_of[ids[0]]),
            PROPS.reason: "Escalation to the CEO",
            PROPS.until: until,
            PROPS.by: LEAD,
            PROPS.set_at: set_at,
        },
    )
    hs_emu.update(
        "companies",
        ids[1],
        {
            PROPS.grade: other(grade_of[ids[1]]),
            PROPS.until: until,
            PROPS.by: "intern@example.com",
            PROPS.set_at: set_at,
        },
    )
    # the company's own owner, picked as a HubSpot owner id: resolved to the owner's email
    owner_id = hs_emu.record("companies", ids[2])["properties"]["hubspot_owner_id"]
    soon = (clock.at + timedelta(days=2)).date().isoformat()
    hs_emu.update(
        "companies",
        ids[2],
        {
            PROPS.grade: other(grade_of[ids[2]]),
            PROPS.reason: "Renewal signed late",
            PROPS.until: soon,
            PROPS.by: owner_id,
            PROPS.set_at: set_at,
        },
    )
    t0, clock.at = clock.at, datetime.now(UTC)  # the sync starts after those edits
    report = sync_companies(pipeline.context)
    assert report.overrides == {"applied": 2, "refused": 1}
    assert sync_companies(pipeline.context, full=True).overrides == {}  # read again: nothing new
    overrides = {o.account_id: o for o in list_overrides(pipeline.store)}
    assert {i: (o.state(clock.at), o.origin) for i, o in overrides.items()} == {
        ids[0]: ("active", "hubspot"),
        ids[1]: ("refused", "hubspot"),
        ids[2]: ("active", "hubspot"),
    }
    assert overrides[ids[0]].reason == "Escalation to the CEO"
    assert overrides[ids[0]].set_by == LEAD
    assert overrides[ids[0]].set_at == t0.replace(microsecond=0) - timedelta(hours=1)
    assert overrides[ids[0]].expires_at.date().isoformat() > until  # through that whole day
    assert "may not override" in (overrides[ids[1]].note or "")
    owner_email = pipeline.store.account(ids[2]).owner_email
    assert owner_email and overrides[ids[2]].set_by == owner_email
    _, batch = pipeline.score()
    assert [batch.grade[batch.index(i)] for i in ids[:3]] == [
        other(grade_of[ids[0]]),
        grade_of[ids[1]],
        other(grade_of[ids[2]]),
    ]
    # the CSM empties the grade in HubSpot: the override ends at the next sync
    hs_emu.update("companies", ids[0], {PROPS.grade: ""})
    clock.at = datetime.now(UTC) + timedelta(minutes=30)
    assert sync_companies(pipeline.context).overrides == {"cleared": 1}
    assert [o.state(clock.at) for o in list_overrides(pipeline.store, ids[0])] == ["cleared"]
    # the other one runs out by itself after its date: back to the computed grade
    clock.at += timedelta(days=4)
    assert active_overrides(pipeline.store, clock.at) == {}
    assert overrides[ids[2]].state(clock.at) == "expired"
    _, later = pipeline.score(dry_run=True)
    assert later.grade[later.index(ids[2])] == grade_of[ids[2]]


def test_an_override_on_a_second_crm_company_applies_to_its_matched_account(
    sf_emu: SalesforceEmulator, hs_emu: HubSpotEmulator, hs_pipeline: Callable[..., Pipeline]
) -> None:
    org = generate_org(10, seed=42)
    sf_ids = sf_emu.seed(org)
    company_ids = hs_emu.seed(org, account_ids=sf_ids)  # each carries its Salesforce id
    pipeline = hs_pipeline(with_overrides(hubspot_config()))
    source = pipeline.config.sources.hubspot
    ensure_properties(pipeline.client("hubspot"), source.write_back, source.override_properties)
    # a second company of the same account (a subsidiary), with no override of its own
    domain = hs_emu.record("companies", company_ids[4])["properties"]["domain"]
    sibling = hs_emu.create("companies", {"name": "Subsidiary", "domain": domain})
    sync_accounts(pipeline.context)
    owner = pipeline.store.account(sf_ids[4]).owner_email
    now = datetime.now(UTC)
    hs_emu.update(
        "companies",
        company_ids[4],
        {
            PROPS.grade: "red",
            PROPS.reason: "Champion left",
            PROPS.by: owner,
            PROPS.set_at: stamp(now - timedelta(minutes=5)),
        },
    )
    hs_emu.update(
        "companies",
        company_ids[5],
        {
            PROPS.grade: "red",
            PROPS.by: "someone@example.com",
            PROPS.set_at: stamp(now - timedelta(minutes=5)),
        },
    )
    assert sync_companies(pipeline.context).overrides == {"applied": 1, "refused": 1}
    found = {
        o.account_id: (o.state(now), o.origin, o.set_by) for o in list_overrides(pipeline.store)
    }
    assert found == {
        sf_ids[4]: ("active", "hubspot", owner),
        sf_ids[5]: ("refused", "hubspot", "someone@example.com"),
    }
    # the sibling changes: its empty override does not end the one the other company set
    hs_emu.update("companies", sibling, {"name": "Subsidiary GmbH"})
    assert sync_companies(pipeline.context).overrides == {}
    assert sf_ids[4] in active_overrides(pipeline.store, datetime.now(UTC))
    # emptied on the company that set it: ended
    hs_emu.update("companies", company_ids[4], {PROPS.grade: ""})
    assert sync_companies(pipeline.context).overrides == {"cleared": 1}
    assert sf_ids[4] not in active_overrides(pipeline.store, datetime.now(UTC))
