"""CSM tasks in HubSpot, created once per intent key — up to 100 tasks a request.

One batch create per batch of 100 (``POST /crm/v3/objects/tasks/batch/create``), each task
carrying its task→company association inline (HUBSPOT_DEFINED type 192) and its intent key
in the ``healthscore_key`` task property (unique values); ``hubspot_owner_id`` = the company's
owner. The task and its association are written together, so there is no second request. HubSpot
refuses a batch whole when one input is invalid (a 400, nothing written — e.g. a company that
is gone): the batch is halved until the bad input stands alone, so only that task fails.

Exactly once: a task is never created twice because its key is unique. An answer that was lost
(a timeout, a dropped connection) leaves its tasks ``OutcomeUnknown``; they are looked up by a
CRM search on the key (``IN``, 100 keys a search) first and only the rest go again. If one was
written after all, HubSpot answers the create with a 409 naming the key's task: that task is
recorded as delivered and the rest of the batch goes on in one more request.
"""

from __future__ import annotations

import logging
import re
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

BATCH = 100  # batch create (and batch association) inputs a request
TASK_TO_COMPANY = 192  # the HUBSPOT_DEFINED task→company association type
_EXISTING = re.compile(r"Existing ID: (\d+)")
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
        """Each intent's task id by a search on its key, or None when no task has the key.
        A found task is associated with its company again (idempotent; a task created by an
        earlier version may have been written without it): one HubSpot would not associate
        is left out (tried again next run)."""
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
        """Create up to ``BATCH`` tasks, each with its company association, in one request."""
        try:
            return self._create(actions)
        except AuthError:
            raise
        except FatalError as exc:
            existing = _existing(str(exc), [a.key for a in actions])
            if existing is not None:  # written before, its answer lost: delivered once
                key, task_id = existing
                rest = [a for a in actions if a.key != key]
                out: dict[str, Outcome] = {key: task_id}
                if rest:
                    try:
                        out.update(self.send_batch(rest))
                    except Exception as again:  # the rest keep what happened to them
                        out.update({a.key: again for a in rest})
                return out
            if _conflict(str(exc)) and len(actions) == 1:  # a 409 naming no task: search
                found = self.find_many(actions).get(actions[0].key)
                if found is not None:
                    return {actions[0].key: found}
                raise
            if self.key_property in str(exc) and not _conflict(str(exc)):
                raise ConfigError(
                    f"{exc} — the task property {self.key_property} must exist with unique "
                    f"values (`healthscore setup-crm`)"
                ) from None
            if len(actions) == 1:
                raise
            return self._halves(actions)

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

    def _create(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        """One batch create; each input's outcome, matched by its key property (HubSpot does
        not keep the inputs' order)."""
        inputs = [
            {
                "properties": self._properties(a),
                "associations": [
                    {
                        "to": {"id": _company(a)},
                        "types": [
                            {
                                "associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": TASK_TO_COMPANY,
                            }
                        ],
                    }
                ],
            }
            for a in actions
        ]
        tasks_api = self.client.sdk.crm.objects.tasks.batch_api
        body = self.client.call_json(
            f"create {len(inputs)} tasks",
            _write(tasks_api.create),
            batch_input_simple_public_object_batch_input_for_create={"inputs": inputs},
        )
        ids: dict[str, str] = {}
        for result in body.get("results") or []:
            key = (result.get("properties") or {}).get(self.key_property)
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
        self.created += sum(isinstance(o, str) for o in out.values())
        return out

    def _associate(self, tasks: dict[str, tuple[ActionLog, str]]) -> dict[str, Exception]:
        """Associate each found task with its company (idempotent: a task created with its
        association inline already has it), ``BATCH`` pairs a request; the keys HubSpot
        refused (e.g. the company is gone), each with why."""
        refused: dict[str, Exception] = {}
        batch_api = self.client.sdk.crm.associations.v4.batch_api
        for part in chunks(list(tasks.items()), BATCH):
            pairs = {key: (task_id, _company(action)) for key, (action, task_id) in part}
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


def _company(action: ActionLog) -> str:
    return str(action.payload.get("company_id") or action.account_id)


def _conflict(message: str) -> bool:
    """A 409: an input's unique value (the key) is already another task's."""
    return " 409 " in message


def _existing(message: str, keys: list[str]) -> tuple[str, str] | None:
    """The (key, task id) a 409 names when one of ``keys`` is already a task's; else None."""
    found = _EXISTING.search(message)
    if not _conflict(message) or found is None:
        return None
    named = [k for k in keys if k.lower() in message.lower()]
    return (named[0], found.group(1)) if len(named) == 1 else None


def ensure_task_key_property(client: HubSpotClient, name: str = "healthscore_key") -> bool:
    """Create the task property holding the idempotency key (unique values); True if created.

    An existing property without unique values cannot keep a task once: an error names it.
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
                f"healthscore keeps each task once by it — use another name "
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
