"""SalesforceEmulator: Salesforce REST v59.0 over HTTPS for simple-salesforce and httpx.

Serves the OAuth token endpoint, SOQL query/queryMore/queryAll, describe, sObject Collections
update, create and upsert by external id (:mod:`sandbox.salesforce_upserts`), single-record
GET/POST/PATCH/DELETE, upsert and GET by external id (:mod:`sandbox.salesforce_records`),
Bulk API 2.0 query jobs (:mod:`sandbox.salesforce_bulk`) and limits, with Salesforce's status
codes, error arrays and ``Sforce-Limit-Info`` header. Objects: Account, User, Contact,
Opportunity, Case, Task, Event (:mod:`sandbox.salesforce_schema`).
See /work/shared/api-specs/salesforce.md.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sandbox.faults import Fault
from sandbox.salesforce_bulk import BulkQueryJobs
from sandbox.salesforce_errors import (
    ApiError,
    error_response,
    invalid_session,
    not_found,
    request_limit_exceeded,
    server_unavailable,
)
from sandbox.salesforce_oauth import TokenIssuer
from sandbox.salesforce_query import QueryEngine, batch_size_hint
from sandbox.salesforce_records import RecordRoutes
from sandbox.salesforce_store import RecordStore
from sandbox.salesforce_writes import InjectedFailures, create_collection, update_collection
from sandbox.server import EmulatorServer, route
from sandbox.synthetic import SyntheticOrg
from sandbox.tls import SandboxCA
from sandbox.wire import Request, Response

_V = r"/services/data/v(?P<version>\d+\.\d)"
_API_PATH = re.compile(r"/services/data/v\d+\.\d(?:/|$)")
_ID = r"(?P<id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})"
_JOB = _V + r"/jobs/query/" + _ID
#: SyntheticOrg pseudo-fields resolved by ``seed()``: index -> reference field per object
_ACCOUNT_FIELD = {
    "Contact": "AccountId",
    "Opportunity": "AccountId",
    "Case": "AccountId",
    "Task": "WhatId",
    "Event": "WhatId",
}
_CONTACT_FIELD = {"Case": "ContactId", "Task": "WhoId", "Event": "WhoId"}
_RELATED_ORDER = (
    ("Contact", "contacts"),
    ("Opportunity", "opportunities"),
    ("Case", "cases"),
    ("Task", "tasks"),
    ("Event", "events"),
)


class SalesforceEmulator(RecordRoutes, EmulatorServer):
    """HTTPS-only Salesforce org emulator (creates its own :class:`SandboxCA` unless given one)."""

    def __init__(
        self,
        *,
        ca: SandboxCA | None = None,
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",
        api_limit: int = 15000,
        page_size: int = 2000,
        api_version: str = "59.0",
        jwt_public_key: str | bytes | None = None,
        clock: Callable[[], datetime] | None = None,
        bulk_polls: int = 1,
        bulk_job_limit: int = 10_000,
    ) -> None:
        self.ca = ca if ca is not None else SandboxCA()
        super().__init__(tls=self.ca)
        self.api_limit = api_limit
        self.page_size = page_size
        self.api_version = api_version
        self.write_history: list[tuple[str, dict[str, Any]]] = []
        self._store = RecordStore(clock)
        self._engine = QueryEngine(self._store)
        self._oauth = TokenIssuer(
            client_id=client_id, client_secret=client_secret, jwt_public_key=jwt_public_key
        )
        self._failures = InjectedFailures()
        self._usage_lock = threading.Lock()
        self._api_used = 0
        self._seeded: dict[str, list[str]] = {}
        #: Bulk API 2.0 query jobs: ``bulk.polls_to_complete``, ``bulk.fail_next()``, ``bulk.jobs``
        self.bulk = BulkQueryJobs(
            self._engine,
            self._store.now,
            polls_to_complete=bulk_polls,
            job_limit=bulk_job_limit,
        )

    # ------------------------------------------------------------------ urls
    @property
    def ca_bundle_path(self) -> str:
        return self.ca.ca_bundle_path

    @property
    def client_id(self) -> str:
        return self._oauth.client_id

    @property
    def client_secret(self) -> str:
        return self._oauth.client_secret

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/services/oauth2/token"

    # ------------------------------------------------------------------ data API (no HTTP)
    def insert(self, sobject: str, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert records; returns their 18-character ids (``001SB...`` / ``005SB...``)."""
        return self._store.insert(sobject, records)

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Set fields directly (no validation) and bump SystemModstamp/LastModifiedDate."""
        self._store.update(sobject, record_id, fields)

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft-delete (IsDeleted=True, visible to queryAll only)."""
        self._store.delete(sobject, record_id)

    def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        return self._store.record(sobject, record_id)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return self._store.records(sobject)

    def seed(self, org: SyntheticOrg) -> list[str]:
        """Insert the org's users, accounts and related records; returns the account ids.

        Pseudo-fields of the synthetic records are resolved to real references: ``OwnerEmail``
        -> ``OwnerId``; ``AccountIndex`` (index into ``org.accounts``) -> ``AccountId``
        (Contact, Opportunity, Case) or ``WhatId`` (Task, Event); ``ContactIndex`` (index into
        ``org.contacts``) -> ``ContactId`` (Case) or ``WhoId`` (Task, Event).  The ids of
        everything inserted by the last call are in :attr:`seeded`.
        """
        with self._store.lock:
            user_ids = self.insert("User", org.users)
            by_email = {u["Email"].lower(): uid for u, uid in zip(org.users, user_ids, strict=True)}
            accounts = [self._resolve(a, by_email, [], [], "Account") for a in org.accounts]
            account_ids = self.insert("Account", accounts)
            seeded = {"User": user_ids, "Account": account_ids}
            contact_ids: list[str] = []
            for sobject, attr in _RELATED_ORDER:
                rows = getattr(org, attr, None) or []
                resolved = [
                    self._resolve(r, by_email, account_ids, contact_ids, sobject) for r in rows
                ]
                seeded[sobject] = self.insert(sobject, resolved)
                if sobject == "Contact":
                    contact_ids = seeded[sobject]
            self._seeded = seeded
            return account_ids

    @staticmethod
    def _resolve(
        source: Mapping[str, Any],
        by_email: Mapping[str, str],
        account_ids: list[str],
        contact_ids: list[str],
        sobject: str,
    ) -> dict[str, Any]:
        fields = dict(source)
        owner = fields.pop("OwnerEmail", None)
        if owner is not None:
            fields["OwnerId"] = by_email.get(str(owner).lower())
        account = fields.pop("AccountIndex", None)
        if account is not None:
            fields[_ACCOUNT_FIELD[sobject]] = account_ids[int(account)]
        contact = fields.pop("ContactIndex", None)
        if contact is not None:
            fields[_CONTACT_FIELD[sobject]] = contact_ids[int(contact)]
        return fields

    @property
    def seeded(self) -> dict[str, list[str]]:
        """Ids inserted by the last :meth:`seed`, per sObject, in the org's list order."""
        with self._store.lock:
            return {name: list(ids) for name, ids in self._seeded.items()}

    def remove_field(self, sobject: str, name: str) -> None:
        """Drop a field from the org's schema (describe, SOQL and writes stop knowing it)."""
        with self._store.lock:
            self._store.require_schema(sobject).remove_field(name)

    def issue_token(self) -> str:
        """A valid access token without going through OAuth."""
        return self._oauth.issue()

    def expire_tokens(self) -> None:
        """Invalidate every issued token (next API call answers 401 INVALID_SESSION_ID)."""
        self._oauth.expire_all()

    def fail_records(self, ids: Mapping[str, tuple[str, str]], times: int = 1) -> None:
        """Make the next ``times`` collection writes touching these ids fail per record."""
        self._failures.add(ids, times)

    @property
    def api_used(self) -> int:
        with self._usage_lock:
            return self._api_used

    def reset_api_usage(self) -> None:
        with self._usage_lock:
            self._api_used = 0

    # ------------------------------------------------------------------ hooks
    def before_route(self, req: Request) -> Response | None:
        if _API_PATH.match(req.path) is None:
            return None
        auth = req.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not self._oauth.is_valid(token.strip()):
            return invalid_session()
        with self._usage_lock:
            if self._api_used >= self.api_limit:
                return request_limit_exceeded()
            self._api_used += 1
        return None

    def finalize(self, req: Request, response: Response) -> Response:
        if not req.path.startswith("/services/data"):
            return response
        with self._usage_lock:
            usage = f"api-usage={self._api_used}/{self.api_limit}"
        return response.with_headers({"Sforce-Limit-Info": usage})

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            return request_limit_exceeded()
        if fault.kind == "expired_session":
            return invalid_session()
        return server_unavailable()

    def not_found(self, req: Request) -> Response:
        return not_found()

    def method_not_allowed(self, req: Request, allowed: list[str]) -> Response:
        message = f"HTTP Method '{req.method}' not allowed. Allowed are {','.join(allowed)}"
        return error_response(405, "METHOD_NOT_ALLOWED", message)

    def internal_error(self, req: Request, exc: Exception) -> Response:
        if isinstance(exc, ApiError):
            return exc.response()
        self.report_exception(exc)
        return error_response(500, "UNKNOWN_EXCEPTION", f"An unexpected error occurred: {exc!r}")

    # ------------------------------------------------------------------ routes
    @route("POST", r"/services/oauth2/token/?")
    def _token(self, req: Request) -> Response:
        return self._oauth.token_response(req, self.base_url)

    @route("GET", r"/services/data/?")
    def _versions(self, req: Request) -> Response:
        version = self.api_version
        return Response(
            200, [{"label": "Winter '24", "url": f"/services/data/v{version}", "version": version}]
        )

    @route("GET", _V + r"/?")
    def _resources(self, req: Request) -> Response:
        base = f"/services/data/v{req.path_params['version']}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        return Response(200, {name: f"{base}/{name}" for name in names})

    @route("GET", _V + r"/limits/?")
    def _limits(self, req: Request) -> Response:
        with self._usage_lock:
            remaining = max(0, self.api_limit - self._api_used)
        return Response(
            200,
            {
                "DailyApiRequests": {"Max": self.api_limit, "Remaining": remaining},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                **self.bulk.limits(),
                "DataStorageMB": {"Max": 5, "Remaining": 5},
                "FileStorageMB": {"Max": 20, "Remaining": 20},
            },
        )

    @route("GET", _V + r"/sobjects/?")
    def _global_describe(self, req: Request) -> Response:
        version = req.path_params["version"]
        with self._store.lock:
            summaries = [s.summary(version) for s in self._store.schemas.values()]
        return Response(200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": summaries})

    @route("GET", _V + r"/sobjects/(?P<name>\w+)/?")
    def _sobject_info(self, req: Request) -> Response:
        with self._store.lock:
            schema = self._store.schema(req.path_params["name"])
            if schema is None:
                return not_found()
            summary = schema.summary(req.path_params["version"])
        return Response(200, {"objectDescribe": summary, "recentItems": []})

    @route("GET", _V + r"/sobjects/(?P<name>\w+)/describe/?")
    def _describe(self, req: Request) -> Response:
        with self._store.lock:
            schema = self._store.schema(req.path_params["name"])
            if schema is None:
                return not_found()
            body = schema.describe(req.path_params["version"], self._store.schemas.values())
        return Response(200, body)

    @route("GET", _V + r"/(?P<endpoint>query|queryAll)/?")
    def _query(self, req: Request) -> Response:
        text = req.query.get("q")
        if not text:
            return error_response(400, "MALFORMED_QUERY", "A query string has to be specified")
        batch = batch_size_hint(req.header("Sforce-Query-Options"), self.page_size)
        result = self._engine.run(
            text,
            include_deleted=req.path_params["endpoint"] == "queryAll",
            batch=batch,
            version=req.path_params["version"],
        )
        return Response(200, result)

    @route("GET", _V + r"/(?P<endpoint>query|queryAll)/(?P<locator>[A-Za-z0-9]+)-(?P<offset>\d+)/?")
    def _query_more(self, req: Request) -> Response:
        params = req.path_params
        page = self._engine.more(
            params["locator"], int(params["offset"]), version=params["version"]
        )
        return Response(200, page)

    @route("PATCH", _V + r"/composite/sobjects/?")
    def _collections_update(self, req: Request) -> Response:
        results = update_collection(
            self._store, self._json(req), self._failures, self.write_history
        )
        return Response(200, results)

    @route("POST", _V + r"/composite/sobjects/?")
    def _collections_create(self, req: Request) -> Response:
        return Response(200, create_collection(self._store, self._json(req), self.write_history))

    # ------------------------------------------------------------------ Bulk API 2.0 query
    @route("POST", _V + r"/jobs/query/?")
    def _bulk_create(self, req: Request) -> Response:
        return Response(200, self.bulk.create(self._json(req), req.path_params["version"]))

    @route("GET", _V + r"/jobs/query/?")
    def _bulk_list(self, req: Request) -> Response:
        return Response(200, self.bulk.list_jobs(req.path_params["version"]))

    @route("GET", _JOB + r"/?")
    def _bulk_status(self, req: Request) -> Response:
        params = req.path_params
        return Response(200, self.bulk.status(params["id"], params["version"]))

    @route("GET", _JOB + r"/results/?")
    def _bulk_results(self, req: Request) -> Response:
        params = req.path_params
        return self.bulk.results(
            params["id"], params["version"], req.query.get("maxRecords"), req.query.get("locator")
        )

    @route("PATCH", _JOB + r"/?")
    def _bulk_abort(self, req: Request) -> Response:
        params = req.path_params
        return Response(200, self.bulk.abort(params["id"], self._json(req), params["version"]))

    @route("DELETE", _JOB + r"/?")
    def _bulk_delete(self, req: Request) -> Response:
        self.bulk.delete(req.path_params["id"], req.path_params["version"])
        return Response(204)
