"""HubSpotEmulator: HubSpot CRM v3 (+ v4 associations) over plain HTTP for hubspot-api-client.

Objects (companies, contacts, deals, tickets, tasks) with list/get/create/update/archive, batch
read/create/update/upsert/archive (100 inputs, 207 multi-status), search (filter groups, one
sort, 200 a page, the 10,000-result cap, 5 requests/s), the properties and property-groups API,
owners and v4 associations (one pair, or 100 default pairs a batch); Bearer auth, HubSpot's
error bodies, the ten-secondly rolling and daily limits with ``X-HubSpot-RateLimit-*`` headers.
See /work/shared/api-specs/hubspot.md.

Point the real client at it with
``HubSpot(access_token=emu.access_token, host=emu.base_url, base_url=emu.base_url)``.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sandbox.faults import Fault
from sandbox.hubspot_assoc_batch import AssociationBatchRoutes
from sandbox.hubspot_errors import (
    HubSpotError,
    correlation_id,
    error_response,
    expired_authentication,
    invalid_authentication,
    not_found,
    rate_limit_response,
    server_error,
)
from sandbox.hubspot_limits import DailyCounter, RollingWindow
from sandbox.hubspot_meta import MetaRoutes
from sandbox.hubspot_objects import ObjectRoutes
from sandbox.hubspot_schema import (
    ASSOCIATION_TYPES,
    PropertyDef,
    iso_from_ms,
    resolve_object_type,
)
from sandbox.hubspot_search import SearchLimits
from sandbox.hubspot_store import HubSpotStore, Record
from sandbox.hubspot_synthetic import (
    USAGE_GROUP,
    hubspot_companies_from_org,
    hubspot_owners_from_org,
    usage_property_specs,
)
from sandbox.server import EmulatorServer
from sandbox.synthetic import SyntheticOrg
from sandbox.wire import Request, Response

__all__ = [
    "HubSpotEmulator",
    "SearchLimits",
    "hubspot_companies_from_org",
    "hubspot_owners_from_org",
]

_SEARCH_PATH = re.compile(r"/crm/v3/objects/[^/]+/search/?")


class HubSpotEmulator(ObjectRoutes, MetaRoutes, AssociationBatchRoutes, EmulatorServer):
    """Plain-HTTP HubSpot portal; ``with HubSpotEmulator() as emu:`` then use ``emu.base_url``."""

    # hubspot-api-client sends list parameters "multi" style (properties=a&properties=b);
    # HubSpot also accepts properties=a,b, which is what the route handlers then see
    query_join = ","
    #: paths behind the private-app token and the rate limits (a subclass may add its own)
    api_prefixes: ClassVar[tuple[str, ...]] = ("/crm/",)

    def __init__(
        self,
        *,
        access_token: str = "pat-na1-sandbox-token",
        portal_id: int = 12345678,
        requests_per_10s: int = 100,
        rate_window: float = 10.0,
        search_per_second: int = 5,
        daily_limit: int = 250_000,
        retry_after: bool = True,
        search_limits: SearchLimits | None = None,
        batch_limit: int = 100,
        clock: Callable[[], datetime] | None = None,
        rate_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.portal_id = portal_id
        self.search_limits = search_limits or SearchLimits()
        self.batch_limit = batch_limit
        #: send ``Retry-After`` on 429s (undocumented by HubSpot; note that the SDK's default
        #: urllib3 ``Retry(3)`` then silently retries GET/PUT/DELETE after sleeping that long)
        self.retry_after = retry_after
        self._store = HubSpotStore(clock)
        self._tokens_lock = threading.Lock()
        self._tokens: dict[str, bool] = {access_token: True}  # token → still valid
        self._access_token = access_token
        self._burst = RollingWindow(requests_per_10s, rate_window, rate_clock)
        self._search_window = RollingWindow(search_per_second, 1.0, rate_clock)
        self._daily = DailyCounter(daily_limit)

    # ------------------------------------------------------------------ auth
    @property
    def access_token(self) -> str:
        """The newest valid token (private-app style ``pat-...``)."""
        return self._access_token

    def issue_token(self) -> str:
        """A new valid token (older tokens stay valid until :meth:`expire_tokens`)."""
        token = "pat-na1-" + secrets.token_hex(16)
        with self._tokens_lock:
            self._tokens[token] = True
            self._access_token = token
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far answers 401 ``EXPIRED_AUTHENTICATION`` from now on."""
        with self._tokens_lock:
            self._tokens = dict.fromkeys(self._tokens, False)

    def _token_state(self, req: Request) -> bool | None:
        """True valid, False expired, None missing/unknown."""
        scheme, _, token = (req.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        with self._tokens_lock:
            for known, valid in self._tokens.items():
                if secrets.compare_digest(known.encode(), token.encode()):
                    return valid
        return None

    # ------------------------------------------------------------------ limits
    def set_rate_limits(
        self,
        *,
        requests_per_10s: int | None = None,
        rate_window: float | None = None,
        search_per_second: int | None = None,
        daily_limit: int | None = None,
    ) -> None:
        """Change limits; changed windows start empty (the daily count is kept)."""
        if requests_per_10s is not None or rate_window is not None:
            self._burst.configure(requests_per_10s, rate_window)
        if search_per_second is not None:
            self._search_window.configure(search_per_second)
        if daily_limit is not None:
            self._daily.limit = daily_limit

    @property
    def api_calls(self) -> int:
        """Requests counted against the daily limit so far."""
        return self._daily.used

    def reset_usage(self) -> None:
        """Empty the rolling windows and the daily count."""
        self._burst.configure()
        self._search_window.configure()
        self._daily.reset()

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self._burst.limit),
            "X-HubSpot-RateLimit-Remaining": str(self._burst.remaining()),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self._burst.window * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self._daily.limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self._daily.remaining()),
        }

    def _rate_limited(self, policy: str, wait: int) -> Response:
        headers = {"Retry-After": str(wait)} if self.retry_after and policy != "DAILY" else {}
        if policy != "SECONDLY":  # search answers carry no X-HubSpot-RateLimit-* headers
            headers = {**self._limit_headers(), "X-HubSpot-RateLimit-Remaining": "0", **headers}
        return rate_limit_response(policy, self.portal_id, headers)

    # ------------------------------------------------------------------ clock
    def now(self) -> datetime:
        """The emulator's current time (what the next write stamps)."""
        return datetime.fromisoformat(iso_from_ms(self._store.now_ms()).replace("Z", "+00:00"))

    def set_time(self, moment: datetime | None) -> None:
        """Freeze the record clock (``None`` to unfreeze): writes then share one timestamp."""
        self._store.set_time(moment)

    def advance(self, delta: float | timedelta) -> None:
        """Move the (frozen) record clock forward by seconds or a timedelta."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        self._store.advance(seconds)

    # ------------------------------------------------------------------ data API (no HTTP)
    @staticmethod
    def _type(object_type: str) -> str:
        resolved = resolve_object_type(object_type)
        if resolved is None:
            raise ValueError(f"unknown HubSpot object type {object_type!r}")
        return resolved

    def define_property(
        self,
        object_type: str,
        name: str,
        type: str = "string",
        field_type: str | None = None,
        *,
        label: str | None = None,
        group: str | None = None,
        options: list[Mapping[str, Any]] | None = None,
        unique: bool = False,
    ) -> None:
        """Add a custom property (group defaults to the type's information group)."""
        t = self._type(object_type)
        default_field = {
            "number": "number",
            "date": "date",
            "datetime": "date",
            "bool": "booleancheckbox",
            "enumeration": "select",
        }.get(type, "text")
        body: dict[str, Any] = {
            "name": name,
            "label": label or name.replace("_", " ").capitalize(),
            "type": type,
            "fieldType": field_type or default_field,
            "hasUniqueValue": unique,
            "groupName": group or next(iter(self._store.groups[t])),
        }
        if options is not None:
            body["options"] = [dict(o) for o in options]
        self.create_property(t, body)

    def add_group(self, object_type: str, name: str, label: str) -> None:
        t = self._type(object_type)
        with self._store.lock:
            if name not in self._store.groups[t]:
                self._store.add_group(t, name, label)

    def get_property(self, object_type: str, name: str) -> dict[str, Any]:
        """A property definition as the properties API returns it."""
        defn: PropertyDef | None = self._store.schemas[self._type(object_type)].get(name)
        if defn is None:
            raise KeyError(name)
        return defn.to_json()

    def add_owner(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        owner_id: str | None = None,
        user_id: int | None = None,
        archived: bool = False,
        teams: list[dict[str, Any]] | None = None,
    ) -> str:
        """Register an owner (ids ``77001``, ``77002``... unless given); returns its id."""
        return self._store.add_owner(
            email,
            first_name,
            last_name,
            owner_id=owner_id,
            user_id=user_id,
            archived=archived,
            teams=teams,
        )

    def add_owners(self, owners: Iterable[Mapping[str, Any]]) -> list[str]:
        """Owners as dicts with ``email``, ``firstName``, ``lastName`` and optional ``id``..."""
        return [
            self.add_owner(
                o["email"],
                o.get("firstName", ""),
                o.get("lastName", ""),
                owner_id=o.get("id"),
                user_id=o.get("userId"),
                archived=bool(o.get("archived", False)),
                teams=o.get("teams"),
            )
            for o in owners
        ]

    @property
    def owners(self) -> list[dict[str, Any]]:
        with self._store.lock:
            return [dict(o) for o in self._store.owners.values()]

    def create(self, object_type: str, properties: Mapping[str, Any]) -> str:
        """Create a record with HubSpot's validation (raises ``HubSpotError``); returns its id."""
        return self.create_many(object_type, [properties])[0]

    def create_many(self, object_type: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        t = self._type(object_type)
        with self._store.lock:
            checked = [self._store.check_properties(t, dict(r), creating=True) for r in rows]
            return [self._store.create(t, values).id for values in checked]

    def update(self, object_type: str, record_id: str, properties: Mapping[str, Any]) -> None:
        """Set properties (validated) and bump the last-modified date."""
        t = self._type(object_type)
        with self._store.lock:
            record = self._live(t, record_id)
            values = self._store.check_properties(
                t, dict(properties), creating=False, record_id=record.id
            )
            self._store.update(record, values)

    def archive(self, object_type: str, record_id: str) -> None:
        t = self._type(object_type)
        with self._store.lock:
            self._store.archive(self._live(t, record_id))

    def _live(self, t: str, record_id: str) -> Record:
        record = self._store.get(t, str(record_id))
        if record is None:
            raise KeyError(f"{t} {record_id} does not exist or is archived")
        return record

    def record(self, object_type: str, record_id: str) -> dict[str, Any]:
        """A record (archived or not) as JSON with every property it has."""
        t = self._type(object_type)
        with self._store.lock:
            record = self._store.records[t].get(str(record_id))
            if record is None:
                raise KeyError(f"{t} {record_id} does not exist")
            return self._store.render(record, list(record.props))

    def records(self, object_type: str, *, archived: bool = False) -> list[dict[str, Any]]:
        t = self._type(object_type)
        with self._store.lock:
            return [
                self._store.render(r, list(r.props)) for r in self._store.live(t, archived=archived)
            ]

    def associate(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        type_id: int | None = None,
    ) -> None:
        """Link two records (default HUBSPOT_DEFINED type unless ``type_id``)."""
        a, b = self._type(from_type), self._type(to_type)
        if (a, b) not in ASSOCIATION_TYPES:
            raise ValueError(f"{a} can't be associated with {b}")
        with self._store.lock:
            self._live(a, from_id)
            self._live(b, to_id)
            self._store.associate(a, str(from_id), b, str(to_id), type_id)

    def associations(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        """Ids of the live ``to_type`` records linked to a record."""
        a, b = self._type(from_type), self._type(to_type)
        with self._store.lock:
            return [to_id for to_id, _ in self._store.associated(a, str(from_id), b)]

    @property
    def write_history(self) -> list[tuple[str, str, dict[str, str | None]]]:
        """(object type, id, properties written) for every create/update made over HTTP."""
        with self._store.lock:
            return list(self._store.write_history)

    def clear_write_history(self) -> None:
        with self._store.lock:
            self._store.write_history.clear()

    def seed(self, org: SyntheticOrg, *, account_ids: list[str] | None = None) -> list[str]:
        """Owners from the org's users, the usage properties, then one company per account.

        Returns the company ids in account order (see :func:`hubspot_companies_from_org`).
        """
        with self._store.lock:
            self.add_group("companies", *USAGE_GROUP)
            for spec in usage_property_specs():
                if spec["name"] not in self._store.schemas["companies"]:
                    self.create_property("companies", dict(spec))
            known = {o["email"].lower() for o in self._store.owners.values()}
            self.add_owners(
                o for o in hubspot_owners_from_org(org) if o["email"].lower() not in known
            )
            companies = hubspot_companies_from_org(org, account_ids=account_ids)
            return self.create_many("companies", companies)

    # ------------------------------------------------------------------ hooks
    def before_route(self, req: Request) -> Response | None:
        if not req.path.startswith(self.api_prefixes):
            return None
        state = self._token_state(req)
        if state is None:
            return invalid_authentication()
        if state is False:
            return expired_authentication()
        if req.method == "POST" and _SEARCH_PATH.fullmatch(req.path):
            wait = self._search_window.take()
            if wait:
                return self._rate_limited("SECONDLY", wait)
        else:
            wait = self._burst.take()
            if wait:
                return self._rate_limited("TEN_SECONDLY_ROLLING", wait)
        if not self._daily.take():
            return self._rate_limited("DAILY", 3600)
        return None

    def finalize(self, req: Request, response: Response) -> Response:
        body = response.body
        correlation = body.get("correlationId") if isinstance(body, dict) else None
        extra = {"x-hubspot-correlation-id": str(correlation or correlation_id())}
        searching = req.method == "POST" and _SEARCH_PATH.fullmatch(req.path) is not None
        if req.path.startswith(self.api_prefixes) and response.status != 401 and not searching:
            extra.update(self._limit_headers())
        return Response(response.status, response.body, {**extra, **response.headers})

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            searching = req.method == "POST" and _SEARCH_PATH.fullmatch(req.path) is not None
            return self._rate_limited("SECONDLY" if searching else "TEN_SECONDLY_ROLLING", 1)
        if fault.kind == "expired_session":
            return expired_authentication()
        return server_error()

    def not_found(self, req: Request) -> Response:
        return not_found(f"Unable to route {req.method} {req.path}").response()

    def method_not_allowed(self, req: Request, allowed: list[str]) -> Response:
        return error_response(
            405,
            "VALIDATION_ERROR",
            f"HTTP {req.method} is not supported by this endpoint",
            headers={"Allow": ", ".join(allowed)},
        )

    def internal_error(self, req: Request, exc: Exception) -> Response:
        if isinstance(exc, HubSpotError):
            return exc.response()
        self.report_exception(exc)
        return server_error()

    def _route(self, req: Request) -> Response:
        # HubSpot errors raised by handlers become responses here, so finalize() still adds
        # the correlation and rate-limit headers (the base class skips it for exceptions).
        try:
            return super()._route(req)
        except HubSpotError as exc:
            return exc.response()
