"""CSM tasks in Salesforce, created idempotently on the intent's key.

``PATCH /sobjects/Task/Healthscore_Key__c/{key}`` (simple-salesforce's ``Task.upsert``) with
``WhatId`` = the account, ``OwnerId`` = the account's owner (read from the Account),
subject/description from the rule's template and ``ActivityDate`` = due date. The external-id
field is unique, so a retry after an unknown outcome updates the same Task; before a retry the
task is looked up by its key (SOQL), so an accepted-but-unrecorded create is reconciled without
writing it again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from simple_salesforce import format_soql

from connectors.outbound import task_fields
from healthscore.core.errors import FatalError
from store.models import ActionLog

if TYPE_CHECKING:
    from connectors.salesforce.client import SalesforceClient

log = logging.getLogger(__name__)


class SalesforceTasks:
    kind = "task"
    reconcilable = True

    def __init__(self, client: SalesforceClient, key_field: str = "Healthscore_Key__c") -> None:
        self.client = client
        self.key_field = key_field
        self._owners: dict[str, str] = {}
        self.created = 0

    def prepare(self, actions: list[ActionLog]) -> None:
        """Read the owners of every account about to get a task, 200 ids a query."""
        ids = sorted({a.account_id for a in actions} - set(self._owners))
        for start in range(0, len(ids), 200):
            soql = format_soql(
                "SELECT Id, OwnerId FROM Account WHERE Id IN {}", ids[start : start + 200]
            )
            for page in self.client.query_pages(soql):
                self._owners.update({str(r["Id"]): str(r["OwnerId"]) for r in page})

    def _owner(self, account_id: str) -> str:
        if account_id not in self._owners:
            soql = format_soql("SELECT Id, OwnerId FROM Account WHERE Id = {}", account_id)
            rows = self.client.call(
                lambda sf: sf.query(soql)["records"], what=f"owner of {account_id}"
            )
            if not rows:
                raise FatalError(f"Salesforce Account {account_id} not found (deleted?)")
            self._owners[account_id] = str(rows[0]["OwnerId"])
        return self._owners[account_id]

    def find(self, action: ActionLog) -> str | None:
        soql = format_soql(f"SELECT Id FROM Task WHERE {self.key_field} = {{}}", action.key)
        rows = self.client.call(
            lambda sf: sf.query(soql)["records"], what=f"Task with key {action.key}"
        )
        return str(rows[0]["Id"]) if rows else None

    def send(self, action: ActionLog) -> str:
        subject, description, due, priority = task_fields(action)
        body = {
            "WhatId": action.account_id,
            "OwnerId": self._owner(action.account_id),
            "Subject": subject,
            "Description": description,
            "ActivityDate": due,
            "Priority": priority,
        }
        resp = self.client.call(
            lambda sf: sf.Task.upsert(f"{self.key_field}/{action.key}", body, raw_response=True),
            what=f"upsert Task {action.key}",
        )
        data = resp.json() if resp.content else {}
        task_id = data.get("id") or self.find(action) or "updated"
        self.created += 1
        return str(task_id)
