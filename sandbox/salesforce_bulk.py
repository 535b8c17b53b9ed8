"""Bulk API 2.0 query jobs for the Salesforce emulator (``/services/data/vXX.X/jobs/query``).

What simple-salesforce's ``sf.bulk2.<Object>.query(...)`` / ``query_all(...)`` does and needs:

1. ``POST jobs/query`` with ``{"operation": "query"|"queryAll", "query", "columnDelimiter",
   "lineEnding"}`` (and ``Accept: text/csv``) -> 200 JSON job info, ``state: UploadComplete``.
   The SOQL is validated (and, in the emulator, executed and snapshotted) here, so bad SOQL is a
   400 error array at creation.
2. ``GET jobs/query/{id}`` until ``state`` is ``JobComplete`` (``Failed``/``Aborted`` make the
   client raise with ``errorMessage``).  The emulator walks ``UploadComplete -> InProgress ->
   JobComplete`` over :attr:`BulkQueryJobs.polls_to_complete` polls.
3. ``GET jobs/query/{id}/results?maxRecords=N[&locator=L]`` -> 200 ``text/csv`` with
   ``Sforce-NumberOfRecords`` (the client does ``int(headers[...])``) and ``Sforce-Locator``
   (the literal string ``null`` on the last page).

Also served: ``GET jobs/query`` (all jobs), ``PATCH jobs/query/{id}`` ``{"state": "Aborted"}``
and ``DELETE jobs/query/{id}`` (204).  Auth, API-usage counting, the daily limit and the
FaultPlan apply exactly as for REST, because these paths live under ``/services/data/vXX.X/``.
"""

from __future__ import annotations

import base64
import binascii
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.salesforce_errors import ApiError
from sandbox.salesforce_oauth import INTEGRATION_USER_ID
from sandbox.salesforce_query import QueryEngine
from sandbox.salesforce_schema import format_datetime, make_id
from sandbox.wire import Response

LINE_ENDINGS: dict[str, str] = {"LF": "\n", "CRLF": "\r\n"}
DELIMITERS: dict[str, str] = {
    "BACKQUOTE": "`", "CARET": "^", "COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "TAB": "\t",
}  # fmt: skip
OPERATIONS = ("query", "queryAll")
PENDING_STATES = ("UploadComplete", "InProgress")
DEFAULT_MAX_RECORDS = 50_000
_MB = 1024 * 1024


def _job_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message)


