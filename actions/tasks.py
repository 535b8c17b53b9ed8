"""CSM tasks in the CRM of record, created idempotently on the intent's key.

- Salesforce: ``PATCH /sobjects/Task/Healthscore_Key__c/{key}`` (simple-salesforce's
  ``Task.upsert``) with ``WhatId`` = the account, ``OwnerId`` = the account's owner (read from
  the Account), subject/description from the rule's template and ``ActivityDate`` = due date.
  The external-id field is unique, so a retry after an unknown outcome updates the same Task.
- HubSpot: a batch upsert on the ``healthscore_key`` task property (unique values), then the
  default task→company association (a PUT: idempotent too); ``hubspot_owner_id`` = the
  company's owner.

Before a retry the task is looked up by its key (SOQL, or the CRM search on the property), so
an accepted-but-unrecorded create is reconciled without writing it again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
)
from simple_salesforce import format_soql

from healthscore.core.durations import parse_duration
from healthscore.core.errors import FatalError
from store.models import ActionLog

if TYPE_CHECKING:  # the connectors import the config, which imports the rule model
    from connectors.hubspot import HubSpotClient
    from connectors.salesforce import SalesforceClient

log = logging.getLogger(__name__)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, payload: dict[str, Any]) -> str:
    """Fill a rule's template (placeholders were checked at load) from an intent's payload."""
    values = _Blank({k: v for k, v in payload.items() if v is not None})
    if isinstance(payload.get("reasons"), list):
        values["reasons"] = "; ".join(map(str, payload["reasons"]))
    if isinstance(payload.get("score"), float):
        values["score"] = f"{payload['score']:.0f}"
    return template.format_map(values)


def task_fields(action: ActionLog) -> tuple[str, str, str, str]:
    """(subject, description, due date, priority) of a task intent."""
    spec = action.payload.get("task") or {}
    subject = render(str(spec.get("subject", "{name}")), action.payload)[:255]
    description = render(str(spec.get("description", "")), action.payload)[:32000]
    due = action.created_at + parse_duration(spec.get("due_in", "3d"))
    return subject, description, due.date().isoformat(), str(spec.get("priority", "Normal"))


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


class HubSpotTasks:
    kind = "task"
    reconcilable = True

    def __init__(
        self,
        client: HubSpotClient,
        key_property: str = "healthscore_key",
        owners: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.key_property = key_property
        self.owners = owners or {}  # owner email → HubSpot owner id
        self.created = 0

    def find(self, action: ActionLog) -> str | None:
        search = PublicObjectSearchRequest(
            filter_groups=[
                {
                    "filters": [
                        {"propertyName": self.key_property, "operator": "EQ", "value": action.key}
                    ]
                }
            ],
            properties=[self.key_property],
            limit=1,
        )
        self.client.search_quota.acquire()
        found = self.client.call(
            "search tasks by key",
            self.client.sdk.crm.objects.tasks.search_api.do_search,
            public_object_search_request=search,
        )
        if not found.results:
            return None
        task_id = str(found.results[0].id)
        self._associate(action, task_id)  # the crash may have come between the two writes
        return task_id

    def _associate(self, action: ActionLog, task_id: str) -> None:
        company = action.payload.get("company_id") or action.account_id
        self.client.call(
            "associate task with company",
            self.client.sdk.crm.associations.v4.basic_api.create_default,
            from_object_type="tasks",
            from_object_id=task_id,
            to_object_type="companies",
            to_object_id=str(company),
        )

    def send(self, action: ActionLog) -> str:
        subject, description, due, priority = task_fields(action)
        props = {
            "hs_task_subject": subject,
            "hs_task_body": description,
            "hs_timestamp": datetime.fromisoformat(due)
            .replace(tzinfo=action.created_at.tzinfo)
            .isoformat()
            .replace("+00:00", "Z"),
            "hs_task_priority": {"High": "HIGH", "Low": "LOW"}.get(priority, "MEDIUM"),
            "hs_task_type": "TODO",
        }
        owner = self.owners.get(str(action.payload.get("owner_email") or "").lower())
        if owner:
            props["hubspot_owner_id"] = owner
        batch = BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=action.key, id_property=self.key_property, properties=props
                )
            ]
        )
        tasks_api = self.client.sdk.crm.objects.tasks.batch_api
        result = self.client.call(
            "upsert task",
            tasks_api.upsert,
            batch_input_simple_public_object_batch_input_upsert=batch,
        )
        task_id = str(result.results[0].id)
        self._associate(action, task_id)
        self.created += 1
        return task_id


def ensure_task_key_property(client: HubSpotClient, name: str = "healthscore_key") -> bool:
    """Create the task property holding the idempotency key (unique values); True if created.

    An existing property without unique values cannot be upserted on: an error names it.
    """
    core = client.sdk.crm.properties.core_api
    existing = {
        p.name: p
        for p in client.call("read task properties", core.get_all, object_type="tasks").results
        or []
    }
    have = existing.get(name)
    if have is not None:
        if not getattr(have, "has_unique_value", False):
            raise FatalError(
                f"HubSpot task property {name} exists without unique values; "
                f"healthscore upserts tasks on it — use another name "
                f"(actions.hubspot_task_key_property)"
            )
        return False
    groups = client.sdk.crm.properties.groups_api
    group = next(
        iter(
            g.name
            for g in client.call(
                "read task property groups", groups.get_all, object_type="tasks"
            ).results
            or []
        ),
        "taskinformation",
    )
    client.call(
        "create task property",
        core.create,
        object_type="tasks",
        property_create={
            "name": name,
            "label": "Healthscore key",
            "groupName": group,
            "type": "string",
            "fieldType": "text",
            "hasUniqueValue": True,
            "description": "idempotency key of the healthscore action that created the task",
        },
    )
    return True
