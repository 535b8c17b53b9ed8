"""`healthscore sync sendgrid|mailchimp`, `sources` and `webhook serve`, end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from healthscore.cli.main import app
from sandbox import MailchimpEmulator, SalesforceEmulator, SendGridEmulator, generate_org
from store import Store
from tests.email_helpers import signals


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def _enable(env: dict[str, str], **sources: dict) -> None:
    path = Path(env["HEALTHSCORE_CONFIG"])
    data = yaml.safe_load(path.read_text())
    for name, values in sources.items():
        data["sources"][name] = {"enabled": True, **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def email_env(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SendGridEmulator, MailchimpEmulator]]:
    with SendGridEmulator() as sg, MailchimpEmulator() as mc:
        for var, value in {
            "SENDGRID_API_KEY": sg.api_key,
            "SENDGRID_BASE_URL": sg.base_url,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": sg.webhook_public_key,
            "MAILCHIMP_API_KEY": mc.api_key,
            "MAILCHIMP_BASE_URL": mc.base_url,
        }.items():
            monkeypatch.setenv(var, value)
            sandbox_env[var] = value
        _enable(sandbox_env, sendgrid={"per_recipient": "activity_api"}, mailchimp={})
        yield sg, mc


def test_sync_email_sources_then_list_them(sf_emu: SalesforceEmulator, email_env) -> None:
    sg, mc = email_env
    now = datetime.now(UTC)
    org = generate_org(30, seed=5, now=now)
    sf_emu.seed(org)
    sg.seed(org, now)
    mc.seed(org, now)
    runner = CliRunner()
    assert runner.invoke(app, ["sync", "salesforce"]).exit_code == 0
    for source in ("sendgrid", "mailchimp"):
        result = runner.invoke(app, ["sync", source])
        assert result.exit_code == 0, result.output
        report = last_json(result.output)[source]
        assert report["accounts_recomputed"] == 30 and report["unmatched"] >= 3
    result = runner.invoke(app, ["sources"], env={"COLUMNS": "200"})
    summary = last_json(result.output)
    assert summary["signals_by_source"]["sendgrid"] > 0
    assert summary["signals_by_source"]["mailchimp"] > 0
    assert summary["unmatched_by_source"]["sendgrid"] >= 3
    result = runner.invoke(app, ["sources", "--unmatched"], env={"COLUMNS": "200"})
    assert "gmail.com" in result.output and "recipients" in result.output


def test_a_bad_key_is_one_clear_line(
    sf_emu: SalesforceEmulator, email_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.not-the-key")
    result = CliRunner().invoke(app, ["sync", "sendgrid"])
    assert result.exit_code == 1
    assert "SENDGRID_API_KEY was rejected" in result.output
    assert "SG.not-the-key" not in result.output


def test_same_metric_prefix_on_both_platforms_is_a_config_error(sandbox_env) -> None:
    _enable(
        sandbox_env, sendgrid={"metric_prefix": "email_"}, mailchimp={"metric_prefix": "email_"}
    )
    result = CliRunner().invoke(app, ["validate", sandbox_env["HEALTHSCORE_CONFIG"]])
    assert result.exit_code == 2
    assert "healthscore.yaml:" in result.output
    assert "'email_open_rate_90d' comes from both sources.sendgrid" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_serve_receives_signed_events(
    sf_emu: SalesforceEmulator, email_env, sandbox_env: dict[str, str]
) -> None:
    sg, _ = email_env
    now = datetime.now(UTC)
    org = generate_org(10, seed=3, now=now)
    sf_emu.seed(org)
    assert CliRunner().invoke(app, ["sync", "salesforce"]).exit_code == 0
    sg.seed(org, now)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthscore.cli", "webhook", "serve", "--port", str(port)],
        env={**os.environ, **sandbox_env},
        cwd=Path(sandbox_env["HEALTHSCORE_CONFIG"]).parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks/sendgrid"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url.replace("/webhooks/sendgrid", "/healthz"))
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "webhook server did not start"
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        responses = sg.post_events(url, batch_size=200)
        assert {r.status_code for r in responses} == {200}
        assert sum(r.json()["new"] for r in responses) == len(sg.events())
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0  # SIGTERM: a clean stop (the last recompute ran)
    store = Store(sandbox_env["DATABASE_URL"])
    assert len(signals(store, "sendgrid")) == 10
    store.close()


def test_webhook_serve_checks_its_config_before_starting(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["webhook", "serve", "--port", "0"])
    assert result.exit_code == 2 and "sources.sendgrid.enabled is false" in result.output
    _enable(sandbox_env, sendgrid={})
    monkeypatch.delenv("SENDGRID_WEBHOOK_PUBLIC_KEY", raising=False)
    result = runner.invoke(app, ["webhook", "serve", "--port", "0"])
    assert result.exit_code == 2 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in result.output
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", "bm90IGEga2V5")
    result = runner.invoke(app, ["webhook", "serve", "--port", "0"])
    assert result.exit_code == 2 and "not a base64 DER or PEM" in result.output
    assert "bm90IGEga2V5" not in result.output
    result = runner.invoke(app, ["webhook", "serve", "--threads", "0"])
    assert result.exit_code == 2  # bounded: 1..64
