"""CSM tasks in Salesforce, created idempotently on the intent's key — up to 200 a request.

One sObject Collections upsert on the external-id field per batch (``PATCH
/composite/sobjects/Task/Healthscore_Key__c``, ``allOrNone: false``): Salesforce answers one
SaveResult per record, in order, so a record it refuses (an inactive owner, a validation rule)
fails alone while the others are created. ``WhatId`` = the account, ``OwnerId`` = the
account's owner (read from the Accounts, 200 ids a query, kept for the client's life),
subject/description from the rule's template and ``ActivityDate`` = the due date.

The external-id field is unique, so a re-sent upsert updates the same Task — yet an upsert
whose answer was lost (a timeout, a dropped connection) is not re-sent blindly: its tasks come
back as ``OutcomeUnknown`` and are looked up by key first (SOQL ``IN``, ``LOOKUP_KEYS`` keys a
query); only those not found are sent again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from connectors.outbound import Outcome, OutcomeUnknown, chunks, task_fields
from connectors.salesforce.client import vendor_errors
from connectors.salesforce.settings import REQUEST_TIMEOUT
from healthscore.core.errors import ConfigError, FatalError, RetriableError
from store.models import ActionLog

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

    from connectors.salesforce.client import SalesforceClient

log = logging.getLogger(__name__)

BATCH = 200  # sObject Collections: at most 200 records a request
LOOKUP_KEYS = 100  # keys per look-up query: ~75 characters each keeps the GET URL short
# per-record codes worth another try later (the record was not the problem)
TRANSIENT = {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"}
# request-level codes that name our setup, not one task: the field or object is missing
SETUP_CODES = {"NOT_FOUND", "INVALID_FIELD", "INVALID_TYPE", "INVALID_FIELD_FOR_INSERT_UPDATE"}


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not reach Salesforce (refused, DNS, connect
    timeout): safe to send again at once, unlike a read timeout or a dropped answer."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return True  # the handshake failed: nothing was sent (classify names the TLS error)
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(
        reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    )


class SalesforceTasks:
    kind = "task"
    reconcilable = True
    batch_size = BATCH

    def __init__(self, client: SalesforceClient, key_field: str = "Healthscore_Key__c") -> None:
        self.client = client
        self.key_field = key_field
        self._owners: dict[str, str] = {}
        self.created = 0

    # -- owners ------------------------------------------------------------------------------
    def prepare(self, actions: list[ActionLog]) -> None:
        """Read the owners of every account about to get a task, 200 ids a query."""
        self._read_owners({a.account_id for a in actions})

    def _read_owners(self, account_ids: set[str]) -> None:
        ids = sorted(account_ids - set(self._owners))
        for start in range(0, len(ids), 200):
            soql = format_soql(
                "SELECT Id, OwnerId FROM Account WHERE Id IN {}", ids[start : start + 200]
            )
            for page in self.client.query_pages(soql):
                self._owners.update({str(r["Id"]): str(r["OwnerId"]) for r in page})

    def _owner(self, account_id: str) -> str:
        if account_id not in self._owners:
            self._read_owners({account_id})
        if account_id not in self._owners:
            raise FatalError(f"Salesforce Account {account_id} not found (deleted?)")
        return self._owners[account_id]

    # -- look-up by key ----------------------------------------------------------------------
    def find_many(self, actions: list[ActionLog]) -> dict[str, str | None]:
        """Each intent's Task id by its key, or None when Salesforce has no such Task (one
        query per ``LOOKUP_KEYS`` keys)."""
        found: dict[str, str | None] = {a.key: None for a in actions}
        for part in chunks(sorted(found), LOOKUP_KEYS):
            soql = format_soql(
                f"SELECT Id, {self.key_field} FROM Task WHERE {self.key_field} IN {{}}", part
            )
            for page in self.client.query_pages(soql):
                found.update({str(r[self.key_field]): str(r["Id"]) for r in page})
        return found

    def find(self, action: ActionLog) -> str | None:
        return self.find_many([action]).get(action.key)

    # -- delivery ----------------------------------------------------------------------------
    def send_batch(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        """Upsert up to ``BATCH`` tasks in one request; an outcome per key."""
        out: dict[str, Outcome] = {}
        records: list[dict[str, Any]] = []
        sent: list[ActionLog] = []
        for action in actions:
            try:
                owner = self._owner(action.account_id)
            except FatalError as exc:  # this account is gone: its task alone fails
                out[action.key] = exc
                continue
            subject, description, due, priority = task_fields(action)
            records.append(
                {
                    "attributes": {"type": "Task"},
                    self.key_field: action.key,
                    "WhatId": action.account_id,
                    "OwnerId": owner,
                    "Subject": subject,
                    "Description": description,
                    "ActivityDate": due,
                    "Priority": priority,
                }
            )
            sent.append(action)
        if not records:
            return out
        results = self._upsert(records)
        if not isinstance(results, list) or len(results) != len(records):
            raise OutcomeUnknown(
                f"Salesforce Task upsert answered {len(results or [])} results "
                f"for {len(records)} records"
            )
        for action, result in zip(sent, results, strict=True):
            out[action.key] = self._outcome(action, result)
        return out

    def _outcome(self, action: ActionLog, result: dict[str, Any]) -> Outcome:
        if result.get("success"):
            self.created += 1
            return str(result.get("id") or "upserted")
        errors = [e for e in result.get("errors") or [] if isinstance(e, dict)]
        text = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
        if {e.get("statusCode") for e in errors} & TRANSIENT:
            return RetriableError(f"Salesforce Task {action.key}: {text}")
        return FatalError(f"Salesforce refused Task {action.key}: {text or 'no reason given'}")

    def _upsert(self, records: list[dict[str, Any]]) -> Any:
        path = f"composite/sobjects/Task/{self.key_field}"
        body = {"allOrNone": False, "records": records}
        what = f"Task upsert ({len(records)} records)"

        def once(sf: Salesforce) -> Any:
            try:
                return sf.restful(path, method="PATCH", json=body, timeout=REQUEST_TIMEOUT)
            except requests.exceptions.RequestException as exc:
                if never_sent(exc):
                    raise  # the client retries it: nothing reached Salesforce
                raise OutcomeUnknown(
                    f"Salesforce {what}: {exc.__class__.__name__}: {exc}"
                ) from None
            except SalesforceExpiredSession:
                raise  # the client logs in again and repeats it (401: nothing was applied)
            except SalesforceError as exc:
                setup = _setup_error(exc, self.key_field)
                if setup is not None:
                    raise setup from None
                raise

        return self.client.call(once, what=f"Salesforce {what}")


def _setup_error(exc: SalesforceError, key_field: str) -> ConfigError | None:
    """A request-level refusal that names our setup (the key field or Task itself missing or
    not writable): every task waits for the fix instead of failing one by one."""
    errors = vendor_errors(exc.content)
    code = str(errors[0].get("errorCode", "")) if errors else ""
    if exc.status in (400, 404) and code in SETUP_CODES:
        message = errors[0].get("message", "")
        return ConfigError(
            f"Salesforce refused the Task upsert: {code} {message} — does Task have the "
            f"external-id field {key_field}? (`healthscore setup-crm`)"
        )
    return None
