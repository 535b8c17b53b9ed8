"""HubSpot deals, tickets and contacts are synced wherever HubSpot is (the beat's Celery task,
`healthscore sync hubspot`), not only by a whole cycle: the registry's HubSpot step pulls
companies, then the related objects mapped through them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from healthscore.cli.main import app
from sandbox import HubSpotEmulator, SalesforceEmulator, generate_org
from store import Store
from tests.test_cli_sources import hs_env  # noqa: F401  (the HubSpot emulator and its env)
from tests.test_hubspot_related import create

RELATED_METRICS = ("hubspot_open_deal_amount", "hubspot_tickets_open", "hubspot_contacts")


@pytest.fixture
def related_world(
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    hs_env: HubSpotEmulator,  # noqa: F811
) -> dict[str, str]:
    path = Path(sandbox_env["HEALTHSCORE_CONFIG"])
    data = yaml.safe_load(path.read_text())
    data["sources"]["hubspot"]["related"] = ["deals", "tickets", "contacts"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    org = generate_org(12, seed=5)
    company_ids = hs_env.seed(org, account_ids=sf_emu.seed(org))
    create(
        hs_env,
        "deals",
        [{"dealname": "D", "dealstage": "contractsent", "amount": "500"}] * 6,
        company_ids,
    )
    create(hs_env, "tickets", [{"subject": "Broken", "hs_pipeline_stage": "1"}] * 5, company_ids)
    create(hs_env, "contacts", [{"email": f"c{k}@x{k}.example"} for k in range(4)], company_ids)
    return sandbox_env


def related_signals(database_url: str) -> dict[str, int]:
    store = Store(database_url)
    try:
        held = [m for _, m, v, _ in store.latest_signals() if m in RELATED_METRICS]
    finally:
        store.close()
    return {m: held.count(m) for m in RELATED_METRICS}


def test_the_celery_task_syncs_hubspot_deals_tickets_and_contacts(
    related_world: dict[str, str],
) -> None:
    from healthscore.worker import tasks

    tasks.runtime.cache_clear()
    try:
        tasks.sync_source.apply(args=("salesforce",)).get()
        result = tasks.sync_source.apply(args=("hubspot",)).get()
    finally:
        if tasks.runtime.cache_info().currsize:
            tasks.runtime().store.close()
        tasks.runtime.cache_clear()
    objects = result["related"]["objects"]
    assert {o: objects[o]["records"] for o in ("deals", "tickets", "contacts")} == {
        "deals": 6,
        "tickets": 5,
        "contacts": 4,
    }
    held = related_signals(related_world["DATABASE_URL"])
    assert all(held[m] > 0 for m in RELATED_METRICS), held


def test_healthscore_sync_hubspot_syncs_the_related_objects(
    related_world: dict[str, str],
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["sync", "salesforce"]).exit_code == 0
    result = runner.invoke(app, ["sync", "hubspot"])
    assert result.exit_code == 0, result.output
    synced = json.loads(result.stdout.strip().splitlines()[-1])
    assert synced["hubspot"]["related"]["objects"]["deals"]["records"] == 6
    held = related_signals(related_world["DATABASE_URL"])
    assert all(held[m] > 0 for m in RELATED_METRICS), held
