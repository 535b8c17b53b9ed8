"""Shared set-up of the Zendesk tests: the emulator, a Salesforce org, a wired pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.registry import Settings
from connectors.salesforce import SalesforceClient
from connectors.zendesk import ZendeskClient
from healthscore.config import Config
from healthscore.core.retry import RetryPolicy
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, ZendeskEmulator
from store import Store
from tests.conftest import FAST_RETRY, fast_config


def zendesk_config(**source: Any) -> Config:
    config = fast_config()
    zendesk = config.sources.zendesk.model_copy(update={"enabled": True, **source})
    return config.model_copy(
        update={"sources": config.sources.model_copy(update={"zendesk": zendesk})}
    )


def zendesk_settings(
    sf: SalesforceEmulator, zd: ZendeskEmulator, db: str, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": db,
        "redis_url": "",
        "salesforce_instance_url": sf.base_url,
        "salesforce_token_url": sf.token_url,
        "salesforce_client_id": sf.client_id,
        "salesforce_client_secret": sf.client_secret,
        "salesforce_ca_bundle": Path(sf.ca_bundle_path),
        "zendesk_email": zd.email,
        "zendesk_api_token": zd.api_token,
        "zendesk_base_url": zd.api_url,
    }
    return Settings(**{**values, **extra})


class PipelineFactory:
    """Pipelines on one store (successive runs of one deployment)."""

    def __init__(self, sf: SalesforceEmulator, zd: ZendeskEmulator, tmp: Path) -> None:
        self.sf, self.zd = sf, zd
        self.settings = zendesk_settings(sf, zd, f"sqlite:///{tmp / 'zd.db'}")
        self.store = Store(self.settings.database_url)

    def client(
        self, retry: RetryPolicy = FAST_RETRY, settings: Settings | None = None, **kwargs: Any
    ) -> ZendeskClient:
        return ZendeskClient(
            settings or self.settings, retry=retry, limit_scale=self.zd.limit_scale, **kwargs
        )

    def __call__(
        self,
        config: Config | None = None,
        *,
        client: ZendeskClient | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Pipeline:
        extra: dict[str, Any] = {"clock": clock} if clock else {}
        return Pipeline(
            config or zendesk_config(),
            self.settings,
            self.store,
            salesforce=SalesforceClient(self.settings, retry=FAST_RETRY),
            zendesk=client or self.client(),
            **extra,
        )

    def close(self) -> None:
        self.store.close()
