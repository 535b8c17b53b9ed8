"""One destination down never stops the others: a HubSpot write-back refused (bad token, or
properties that do not exist) leaves its writes pending with the error, while Salesforce is
written and Slack delivers; after the fix the pending writes go out by themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.hubspot import ensure_properties
from connectors.hubspot.source import SOURCE_ENTRY
from healthscore.core.errors import ConfigError
from sandbox import generate_org

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BATCH_UPDATE = r"/companies/batch/update$"


def world(sf_emu, hs_emu, hs_pipeline, n: int = 40):
    org = generate_org(n, seed=31, now=NOW)
    hs_emu.seed(org, account_ids=sf_emu.seed(org))
    pipeline = hs_pipeline()
    pipeline.sync_all()
    return pipeline


def test_a_hubspot_401_leaves_salesforce_and_slack_going(
    sf_emu, hs_emu, slack_emu, hs_pipeline
) -> None:
    pipeline = world(sf_emu, hs_emu, hs_pipeline)
    ensure_properties(pipeline.client("hubspot"), pipeline.config.sources.hubspot.write_back)
    hs_emu.faults.add("expired_session", method="POST", path=BATCH_UPDATE)
    act = pipeline.score_and_act()
    hubspot, salesforce = act.writes["hubspot"], act.writes["crm"]
    assert salesforce.records_updated == 40 and salesforce.pending == 0
    assert hubspot.records_updated == 0 and hubspot.pending == 40
    assert hubspot.error and not hubspot.retriable  # a person must fix the token first
    assert act.delivery.sent > 0 and len(slack_emu.messages) == act.delivery.sent
    assert len(pipeline.store.pending_writes("hubspot")) == 40  # nothing lost
    hs_emu.faults.clear()  # the token is fixed
    again = pipeline.score_and_act()  # the next cycle
    assert again.writes["hubspot"].records_updated == 40
    assert again.writes["hubspot"].pending == 0 and again.delivery.sent == 0


def test_missing_hubspot_properties_do_not_stop_the_cycle(
    sf_emu, hs_emu, slack_emu, hs_pipeline
) -> None:
    pipeline = world(sf_emu, hs_emu, hs_pipeline, n=25)
    act = pipeline.score_and_act()  # setup-crm never ran: the properties do not exist
    assert act.writes["crm"].records_updated == 25
    assert act.writes["hubspot"].pending == 25 and "PROPERTY" in act.writes["hubspot"].error
    assert act.delivery.sent > 0
    ensure_properties(pipeline.client("hubspot"), pipeline.config.sources.hubspot.write_back)
    assert pipeline.write_back()["hubspot"].records_updated == 25


def test_check_names_the_missing_hubspot_properties(sf_emu, hs_emu, hs_pipeline) -> None:
    pipeline = hs_pipeline()
    with pytest.raises(ConfigError, match=r"healthscore_score.*setup-crm"):
        SOURCE_ENTRY.check(pipeline.context)
    ensure_properties(pipeline.client("hubspot"), pipeline.config.sources.hubspot.write_back)
    assert "HubSpot company properties present" in SOURCE_ENTRY.check(pipeline.context)