def csv_value(value: Any) -> str:
    """One CSV cell as Bulk API 2.0 writes it: quoted text, empty for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{value.microsecond // 1000:03d}Z"
        )
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


def encode_locator(offset: int) -> str:
    """Opaque locator (base64 of the row offset, like Salesforce's ``MTAwMDA``)."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text) if text.isdigit() else None


@dataclass
class QueryJob:
    """One Bulk API 2.0 query job (its result is snapshotted when the job is created)."""

    id: str
    operation: str
    object: str
    query: str
    api_version: str
    line_ending: str
    column_delimiter: str
    created: datetime
    columns: list[str]
    rows: list[list[Any]]
    state: str = "UploadComplete"
    modstamp: datetime | None = None
    polls: int = 0
    error_message: str | None = None
    lines: list[str] = field(default_factory=list)
    processing_ms: int = 0

    def info(self, *, full: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": INTEGRATION_USER_ID,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp or self.created),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }
        if full:
            done = self.state == "JobComplete"
            body.update(
                {
                    "jobType": "V2Query",
                    "numberRecordsProcessed": len(self.rows) if done else 0,
                    "retries": 0,
                    "totalProcessingTime": self.processing_ms if done else 0,
                    "isPkChunkingSupported": True,
                }
            )
            if self.error_message is not None:
                body["errorMessage"] = self.error_message
        return body

    def header_line(self) -> str:
        sep = DELIMITERS[self.column_delimiter]
        return sep.join(csv_value(c) for c in self.columns) + LINE_ENDINGS[self.line_ending]


class BulkQueryJobs:
    """The org's Bulk API 2.0 query jobs (thread-safe).

    ``polls_to_complete``: how many status polls answer a pending state before the job is
    ``JobComplete`` (0: the first poll already sees it complete).  ``job_limit`` is the
    ``DailyBulkV2QueryJobs`` allocation; :meth:`fail_next` makes the next jobs end ``Failed``.
    """

    def __init__(
        self,
        engine: QueryEngine,
        clock: Callable[[], datetime],
        *,
        polls_to_complete: int = 1,
        job_limit: int = 10_000,
        storage_limit_mb: int = 976_562,
        default_max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if polls_to_complete < 0:
            raise ValueError("polls_to_complete must be >= 0")
        self.engine = engine
        self.clock = clock
        self.polls_to_complete = polls_to_complete
        self.job_limit = job_limit
        self.storage_limit_mb = storage_limit_mb
        self.default_max_records = default_max_records
        self._lock = threading.Lock()
        self._jobs: dict[str, QueryJob] = {}
        self._counter = 0
        self._bytes = 0
        self._failures: list[str] = []

    # ------------------------------------------------------------------ test controls
    def fail_next(
        self, message: str = "InvalidBatch : Failed to process query", times: int = 1
    ) -> None:
        """The next ``times`` jobs to complete end in state ``Failed`` with this errorMessage."""
        with self._lock:
            self._failures.extend([message] * times)

    def job(self, job_id: str) -> QueryJob:
        with self._lock:
            return self._jobs[job_id]

    @property
    def jobs(self) -> list[QueryJob]:
        with self._lock:
            return list(self._jobs.values())

    @property
    def jobs_created(self) -> int:
        with self._lock:
            return self._counter

    def limits(self) -> dict[str, dict[str, int]]:
        """The ``DailyBulkV2QueryJobs`` / ``DailyBulkV2QueryFileStorageMB`` entries of /limits."""
        with self._lock:
            used_mb = math.ceil(self._bytes / _MB)
            return {
                "DailyBulkV2QueryJobs": {
                    "Max": self.job_limit,
                    "Remaining": max(0, self.job_limit - self._counter),
                },
                "DailyBulkV2QueryFileStorageMB": {
                    "Max": self.storage_limit_mb,
                    "Remaining": max(0, self.storage_limit_mb - used_mb),
                },
            }

    # ------------------------------------------------------------------ endpoints
    def create(self, payload: Any, version: str) -> dict[str, Any]:
        """``POST jobs/query``: validate, snapshot the result, answer the job info."""
        if not isinstance(payload, dict):
            raise _job_error(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        operation = payload.get("operation")
        if operation not in OPERATIONS:
            raise _job_error(
                400,
                "INVALIDJOB",
                f"Invalid operation '{operation}': a query job's operation is query or queryAll",
            )
        query = payload.get("query")
        if not isinstance(query, str) or not query.strip():
            raise _job_error(400, "INVALIDJOB", "A query job needs a 'query'")
        delimiter = payload.get("columnDelimiter", "COMMA")
        line_ending = payload.get("lineEnding", "LF")
        if delimiter not in DELIMITERS:
            raise _job_error(400, "INVALIDJOB", f"Invalid columnDelimiter '{delimiter}'")
        if line_ending not in LINE_ENDINGS:
            raise _job_error(400, "INVALIDJOB", f"Invalid lineEnding '{line_ending}'")
        content_type = payload.get("contentType", "CSV")
        if content_type != "CSV":
            raise _job_error(400, "INVALIDJOB", f"Invalid contentType '{content_type}'")
        with self._lock:
            if self._counter >= self.job_limit:
                raise _job_error(
                    400,
                    "LIMIT_EXCEEDED",
                    f"Max bulk v2 query jobs ({self.job_limit}) per 24 hrs has been reached",
                )
        sobject, columns, rows = self.engine.snapshot(
            query, include_deleted=operation == "queryAll"
        )
        with self._lock:
            self._counter += 1
            job = QueryJob(
                id=make_id("750", self._counter),
                operation=operation,
                object=sobject,
                query=query,
                api_version=version,
                line_ending=line_ending,
                column_delimiter=delimiter,
                created=self.clock(),
                columns=columns,
                rows=rows,
            )
            self._jobs[job.id] = job
        return job.info(full=False)

    def list_jobs(self, version: str) -> dict[str, Any]:
        """``GET jobs/query``."""
        with self._lock:
            records = [j.info(full=False) | {"jobType": "V2Query"} for j in self._jobs.values()]
        return {"done": True, "records": records, "nextRecordsUrl": None}

    def status(self, job_id: str, version: str) -> dict[str, Any]:
        """``GET jobs/query/{id}``: one poll (advances a pending job)."""
        with self._lock:
            job = self._require(job_id)
            if job.state in PENDING_STATES:
                job.polls += 1
                if job.polls > self.polls_to_complete:
                    self._finish(job)
                else:
                    first = job.polls == 1 and self.polls_to_complete > 1
                    job.state = "UploadComplete" if first else "InProgress"
                    job.modstamp = self.clock()
            return job.info()

    def results(
        self, job_id: str, version: str, max_records: str | None, locator: str | None
    ) -> Response:
        """``GET jobs/query/{id}/results``: one CSV page with the Sforce-* headers."""
        if max_records is None or max_records == "":
            limit = self.default_max_records
        elif max_records.isdigit() and int(max_records) > 0:
            limit = int(max_records)
        else:
            raise _job_error(
                400, "INVALIDPARAMETER", f"maxRecords must be a positive integer: {max_records}"
            )
        with self._lock:
            job = self._require(job_id)
            self._check_version(job, version)
            if job.state != "JobComplete":
                raise _job_error(
                    412,
                    "JOB_NOT_COMPLETE",
                    f"Job {job.id} is not complete (state {job.state}): results are available "
                    "once the job is JobComplete",
                )
            offset = 0
            if locator:
                decoded = decode_locator(locator)
                if decoded is None or decoded > len(job.lines):
                    raise _job_error(400, "INVALID_QUERY_LOCATOR", f"Invalid locator: {locator}")
                offset = decoded
            page = job.lines[offset : offset + limit]
            end = offset + len(page)
            body = job.header_line() + "".join(page)
            next_locator = encode_locator(end) if end < len(job.lines) else "null"
        return Response(
            200,
            body,
            {
                "Content-Type": "text/csv",
                "Sforce-Locator": next_locator,
                "Sforce-NumberOfRecords": str(len(page)),
            },
        )

    def abort(self, job_id: str, payload: Any, version: str) -> dict[str, Any]:
        """``PATCH jobs/query/{id}`` with ``{"state": "Aborted"}``."""
        state = payload.get("state") if isinstance(payload, dict) else None
        with self._lock:
            job = self._require(job_id)
            if state != "Aborted":
                message = f"Changing a query job's state to {state} is not allowed"
                raise _job_error(400, "INVALIDJOBSTATE", message)
            if job.state not in PENDING_STATES:
                raise _job_error(
                    400, "INVALIDJOBSTATE", f"Aborting already {job.state} Job not allowed"
                )
            job.state = "Aborted"
            job.modstamp = self.clock()
            return job.info()

    def delete(self, job_id: str, version: str) -> None:
        """``DELETE jobs/query/{id}``: only finished (complete, failed, aborted) jobs."""
        with self._lock:
            job = self._require(job_id)
            if job.state in PENDING_STATES:
                raise _job_error(
                    400, "INVALIDJOBSTATE", f"Deleting a job in state {job.state} is not allowed"
                )
            del self._jobs[job.id]

    # ------------------------------------------------------------------ internals
    def _require(self, job_id: str) -> QueryJob:
        job = self._jobs.get(job_id)
        if job is None and len(job_id) == 15:
            job = next((j for j in self._jobs.values() if j.id[:15] == job_id), None)
        if job is None:
            raise _job_error(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    @staticmethod
    def _check_version(job: QueryJob, version: str) -> None:
        if float(version) != float(job.api_version):
            raise _job_error(
                409,
                "UNSUPPORTED_API_VERSION",
                f"Use the same API version to get query results that you used to create the "
                f"query (v{job.api_version}, not v{version})",
            )

    def _finish(self, job: QueryJob) -> None:
        started = job.modstamp or job.created
        job.modstamp = self.clock()
        job.processing_ms = max(1, int((job.modstamp - started).total_seconds() * 1000))
        if self._failures:
            job.state = "Failed"
            job.error_message = self._failures.pop(0)
            return
        sep, end = DELIMITERS[job.column_delimiter], LINE_ENDINGS[job.line_ending]
        job.lines = [sep.join(csv_value(v) for v in row) + end for row in job.rows]
        job.state = "JobComplete"
        self._bytes += len(job.header_line().encode()) + sum(len(x.encode()) for x in job.lines)
