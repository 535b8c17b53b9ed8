"""`healthscore sync [SOURCE] [--full]`, `sources [--unmatched]` and `setup-crm` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from healthscore.cli.main import app
from sandbox import HubSpotEmulator, SalesforceEmulator, generate_org


def _enable(env: dict[str, str], hs_emu: HubSpotEmulator) -> None:
    path = Path(env["HEALTHSCORE_CONFIG"])
    data = yaml.safe_load(path.read_text())
    data["sources"]["salesforce"]["related"] = ["Opportunity", "Case"]
    data["sources"]["hubspot"].update(
        {"enabled": True, "metrics": {"employees": "numberofemployees"}}
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def hs_env(sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    with HubSpotEmulator(search_per_second=1000, requests_per_10s=10_000) as hs_emu:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", hs_emu.access_token)
        monkeypatch.setenv("HUBSPOT_BASE_URL", hs_emu.base_url)
        _enable(sandbox_env, hs_emu)
        yield hs_emu


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_sync_each_source_then_list_sources_and_unmatched(
    sf_emu: SalesforceEmulator, hs_env: HubSpotEmulator
) -> None:
    org = generate_org(25, seed=41)
    sf_ids = sf_emu.seed(org)
    hs_env.seed(org, account_ids=sf_ids)
    hs_env.create("companies", {"name": "Prospect", "domain": "prospect.example"})
    runner = CliRunner()
    result = runner.invoke(app, ["sync", "salesforce"])
    assert result.exit_code == 0, result.output
    synced = last_json(result.output)
    assert synced["salesforce"]["records"] == 25
    related = synced["salesforce"]["related"]
    assert related["Opportunity"]["records"] > 0 and "Case" in related
    result = runner.invoke(app, ["sync", "hubspot", "--full"])
    assert result.exit_code == 0, result.output
    assert last_json(result.output)["hubspot"]["unmatched"] == 1
    result = runner.invoke(app, ["sources"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    summary = last_json(result.output)
    assert summary["signals_by_source"]["salesforce"] > 0
    assert summary["signals_by_source"]["hubspot"] > 0
    assert summary["unmatched_by_source"] == {"hubspot": 1}
    result = runner.invoke(app, ["sources", "--unmatched"], env={"COLUMNS": "200"})
    assert "prospect.example" in result.output and "no_match" in result.output
    result = runner.invoke(app, ["sync", "zendesk"])
    assert result.exit_code == 2 and "unknown or disabled source 'zendesk'" in result.output


def test_setup_crm_checks_salesforce_and_creates_hubspot_properties(
    sf_emu: SalesforceEmulator, hs_env: HubSpotEmulator
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["setup-crm"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "created: " in result.output and "healthscore_score" in result.output
    assert hs_env.get_property("companies", "healthscore_grade")["type"] == "enumeration"
    again = runner.invoke(app, ["setup-crm"], env={"COLUMNS": "200"})
    assert again.exit_code == 0 and "created" not in again.output
    sf_emu.remove_field("Account", "Health_Trend__c")
    missing = runner.invoke(app, ["setup-crm"], env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "Health_Trend__c" in missing.output
