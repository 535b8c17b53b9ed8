"""CSM tasks in HubSpot, created idempotently on the intent's key — up to 100 a request.

One batch upsert on the ``healthscore_key`` task property (unique values) per batch of 100,
then one v4 batch of default task→company associations for the tasks it wrote (idempotent
too); ``hubspot_owner_id`` = the company's owner. HubSpot refuses a batch whole when one input
is invalid (a 400, nothing written): the batch is halved until the bad input stands alone, so
only that task fails.

An upsert whose answer was lost (a timeout, a dropped connection) is not re-sent blindly: its
tasks come back as ``OutcomeUnknown`` and are looked up by a CRM search on the key (``IN``,
100 keys a search) first — found ones are associated (the crash may have come between the two
writes) and recorded; only the rest go again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import urllib3

from connectors.outbound import Outcome, OutcomeUnknown, chunks, task_fields
from healthscore.core.errors import AuthError, ConfigError, FatalError
from store.models import ActionLog

if TYPE_CHECKING:
    from connectors.hubspot.client import HubSpotClient

log = logging.getLogger(__name__)

BATCH = 100  # batch upsert and batch association inputs a request
LOOKUP = 100  # keys per search (an IN filter); a search page holds up to 200


def _write(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with an answer lost after the request left (a dropped connection, a read
    timeout) raised as ``OutcomeUnknown`` — never retried blindly; a connection that never
    opened stays the client's to retry."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
            raise OutcomeUnknown(f"HubSpot: {exc.__class__.__name__}: {exc}") from None

    return call


class HubSpotTasks:
    kind = "task"
    reconcilable = True
    batch_size = BATCH

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

    # -- look-up by key ----------------------------------------------------------------------
    def find_many(self, actions: list[ActionLog]) -> dict[str, str | None]:
        """Each intent's task id by a search on its key (associated with its company again,
        in case the crash came between the two writes), or None when no task has the key; a
        task HubSpot would not associate is left out (tried again next run)."""
        by_key = {a.key: a for a in actions}
        found: dict[str, str] = {}
        search_api = self.client.sdk.crm.objects.tasks.search_api
        for part in chunks(sorted(by_key), LOOKUP):
            search = {
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": self.key_property, "operator": "IN", "values": part}
                        ]
                    }
                ],
                "properties": [self.key_property],
                "limit": LOOKUP,
            }
            self.client.search_quota.acquire()
            body = self.client.call_json(
                "search tasks by key", search_api.do_search, public_object_search_request=search
            )
            for hit in body.get("results") or []:
                key = (hit.get("properties") or {}).get(self.key_property)
                if key in by_key:
                    found[key] = str(hit["id"])
        refused = self._associate({k: (by_key[k], t) for k, t in found.items()})
        for key, why in refused.items():
            log.warning("task %s found but not associated yet: %s", key, why)
        return {k: found.get(k) for k in by_key if k not in refused}

    def find(self, action: ActionLog) -> str | None:
        return self.find_many([action]).get(action.key)

    # -- delivery ----------------------------------------------------------------------------
    def send_batch(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        """Upsert up to ``BATCH`` tasks in one request, then associate them in one more."""
        try:
            written = self._upsert(actions)
        except AuthError:
            raise
        except FatalError as exc:
            if self.key_property in str(exc):
                raise ConfigError(
                    f"{exc} — the task property {self.key_property} must exist with unique "
                    f"values (`healthscore setup-crm`)"
                ) from None
            if len(actions) == 1:
                raise
            return self._halves(actions)
        out: dict[str, Outcome] = {}
        tasks: dict[str, tuple[ActionLog, str]] = {}  # written: to associate with its company
        for action in actions:
            outcome = written[action.key]
            if isinstance(outcome, str):
                tasks[action.key] = (action, outcome)
            else:
                out[action.key] = outcome
        try:
            refused = self._associate(tasks)
        except Exception as exc:  # the tasks exist: the reconciler's search associates them
            return out | {
                k: OutcomeUnknown(f"HubSpot task {t} written; association pending: {exc}")
                for k, (_, t) in tasks.items()
            }
        self.created += len(tasks) - len(refused)
        return out | {k: refused.get(k) or t for k, (_, t) in tasks.items()}

    def _halves(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        """HubSpot refused the batch whole (nothing written): each half on its own, until the
        input it refused stands alone; a half that fails otherwise keeps its error."""
        mid = len(actions) // 2
        out: dict[str, Outcome] = {}
        for half in (actions[:mid], actions[mid:]):
            try:
                out.update(self.send_batch(half))
            except Exception as exc:  # each item keeps what happened to it
                out.update({a.key: exc for a in half})
        return out

    def _properties(self, action: ActionLog) -> dict[str, str]:
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
            self.key_property: action.key,
        }
        owner = self.owners.get(str(action.payload.get("owner_email") or "").lower())
        if owner:
            props["hubspot_owner_id"] = owner
        return props

    def _upsert(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        """One batch upsert; each input's outcome, matched by its ``objectWriteTraceId``
        (HubSpot does not keep the inputs' order) or the key property."""
        inputs = [
            {
                "idProperty": self.key_property,
                "id": a.key,
                "objectWriteTraceId": a.key,
                "properties": self._properties(a),
            }
            for a in actions
        ]
        tasks_api = self.client.sdk.crm.objects.tasks.batch_api
        body = self.client.call_json(
            f"upsert {len(inputs)} tasks",
            _write(tasks_api.upsert),
            batch_input_simple_public_object_batch_input_upsert={"inputs": inputs},
        )
        ids: dict[str, str] = {}
        for result in body.get("results") or []:
            key = result.get("objectWriteTraceId") or (result.get("properties") or {}).get(
                self.key_property
            )
            if key and result.get("id"):
                ids[str(key)] = str(result["id"])
        errors = "; ".join(str(e.get("message")) for e in body.get("errors") or [])
        out: dict[str, Outcome] = {}
        for a in actions:
            if a.key in ids:
                out[a.key] = ids[a.key]
            elif errors:
                out[a.key] = FatalError(f"HubSpot refused task {a.key}: {errors}")
            else:
                out[a.key] = OutcomeUnknown(f"HubSpot's answer does not name task {a.key}")
        return out

    def _associate(self, tasks: dict[str, tuple[ActionLog, str]]) -> dict[str, Exception]:
        """Associate each task with its company, ``BATCH`` pairs a request; the keys HubSpot
        refused (e.g. the company is gone), each with why."""
        refused: dict[str, Exception] = {}
        batch_api = self.client.sdk.crm.associations.v4.batch_api
        for part in chunks(list(tasks.items()), BATCH):
            pairs = {
                key: (task_id, str(action.payload.get("company_id") or action.account_id))
                for key, (action, task_id) in part
            }
            body = self.client.call_json(
                f"associate {len(pairs)} tasks with companies",
                batch_api.create_default,
                from_object_type="tasks",
                to_object_type="companies",
                batch_input_public_default_association_multi_post={
                    "inputs": [{"from": {"id": t}, "to": {"id": c}} for t, c in pairs.values()]
                },
            )
            made = {
                str((r.get(end) or {}).get("id"))
                for r in body.get("results") or []
                for end in ("from", "to")
            }
            errors = "; ".join(str(e.get("message")) for e in body.get("errors") or [])
            for key, (task_id, company) in pairs.items():
                if task_id not in made:
                    refused[key] = FatalError(
                        f"HubSpot task {task_id} written but not associated with company "
                        f"{company}: {errors or 'not in the answer'}"
                    )
        return refused


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
