"""Shared fixtures: real Redis and PostgreSQL, sandbox emulators, a wired pipeline."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from connectors.registry import Settings
from healthscore.config import Config, load_config
from healthscore.core.retry import RetryPolicy
from healthscore.pipeline.cycle import Pipeline
from store import Store

if TYPE_CHECKING:
    from connectors.hubspot import HubSpotClient
    from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator

PG_URL = os.environ.get("HEALTHSCORE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FAST_RETRY = RetryPolicy(
    attempts=5, base=0.01, max_wait=0.05, sleep=lambda s: time.sleep(min(s, 0.05))
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL if set; else a private redis-server on a free port for this session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "Redis is needed: set REDIS_URL or install redis-server (apt-get install redis-server)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def _pg_schema_url() -> Iterator[str]:
    import psycopg

    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_URL} unreachable (set HEALTHSCORE_TEST_PG_URL)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store test runs on SQLite and on the real PostgreSQL (a fresh schema each)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The real PostgreSQL only (a fresh schema), for behaviour SQLite does not have."""
    yield from _pg_schema_url()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def sf_emu() -> Iterator[SalesforceEmulator]:
    from sandbox import SalesforceEmulator

    with SalesforceEmulator() as emu:
        yield emu


@pytest.fixture
def slack_emu() -> Iterator[SlackEmulator]:
    from sandbox import SlackEmulator

    with SlackEmulator(messages_per_second=50, burst=50) as emu:
        yield emu


def sandbox_settings(
    sf: SalesforceEmulator, slack: SlackEmulator, db: str, **extra: object
) -> Settings:
    return Settings(
        database_url=db,
        salesforce_instance_url=sf.base_url,
        salesforce_token_url=sf.token_url,
        salesforce_client_id=sf.client_id,
        salesforce_client_secret=sf.client_secret,
        salesforce_ca_bundle=Path(sf.ca_bundle_path),
        slack_bot_token=slack.bot_token,
        slack_base_url=slack.base_url,
        slack_alert_channel="C0CSALERTS",
        **extra,
    )


def fast_config(messages_per_second: float = 50.0) -> Config:
    config = load_config()
    slack = config.alerts.slack.model_copy(update={"messages_per_second": messages_per_second})
    return config.model_copy(update={"alerts": config.alerts.model_copy(update={"slack": slack})})


@pytest.fixture
def settings(sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, tmp_path: Path) -> Settings:
    return sandbox_settings(sf_emu, slack_emu, f"sqlite:///{tmp_path / 'hs.db'}")


@pytest.fixture
def make_pipeline(settings: Settings) -> Iterator[Callable[..., Pipeline]]:
    """Build pipelines on one store (like successive cycles of one deployment)."""
    from connectors.salesforce import SalesforceClient

    s = Store(settings.database_url)

    def build(config: Config | None = None, **kwargs: object) -> Pipeline:
        client = SalesforceClient(settings, retry=FAST_RETRY)
        return Pipeline(config or fast_config(), settings, s, salesforce=client, **kwargs)

    yield build
    s.close()


ENV_VARS = (
    "HEALTHSCORE_CONFIG",
    "DATABASE_URL",
    "REDIS_URL",
    "SALESFORCE_INSTANCE_URL",
    "SALESFORCE_TOKEN_URL",
    "SALESFORCE_AUTH_FLOW",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_USERNAME",
    "SALESFORCE_PRIVATE_KEY_FILE",
    "SALESFORCE_CA_BUNDLE",
    "SALESFORCE_API_VERSION",
    "SLACK_BOT_TOKEN",
    "SLACK_ALERT_CHANNEL",
    "SLACK_BASE_URL",
)


@pytest.fixture
def sandbox_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    redis_url: str,
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
) -> dict[str, str]:
    """The environment a deployment would have, pointing at the emulators, in ``tmp_path``.

    The YAML is the packaged example with Slack paced at 50 messages/s (the sandbox allows it).
    """
    from importlib import resources

    import yaml

    data = yaml.safe_load(
        resources.files("healthscore").joinpath("healthscore.example.yaml").read_text("utf-8")
    )
    data.setdefault("alerts", {}).setdefault("slack", {})["messages_per_second"] = 50
    config_path = tmp_path / "healthscore.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {
        "HEALTHSCORE_CONFIG": str(config_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hs.db'}",
        "REDIS_URL": redis_url,
        "SALESFORCE_INSTANCE_URL": sf_emu.base_url,
        "SALESFORCE_TOKEN_URL": sf_emu.token_url,
        "SALESFORCE_CLIENT_ID": sf_emu.client_id,
        "SALESFORCE_CLIENT_SECRET": sf_emu.client_secret,
        "SALESFORCE_CA_BUNDLE": sf_emu.ca_bundle_path,
        "SLACK_BOT_TOKEN": slack_emu.bot_token,
        "SLACK_BASE_URL": slack_emu.base_url,
        "SLACK_ALERT_CHANNEL": "C0CSALERTS",
    }
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    return env


# -- HubSpot: the emulator and pipelines wired to it ----------------------------------------
METRICS = {"hubspot_nps": "nps_score", "hubspot_open_cases": "open_cases"}


@pytest.fixture
def hs_emu() -> Iterator[HubSpotEmulator]:
    from sandbox import HubSpotEmulator

    with HubSpotEmulator(search_per_second=1000, requests_per_10s=10_000) as emu:
        yield emu


def fast_hubspot_client(settings: Settings, retry: RetryPolicy = FAST_RETRY) -> HubSpotClient:
    """A HubSpot client whose retries and quotas never slow a test down."""
    from connectors.hubspot import HubSpotClient
    from healthscore.core.quota import LocalQuota

    return HubSpotClient(
        settings, retry=retry, quota=LocalQuota(1000, 1000), search_quota=LocalQuota(1000, 1000)
    )


def hubspot_record_settings(
    hs_emu: HubSpotEmulator, slack_emu: SlackEmulator, db_path: Path
) -> Settings:
    """HubSpot as the CRM of record (no Salesforce), alerting through the Slack emulator."""
    return Settings(
        database_url=f"sqlite:///{db_path}",
        hubspot_access_token=hs_emu.access_token,
        hubspot_base_url=hs_emu.base_url,
        slack_bot_token=slack_emu.bot_token,
        slack_base_url=slack_emu.base_url,
        slack_alert_channel="C0CSALERTS",
    )


def hubspot_config(**source: object) -> Config:
    config = fast_config()
    hubspot = config.sources.hubspot.model_copy(
        update={"enabled": True, "metrics": METRICS, **source}
    )
    return config.model_copy(
        update={"sources": config.sources.model_copy(update={"hubspot": hubspot})}
    )


@pytest.fixture
def hs_pipeline(
    sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, hs_emu: HubSpotEmulator, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    settings = sandbox_settings(
        sf_emu,
        slack_emu,
        f"sqlite:///{tmp_path / 'hs.db'}",
        hubspot_access_token=hs_emu.access_token,
        hubspot_base_url=hs_emu.base_url,
    )
    store = Store(settings.database_url)

    def build(
        config: Config | None = None,
        *,
        retry: RetryPolicy = FAST_RETRY,
        settings_: Settings = settings,
    ) -> Pipeline:
        from connectors.salesforce import SalesforceClient

        return Pipeline(
            config or hubspot_config(),
            settings_,
            store,
            salesforce=SalesforceClient(settings_, retry=FAST_RETRY),
            hubspot=fast_hubspot_client(settings_, retry),
        )

    yield build
    store.close()
