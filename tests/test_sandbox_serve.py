"""`healthscore sandbox serve` as a team runs it: a real process that starts the emulators,
prints the variables pointing healthscore at them, serves until SIGTERM, then exits 0."""

from __future__ import annotations

import os
import shlex
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "SALESFORCE_INSTANCE_URL",
    "SALESFORCE_TOKEN_URL",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_CA_BUNDLE",
    "HUBSPOT_BASE_URL",
    "HUBSPOT_ACCESS_TOKEN",
    "ZENDESK_BASE_URL",
    "ZENDESK_EMAIL",
    "ZENDESK_API_TOKEN",
    "SENDGRID_BASE_URL",
    "SENDGRID_API_KEY",
    "SENDGRID_WEBHOOK_PUBLIC_KEY",
    "MAILCHIMP_BASE_URL",
    "MAILCHIMP_API_KEY",
    "SLACK_BASE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_ALERT_CHANNEL",
    "DATABASE_URL",
    "HEALTHSCORE_CONFIG",
}


def _exports(proc: subprocess.Popen[str], timeout: float = 90) -> dict[str, str]:
    """The `export NAME=value` lines, up to the last one (HEALTHSCORE_CONFIG)."""
    assert proc.stdout is not None
    env: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while "HEALTHSCORE_CONFIG" not in env:
        assert time.monotonic() < deadline, "no exports printed"
        line = proc.stdout.readline()
        assert line, f"serve exited early: {proc.wait()}"
        if line.startswith("export "):
            # what a shell does with the line
            name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
            env[name] = shlex.split(value)[0]
    return env


def test_serve_prints_the_environment_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthscore.cli", "sandbox", "serve", "--accounts", "12"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env = _exports(proc)
        assert set(env) >= EXPECTED
        assert env["SALESFORCE_INSTANCE_URL"].startswith("https://127.0.0.1:")
        work = Path(env["HEALTHSCORE_CONFIG"]).parent
        assert Path(env["SALESFORCE_CA_BUNDLE"]).is_file()

        # Salesforce over HTTPS, trusting only the printed CA bundle
        verify = ssl.create_default_context(cafile=env["SALESFORCE_CA_BUNDLE"])
        with httpx.Client(verify=verify, timeout=10) as sf:
            token = sf.post(
                env["SALESFORCE_TOKEN_URL"],
                data={
                    "grant_type": "client_credentials",
                    "client_id": env["SALESFORCE_CLIENT_ID"],
                    "client_secret": env["SALESFORCE_CLIENT_SECRET"],
                },
            )
            assert token.status_code == 200, token.text
            answer = sf.get(
                f"{env['SALESFORCE_INSTANCE_URL']}/services/data/v59.0/query",
                params={"q": "SELECT Id, Name FROM Account"},
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["totalSize"] == 12  # the seeded org
        companies = httpx.get(
            f"{env['HUBSPOT_BASE_URL']}/crm/v3/objects/companies",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {env['HUBSPOT_ACCESS_TOKEN']}"},
            timeout=10,
        )
        assert companies.status_code == 200 and len(companies.json()["results"]) == 12 + 4

        # the printed YAML is ready: healthscore validates it with the printed environment
        check = subprocess.run(
            [sys.executable, "-m", "healthscore.cli", "validate"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and "stopped" in proc.stderr.read()
        assert not work.exists()  # its work folder is removed
        assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
