"""Shared set-up of the actions tests: emulators for every channel, configs with rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actions import Rule
from actions.rule_model import ActionSettings, EmailSettings
from connectors.registry import Settings
from connectors.salesforce import SalesforceClient
from healthscore.config import Config
from healthscore.pipeline.cycle import Pipeline
from sandbox import SalesforceEmulator, SlackEmulator
from sandbox.mandrill import MandrillEmulator
from sandbox.sendgrid import SendGridEmulator
from store import Store
from tests.conftest import FAST_RETRY, fast_config, sandbox_settings

NOW = datetime.now(UTC)
TASK = {
    "task": {
        "subject": "Health: {name} is {grade}",
        "description": "{why}\n{reasons}",
        "due_in": "2d",
        "priority": "High",
    }
}
EMAIL = {"email": {"template": "d-red-checkin", "roles": ["Admin", "Champion"]}}


def config_with(
    *rules: dict[str, Any],
    related: tuple[str, ...] = ("Contact",),
    email: dict[str, Any] | None = None,
    enter_red: bool = True,
) -> Config:
    config = fast_config()
    salesforce = config.sources.salesforce.model_copy(update={"related": list(related)})
    settings = ActionSettings(email=EmailSettings.model_validate(email or {}))
    alerts = config.alerts.model_copy(update={"enter_red": enter_red})
    return config.model_copy(
        update={
            "sources": config.sources.model_copy(update={"salesforce": salesforce}),
            "rules": [Rule.model_validate(r) for r in rules],
            "actions": settings,
            "alerts": alerts,
        }
    )


@dataclass
class World:
    sf: SalesforceEmulator
    slack: SlackEmulator
    sendgrid: SendGridEmulator
    mandrill: MandrillEmulator
    settings: Settings
    store: Store

    def pipeline(self, config: Config, **kwargs: Any) -> Pipeline:
        return Pipeline(
            config,
            self.settings,
            self.store,
            salesforce=SalesforceClient(self.settings, retry=FAST_RETRY),
            **kwargs,
        )

    def all_requests(self) -> int:
        return sum(len(e.requests()) for e in (self.sf, self.slack, self.sendgrid, self.mandrill))


@pytest.fixture
def world(sf_emu: SalesforceEmulator, slack_emu: SlackEmulator, tmp_path: Path) -> Iterator[World]:
    with SendGridEmulator() as sendgrid, MandrillEmulator() as mandrill:
        settings = sandbox_settings(
            sf_emu,
            slack_emu,
            f"sqlite:///{tmp_path / 'hs.db'}",
            sendgrid_api_key=sendgrid.api_key,
            sendgrid_base_url=sendgrid.base_url,
            mandrill_api_key=mandrill.api_key,
            mandrill_base_url=mandrill.base_url,
        )
        store = Store(settings.database_url)
        yield World(sf_emu, slack_emu, sendgrid, mandrill, settings, store)
        store.close()


TASK_UPSERTS = r"/composite/sobjects/Task/Healthscore_Key__c$"


def task_upsert_requests(sf: SalesforceEmulator) -> list[Any]:
    """The sObject Collections upserts of tasks Salesforce answered (200 tasks a request)."""
    return [r for r in sf.requests("PATCH", TASK_UPSERTS) if r.status < 300]


def task_upserts(sf: SalesforceEmulator) -> list[str]:
    """The key of every task upserted, once per time it was sent (a record of an answered
    Collections upsert): a key twice here was written twice."""
    return [
        str(record["Healthscore_Key__c"])
        for r in task_upsert_requests(sf)
        for record in (r.body or {}).get("records", [])
    ]


MakePipeline = Callable[..., Pipeline]
