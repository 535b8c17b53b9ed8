"""`healthscore sync zendesk` and `sources` with Zendesk enabled, from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.zendesk import METRICS
from healthscore.cli.main import app
from healthscore.config import load_config
from sandbox import SalesforceEmulator, ZendeskEmulator, generate_org


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture
def zd_env(sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    with ZendeskEmulator() as emu:
        monkeypatch.setenv("ZENDESK_EMAIL", emu.email)
        monkeypatch.setenv("ZENDESK_API_TOKEN", emu.api_token)
        monkeypatch.setenv("ZENDESK_BASE_URL", emu.api_url)
        path = Path(sandbox_env["HEALTHSCORE_CONFIG"])
        data = yaml.safe_load(path.read_text())
        data["sources"]["zendesk"] = {"enabled": True, "sync_every": "10m"}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        yield emu


def test_sync_zendesk_then_sources(sf_emu: SalesforceEmulator, zd_env: ZendeskEmulator) -> None:
    org = generate_org(12, seed=8)
    zd_env.seed(org, account_ids=sf_emu.seed(org))
    runner = CliRunner()
    assert runner.invoke(app, ["sync", "salesforce"]).exit_code == 0
    result = runner.invoke(app, ["sync", "zendesk"])
    assert result.exit_code == 0, result.output
    synced = last_json(result.output)["zendesk"]
    assert synced["matched"] == 12 and synced["unmatched"] == 2
    assert synced["tickets"] == zd_env.ticket_count and synced["rate_limited"] == 0
    result = runner.invoke(app, ["sources"], env={"COLUMNS": "200"})
    summary = last_json(result.output)
    assert summary["signals_by_source"]["zendesk"] > 0
    assert summary["unmatched_by_source"] == {"zendesk": 2}


def test_bad_token_exits_with_the_variable_named(sf_emu, zd_env, monkeypatch) -> None:
    monkeypatch.setenv("ZENDESK_API_TOKEN", "not-the-token")
    result = CliRunner().invoke(app, ["sync", "zendesk"])
    assert result.exit_code == 1
    assert "ZENDESK_API_TOKEN" in result.output and "not-the-token" not in result.output


def test_zendesk_source_in_yaml_provides_its_metrics(tmp_path: Path) -> None:
    from importlib import resources

    data = yaml.safe_load(
        resources.files("healthscore").joinpath("healthscore.example.yaml").read_text("utf-8")
    )
    data["sources"]["zendesk"] = {"enabled": True, "requests_per_minute": 400, "backfill": "90d"}
    path = tmp_path / "hs.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(path)
    assert set(METRICS) <= config.metrics
    assert config.sources.zendesk.requests_per_minute == 400
    data["sources"]["zendesk"]["export_requests_per_minute"] = 0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(Exception, match="export_requests_per_minute"):
        load_config(path)
