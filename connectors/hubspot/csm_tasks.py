"""CSM tasks in HubSpot, created idempotently on the intent's key.

A batch upsert on the ``healthscore_key`` task property (unique values), then the default
task→company association (a PUT: idempotent too); ``hubspot_owner_id`` = the company's owner.
Before a retry the task is looked up by a CRM search on the property, so an
accepted-but-unrecorded create is reconciled without writing it again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
)

from connectors.outbound import task_fields
from healthscore.core.errors import FatalError
from store.models import ActionLog

if TYPE_CHECKING:
    from connectors.hubspot.client import HubSpotClient

log = logging.getLogger(__name__)


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
