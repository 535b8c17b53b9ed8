"""HubSpot as the CRM of record: companies are the accounts, health written back to them."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.hubspot import ensure_properties
from connectors.hubspot.source import sync_companies
from healthscore.config import load_config
from healthscore.core.errors import ConfigError
from healthscore.pipeline.cycle import Pipeline
from sandbox import HubSpotEmulator, SlackEmulator, generate_org
from sandbox.demo.run_demo import hubspot_record_config
from store import Store
from tests.conftest import fast_config, fast_hubspot_client, hubspot_record_settings

EXAMPLE = (Path(__file__).parent.parent / "healthscore" / "healthscore.example.yaml").read_text()


@pytest.fixture
def record_pipeline(tmp_path: Path, slack_emu: SlackEmulator, hs_emu: HubSpotEmulator):
    settings = hubspot_record_settings(hs_emu, slack_emu, tmp_path / "hs.db")
    store = Store(settings.database_url)

    def build() -> Pipeline:
        return Pipeline(
            hubspot_record_config(fast_config(), hs_emu.portal_id),
            settings,
            store,
            hubspot=fast_hubspot_client(settings),
        )

    yield hs_emu, build
    store.close()


def test_companies_are_scored_and_written_back(record_pipeline, slack_emu) -> None:
    hs_emu, build = record_pipeline
    org = generate_org(150, seed=31)
    company_ids = hs_emu.seed(org)
    pipeline = build()
    ensure_properties(pipeline.client("hubspot"), pipeline.config.sources.hubspot.write_back)
    first = pipeline.run_cycle()
    assert {a.id for a in pipeline.store.accounts()} == set(company_ids)
    assert all(a.crm == "hubspot" for a in pipeline.store.accounts())
    # each company's HubSpot owner is the account's owner (for the alert's @-mention)
    owners = {o["email"] for o in hs_emu.owners}
    assert {a.owner_email for a in pipeline.store.accounts()} <= owners
    assert all(a.owner_email for a in pipeline.store.accounts())
    assert first.scoring.scored == 150 and first.write.requests == 0  # no Salesforce
    assert first.writes.get("hubspot") is not None
    assert first.writes.get("hubspot").records_updated == 150
    assert first.writes.get("hubspot").requests == math.ceil(150 / 100)
    scores = pipeline.store.scores_as_of(pipeline.clock())
    company = hs_emu.record("companies", company_ids[0])["properties"]
    assert float(company["healthscore_score"]) == round(scores[company_ids[0]].score)
    assert company["healthscore_grade"] == scores[company_ids[0]].grade
    # the alert links to the company in HubSpot
    reds = [m for m in slack_emu.messages]
    assert len(reds) == first.scoring.entered_red > 0
    assert f"app.hubspot.com/contacts/{hs_emu.portal_id}/company/" in str(reds[0]["blocks"])
    second = build().run_cycle()
    assert second.writes.get("hubspot") is not None
    assert (
        second.writes.get("hubspot").records_updated,
        second.writes.get("hubspot").requests,
    ) == (0, 0)
    assert second.delivery.sent == 0


def test_record_system_rejects_a_second_crm_of_record(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        "  hubspot:                   # HubSpot companies as a second CRM "
        "(HUBSPOT_ACCESS_TOKEN)\n    enabled: false",
        "  hubspot:\n    enabled: true\n    record_system: true",
    )
    assert "record_system: true" in text
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    with pytest.raises(
        ConfigError,
        match=r"healthscore.yaml:\d+ sources: .*set "
        r"salesforce.enabled: false",
    ):
        load_config(path)


def test_an_archived_company_stops_being_an_account(record_pipeline) -> None:
    hs_emu, build = record_pipeline
    company_ids = hs_emu.seed(generate_org(12, seed=32))
    pipeline = build()
    first = sync_companies(pipeline.context)
    assert first.archived == 0 and len(pipeline.store.accounts()) == 12
    hs_emu.archive("companies", company_ids[5])
    hs_emu.clear_log()
    quiet = sync_companies(pipeline.context)  # the daily deleted check is not due yet
    assert quiet.archived == 0 and len(pipeline.store.accounts()) == 12
    assert hs_emu.requests("GET", r"/companies") == []  # incremental: one search only
    sources = pipeline.config.sources
    hubspot = sources.hubspot.model_copy(update={"deleted_check_every": timedelta(0)})
    pipeline.config = pipeline.config.model_copy(
        update={"sources": sources.model_copy(update={"hubspot": hubspot})}
    )
    checked = sync_companies(pipeline.context)
    assert checked.archived == 1
    assert company_ids[5] not in {a.id for a in pipeline.store.accounts()}
    _, batch = pipeline.score(dry_run=True)
    assert company_ids[5] not in batch.account_ids and len(batch) == 11
