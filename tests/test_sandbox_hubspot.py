"""HubSpotEmulator driven through the real hubspot-api-client (``hubspot.HubSpot``).

Records are seeded through the emulator's data API (fast, no HTTP); everything under test goes
over HTTP through the SDK, pointed at the sandbox with ``host=`` (SDK calls) and ``base_url=``
(``api_request``), as /work/shared/api-specs/hubspot.md says.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.companies import ApiException as CompaniesApiException
from hubspot.crm.companies.exceptions import (
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)
from hubspot.crm.contacts import ApiException as ContactsApiException
from hubspot.crm.objects.tasks import ApiException as TasksApiException
from hubspot.crm.owners import ApiException as OwnersApiException
from hubspot.crm.properties import ApiException as PropertiesApiException
from urllib3.util.retry import Retry

# Submodule imports work whether or not the editable install knows sandbox/__init__.py.
from sandbox.hubspot import HubSpotEmulator, hubspot_companies_from_org, hubspot_owners_from_org
from sandbox.synthetic import generate_org

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HS_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
API_ERRORS = (
    AssociationsApiException,
    CompaniesApiException,
    ContactsApiException,
    OwnersApiException,
    PropertiesApiException,
    TasksApiException,
)


class FakeMonotonic:
    """Rate-limit clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sdk(emu: HubSpotEmulator, token: str | None = None, **config: Any) -> HubSpot:
    token = emu.access_token if token is None else token
    return HubSpot(access_token=token, host=emu.base_url, base_url=emu.base_url, **config)


def api_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The SDK exception a call raises (each SDK package has its own ApiException class)."""
    with pytest.raises(API_ERRORS) as info:
        call(*args, **kwargs)
    return info.value


def body(exc: Any) -> dict[str, Any]:
    return json.loads(exc.body)


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


@pytest.fixture
def emu() -> Iterator[HubSpotEmulator]:
    """Generous limits: these tests are about behaviour, not pacing."""
    with HubSpotEmulator(requests_per_10s=10_000, search_per_second=1_000) as server:
        server.set_time(NOW)
        yield server


# ------------------------------------------------------------------------------ objects
def test_list_pages_with_cursor_and_property_selection(emu: HubSpotEmulator) -> None:
    ids = emu.create_many(
        "companies", [{"name": f"Co {i}", "domain": f"co{i}.test"} for i in range(25)]
    )
    api = sdk(emu).crm.companies.basic_api
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"limit": 10, "properties": ["name", "nope"], "archived": False}
        if after:
            kwargs["after"] = after
        page = api.get_page(**kwargs)
        pages += 1
        seen += [r.id for r in page.results]
        first = page.results[0]
        # requested + always-present properties; unknown names are ignored
        assert set(first.properties) == {
            "name",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        }
        assert first.properties["hs_object_id"] == first.id
        assert first.archived is False and first.created_at is not None
        if page.paging is None:
            break
        after = page.paging.next.after
        assert not after.isdigit()  # opaque cursor, not an offset
    assert pages == 3 and seen == ids
    logged = emu.requests("GET", r"^/crm/v3/objects/companies$")
    assert len(logged) == 3
    # the SDK sends properties=name&properties=nope; the log shows them comma-joined
    assert logged[0].query == {"limit": "10", "properties": "name,nope", "archived": "False"}
    # no properties named → the type's defaults; the SDK's get_all pages by 100
    default = api.get_page(limit=1).results[0]
    assert set(default.properties) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }
    assert len(sdk(emu).crm.companies.get_all()) == 25
    too_big = api_error(api.get_page, limit=101)
    assert too_big.status == 400 and body(too_big)["category"] == "VALIDATION_ERROR"


def test_get_create_update_and_timestamps(emu: HubSpotEmulator) -> None:
    api = sdk(emu).crm.companies.basic_api
    created = api.create(
        {"properties": {"name": "Acme", "domain": "acme.test", "numberofemployees": 40}}
    )
    assert type(created).__name__ == "SimplePublicObject"  # 201 mapped by the SDK
    assert created.properties["numberofemployees"] == "40"  # values are strings
    stamp = created.properties["hs_lastmodifieddate"]
    assert HS_DATETIME.match(stamp) and stamp == "2026-11-23T09:00:00.000Z"
    emu.advance(timedelta(minutes=5))
    updated = api.update(created.id, {"properties": {"name": "Acme Corp", "domain": ""}})
    assert updated.properties["name"] == "Acme Corp"
    assert updated.properties["hs_lastmodifieddate"] == "2026-11-23T09:05:00.000Z"
    assert updated.properties["createdate"] == stamp
    got = api.get_by_id(created.id, properties=["name", "domain"])
    assert got.properties["domain"] is None  # "" clears a value
    assert emu.write_history[-1] == ("companies", created.id, {"name": "Acme Corp", "domain": None})
    missing = api_error(api.get_by_id, "999")
    assert isinstance(missing, NotFoundException)
    assert body(missing)["category"] == "OBJECT_NOT_FOUND"
    assert body(api_error(api.update, "999", {"properties": {"name": "x"}}))["status"] == "error"


def test_archived_records(emu: HubSpotEmulator) -> None:
    ids = emu.create_many("companies", [{"name": f"Co {i}"} for i in range(3)])
    client = sdk(emu)
    api = client.crm.companies.basic_api
    emu.advance(60)
    api.archive(ids[1])
    assert [r.id for r in api.get_page(limit=10).results] == [ids[0], ids[2]]
    archived = api.get_page(limit=10, archived=True).results
    assert [r.id for r in archived] == [ids[1]]
    assert archived[0].archived is True
    assert archived[0].archived_at == datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    assert isinstance(api_error(api.get_by_id, ids[1]), NotFoundException)
    assert api.get_by_id(ids[1], archived=True).archived is True
    found = client.crm.companies.search_api.do_search({"limit": 10})
    assert found.total == 2 and ids[1] not in {r.id for r in found.results}
    batch = client.crm.companies.batch_api.update(
        {"inputs": [{"id": ids[1], "properties": {"name": "back?"}}]}
    )
    assert batch.num_errors == 1 and batch.errors[0].context == {"ids": [ids[1]]}


# ------------------------------------------------------------------------------ search
def test_search_filters_sorts_and_pages(emu: HubSpotEmulator) -> None:
    emu.define_property("companies", "licensed_seats", "number")
    ids = []
    for i in range(12):
        ids.append(emu.create("companies", {"name": f"Co {i:02d}", "licensed_seats": i * 10}))
        emu.advance(60)  # one minute apart
    emu.update("companies", ids[0], {"licensed_seats": 5})  # now the newest
    emu.update("companies", ids[1], {"licensed_seats": ""})  # no value
    search = sdk(emu).crm.companies.search_api.do_search
    since = NOW + timedelta(minutes=3)

    def run(filters: list[dict[str, Any]], **extra: Any) -> Any:
        return search({"filterGroups": [{"filters": filters}], "limit": 100, **extra})

    def seats(resp: Any) -> list[str | None]:
        return [r.properties.get("licensed_seats") for r in resp.results]

    gte = run(
        [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": ms(since)}],
        properties=["licensed_seats"],
    )
    assert gte.total == 11 and ids[0] in {r.id for r in gte.results}  # 3..11 + two updated
    iso = run(
        [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.isoformat()}]
    )
    assert iso.total == 11  # ISO values work like epoch ms
    assert run([{"propertyName": "licensed_seats", "operator": "GT", "value": "80"}]).total == 3
    assert run([{"propertyName": "licensed_seats", "operator": "LTE", "value": "20"}]).total == 2
    assert run([{"propertyName": "licensed_seats", "operator": "LT", "value": "20"}]).total == 1
    assert run([{"propertyName": "licensed_seats", "operator": "EQ", "value": "30"}]).total == 1
    assert run([{"propertyName": "licensed_seats", "operator": "NEQ", "value": "30"}]).total == 11
    assert (
        run(
            [{"propertyName": "licensed_seats", "operator": "IN", "values": ["30", "40", "999"]}]
        ).total
        == 2
    )
    assert run([{"propertyName": "licensed_seats", "operator": "NOT_HAS_PROPERTY"}]).total == 1
    assert run([{"propertyName": "licensed_seats", "operator": "HAS_PROPERTY"}]).total == 11
    assert run([{"propertyName": "name", "operator": "EQ", "value": "co 03"}]).total == 1
    either = search(
        {
            "filterGroups": [
                {"filters": [{"propertyName": "licensed_seats", "operator": "EQ", "value": "20"}]},
                {"filters": [{"propertyName": "licensed_seats", "operator": "EQ", "value": "110"}]},
            ]
        }
    )
    assert either.total == 2  # groups are ORed
    both = run(
        [
            {"propertyName": "licensed_seats", "operator": "GTE", "value": "20"},
            {"propertyName": "licensed_seats", "operator": "LTE", "value": "40"},
        ]
    )
    assert both.total == 3  # filters in a group are ANDed

    # sort by hs_lastmodifieddate descending, paged 5 at a time through a numeric offset
    collected: list[str] = []
    after = "0"
    while True:
        page = search(
            {
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
                "properties": ["name", "hs_lastmodifieddate"],
                "limit": 5,
                "after": after,
            }
        )
        assert page.total == 12
        collected += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
        assert after == str(len(collected))
    # the two updated last come first; they share one timestamp, and ties keep id order
    assert collected[:2] == [ids[0], ids[1]]
    assert collected[2:] == list(reversed(ids[2:]))
    by_id = search({"sorts": ["-hs_object_id"], "limit": 3})  # SDK typing: list[str]
    assert [r.id for r in by_id.results] == list(reversed(ids))[:3]
    assert set(by_id.results[0].properties) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }
    too_big = api_error(search, {"limit": 201})
    assert too_big.status == 400 and body(too_big)["category"] == "VALIDATION_ERROR"
    unknown = api_error(run, [{"propertyName": "nope", "operator": "EQ", "value": "1"}])
    assert unknown.status == 400
    many = [{"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}]}] * 6
    assert api_error(search, {"filterGroups": many}).status == 400


def test_search_stops_at_10000_results(emu: HubSpotEmulator) -> None:
    # 10,050 companies sharing one hs_lastmodifieddate: the crowded-timestamp case
    emu.create_many("companies", ({"name": f"Co {i}"} for i in range(10_050)))
    search = sdk(emu).crm.companies.search_api.do_search
    stamp = ms(NOW)
    same_time = [{"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": stamp}]
    query = {
        "filterGroups": [{"filters": same_time}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": ["name"],
        "limit": 200,
    }
    last = search({**query, "after": "9900"})
    assert last.total == 10_050
    assert len(last.results) == 100  # the page is cut at the cap...
    assert last.paging.next.after == "10000"  # ...but still points past it
    beyond = api_error(search, {**query, "after": "10000"})
    assert beyond.status == 400
    assert body(beyond)["category"] == "VALIDATION_ERROR"
    assert set(body(beyond)) >= {"status", "message", "correlationId", "category"}
    # the way out: restart at the last id seen
    rest = search(
        {
            **query,
            "after": "0",
            "filterGroups": [
                {
                    "filters": [
                        *same_time,
                        {
                            "propertyName": "hs_object_id",
                            "operator": "GT",
                            "value": last.results[-1].id,
                        },
                    ]
                }
            ],
        }
    )
    assert rest.total == 50 and rest.paging is None


# ------------------------------------------------------------------------------ batch
def test_batch_update_of_100_and_the_limit(emu: HubSpotEmulator) -> None:
    emu.define_property("companies", "healthscore_score", "number")
    ids = emu.create_many("companies", [{"name": f"Co {i}"} for i in range(101)])
    batch = sdk(emu).crm.companies.batch_api
    emu.clear_log()
    emu.advance(1)
    ok = batch.update(
        {
            "inputs": [
                {"id": i, "properties": {"healthscore_score": str(n)}}
                for n, i in enumerate(ids[:100])
            ]
        }
    )
    assert type(ok).__name__ == "BatchResponseSimplePublicObject"  # 200, not 207
    assert ok.status == "COMPLETE" and len(ok.results) == 100
    assert ok.started_at is not None and ok.completed_at is not None
    by_id = {r.id: r.properties for r in ok.results}
    assert by_id[ids[7]]["healthscore_score"] == "7"
    assert by_id[ids[7]]["hs_lastmodifieddate"] == "2026-11-23T09:00:01.000Z"
    assert len(emu.requests("POST", r"/batch/update$")) == 1
    too_many = api_error(
        batch.update, {"inputs": [{"id": i, "properties": {"name": "x"}} for i in ids]}
    )
    assert too_many.status == 400 and body(too_many)["category"] == "VALIDATION_ERROR"
    assert emu.record("companies", ids[100])["properties"]["name"] == "Co 100"  # untouched
    dupes = api_error(
        batch.update,
        {
            "inputs": [
                {"id": ids[0], "properties": {"name": "a"}},
                {"id": ids[0], "properties": {"name": "b"}},
            ]
        },
    )
    assert dupes.status == 400 and "Duplicate IDs" in body(dupes)["message"]

    partial = batch.update(
        {
            "inputs": [
                {"id": ids[0], "properties": {"name": "Renamed"}},
                {"id": "999", "properties": {"name": "Ghost"}},
            ]
        }
    )
    assert type(partial).__name__ == "BatchResponseSimplePublicObjectWithErrors"  # 207
    assert [r.id for r in partial.results] == [ids[0]] and partial.num_errors == 1
    error = partial.errors[0]
    assert (error.status, error.category, error.context) == (
        "error",
        "OBJECT_NOT_FOUND",
        {"ids": ["999"]},
    )
    read = batch.read(
        {
            "properties": ["name"],
            "propertiesWithHistory": [],
            "inputs": [{"id": ids[0]}, {"id": "998"}],
        }
    )
    assert read.num_errors == 1 and read.results[0].properties["name"] == "Renamed"
    created = batch.create(
        {
            "inputs": [
                {"properties": {"name": "New 1"}, "associations": []},
                {"properties": {"name": "New 2"}, "associations": []},
            ]
        }
    )
    assert type(created).__name__ == "BatchResponseSimplePublicObject"  # 201
    assert sorted(r.properties["name"] for r in created.results) == ["New 1", "New 2"]


def test_unknown_property_and_bad_values_are_rejected(emu: HubSpotEmulator) -> None:
    company = emu.create("companies", {"name": "Acme"})
    client = sdk(emu)
    exc = api_error(
        client.crm.companies.basic_api.update, company, {"properties": {"healthscore_score": "64"}}
    )
    assert exc.status == 400
    err = body(exc)
    assert err["status"] == "error" and err["category"] == "VALIDATION_ERROR"
    assert err["message"].startswith("Property values were not valid: ")
    problems = json.loads(err["message"].removeprefix("Property values were not valid: "))
    assert problems[0]["error"] == "PROPERTY_DOESNT_EXIST"
    assert problems[0]["name"] == "healthscore_score"
    assert exc.headers["x-hubspot-correlation-id"] == err["correlationId"]
    # a batch with one bad input writes nothing
    other = emu.create("companies", {"name": "Other"})
    batch_exc = api_error(
        client.crm.companies.batch_api.update,
        {
            "inputs": [
                {"id": other, "properties": {"name": "Changed"}},
                {"id": company, "properties": {"healthscore_score": "1"}},
            ]
        },
    )
    assert batch_exc.status == 400 and "PROPERTY_DOESNT_EXIST" in body(batch_exc)["message"]
    assert emu.record("companies", other)["properties"]["name"] == "Other"
    bad_option = api_error(
        client.crm.companies.basic_api.update,
        company,
        {"properties": {"lifecyclestage": "best_friend"}},
    )
    assert "INVALID_OPTION" in body(bad_option)["message"]
    bad_number = api_error(
        client.crm.companies.basic_api.update,
        company,
        {"properties": {"numberofemployees": "many"}},
    )
    assert "INVALID_LONG" in body(bad_number)["message"]
    read_only = api_error(
        client.crm.companies.basic_api.update, company, {"properties": {"hs_object_id": "1"}}
    )
    assert "READ_ONLY_VALUE" in body(read_only)["message"]


# ------------------------------------------------------------------------------ properties
def test_properties_and_groups_api(emu: HubSpotEmulator) -> None:
    client = sdk(emu)
    core, groups = client.crm.properties.core_api, client.crm.properties.groups_api
    names = {p.name for p in core.get_all(object_type="companies").results}
    assert {"name", "domain", "hs_lastmodifieddate", "hubspot_owner_id"} <= names
    group = groups.create(
        object_type="companies",
        property_group_create={"name": "healthscore", "label": "Health score", "displayOrder": -1},
    )
    assert (group.name, group.archived) == ("healthscore", False)
    assert "healthscore" in {g.name for g in groups.get_all(object_type="companies").results}
    grade = core.create(
        object_type="companies",
        property_create={
            "name": "healthscore_grade",
            "label": "Health grade",
            "groupName": "healthscore",
            "type": "enumeration",
            "fieldType": "select",
            "options": [
                {"label": "Green", "value": "green", "displayOrder": 0},
                {"label": "Red", "value": "red", "displayOrder": 1},
            ],
        },
    )
    assert type(grade).__name__ == "ModelProperty"  # 201 mapped by the SDK
    assert grade.hubspot_defined is False and [o.value for o in grade.options] == ["green", "red"]
    assert (
        core.get_by_name(object_type="companies", property_name="healthscore_grade").type
        == "enumeration"
    )
    again = api_error(
        core.create,
        object_type="companies",
        property_create={
            "name": "healthscore_grade",
            "label": "x",
            "groupName": "healthscore",
            "type": "string",
            "fieldType": "text",
        },
    )
    assert again.status == 409 and body(again)["category"] == "CONFLICT"
    no_group = api_error(
        core.create,
        object_type="companies",
        property_create={
            "name": "orphan",
            "label": "x",
            "groupName": "nope",
            "type": "string",
            "fieldType": "text",
        },
    )
    assert no_group.status == 400
    company = emu.create("companies", {"name": "Acme"})
    updated = client.crm.companies.basic_api.update(
        company, {"properties": {"healthscore_grade": "green"}}
    )
    assert updated.properties["healthscore_grade"] == "green"
    assert api_error(core.get_by_name, object_type="companies", property_name="nope").status == 404


# ------------------------------------------------------------------------------ owners, seed
def test_seed_from_synthetic_org_and_owners(emu: HubSpotEmulator) -> None:
    org = generate_org(40, seed=7, now=NOW)
    companies = hubspot_companies_from_org(org)
    owners = hubspot_owners_from_org(org)
    ids = emu.seed(org)
    assert len(ids) == len(org.accounts) == len(companies)
    client = sdk(emu)
    account = org.accounts[5]
    got = client.crm.companies.basic_api.get_by_id(
        ids[5],
        properties=[
            "name",
            "domain",
            "hubspot_owner_id",
            "licensed_seats",
            "active_users_30d",
            "onboarding_complete",
            "nps_score",
            "renewal_date",
            "annualrevenue",
            "lifecyclestage",
        ],
    )
    props = got.properties
    assert props["name"] == account["Name"]
    assert account["Website"] == f"https://{props['domain']}"
    assert props["licensed_seats"] == str(int(account["Licensed_Seats__c"]))
    assert props["active_users_30d"] == str(int(account["Active_Users_30d__c"]))
    assert props["onboarding_complete"] == str(account["Onboarding_Complete__c"]).lower()
    assert props["renewal_date"] == account["Renewal_Date__c"].isoformat()
    assert props["annualrevenue"] == str(int(account["ARR__c"]))
    assert props["lifecyclestage"] == "customer"
    nps = account["NPS_Score__c"]
    assert props["nps_score"] == (None if nps is None else str(int(nps)))
    owner = {o["id"]: o for o in owners}[props["hubspot_owner_id"]]
    assert owner["email"] == account["OwnerEmail"]
    # the owners API
    owners_api = client.crm.owners.owners_api
    first = owners_api.get_page(limit=2)
    assert len(first.results) == 2 and first.paging.next.after == "2"
    rest = owners_api.get_page(limit=100, after=first.paging.next.after)
    assert len(first.results) + len(rest.results) == len(org.users) and rest.paging is None
    by_email = owners_api.get_page(email=account["OwnerEmail"].upper()).results
    assert [o.id for o in by_email] == [props["hubspot_owner_id"]]
    assert by_email[0].user_id == owner["userId"] and by_email[0].type == "PERSON"
    # one synthetic org seeds both CRMs: the mapping is stable and complete
    assert hubspot_companies_from_org(org) == companies
    assert all(isinstance(v, str) for c in companies for v in c.values())
    assert isinstance(org.accounts[0]["Customer_Since__c"], date)


# ------------------------------------------------------------------------------ tasks, v4
def test_task_with_association_and_v4_listing(emu: HubSpotEmulator) -> None:
    company = emu.create("companies", {"name": "Acme"})
    other = emu.create("companies", {"name": "Other"})
    client = sdk(emu)
    tasks = client.crm.objects.tasks.basic_api
    task = tasks.create(
        {
            "properties": {
                "hs_timestamp": "2026-11-30T09:00:00.000Z",
                "hs_task_subject": "Health dropped to 38",
                "hs_task_body": "Top reasons",
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH",
                "hs_task_type": "TODO",
            },
            "associations": [
                {
                    "to": {"id": company},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
                }
            ],
        }
    )
    assert type(task).__name__ == "SimplePublicObject"  # 201
    assert task.properties["hs_task_subject"] == "Health dropped to 38"
    v4 = client.crm.associations.v4.basic_api
    linked = v4.get_page("companies", company, "tasks")
    assert [str(r.to_object_id) for r in linked.results] == [task.id]
    assert linked.results[0].association_types[0].type_id == 191  # company → task
    from_task = v4.get_page("tasks", task.id, "companies")
    assert from_task.results[0].association_types[0].type_id == 192
    made = v4.create_default("tasks", task.id, "companies", other)
    assert made.status == "COMPLETE"
    assert emu.associations("companies", other, "tasks") == [task.id]
    got = client.crm.companies.basic_api.get_by_id(company, associations=["tasks"])
    assert got.associations["tasks"].results[0].id == task.id
    no_due = api_error(tasks.create, {"properties": {"hs_task_subject": "x"}})
    assert no_due.status == 400 and "hs_timestamp" in body(no_due)["message"]
    wrong_type = api_error(
        tasks.create,
        {
            "properties": {"hs_timestamp": "1764493200000"},
            "associations": [
                {
                    "to": {"id": company},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
                }
            ],
        },
    )
    assert wrong_type.status == 400  # 204 is task → contact, and the company is no contact
    bad_status = api_error(
        tasks.create, {"properties": {"hs_timestamp": "1764493200000", "hs_task_status": "DONE"}}
    )
    assert "INVALID_OPTION" in body(bad_status)["message"]


def test_contacts_use_lastmodifieddate_and_unique_email(emu: HubSpotEmulator) -> None:
    client = sdk(emu)
    contacts = client.crm.contacts
    first = contacts.basic_api.create(
        {"properties": {"email": "kim@acme.test", "firstname": "Kim"}}
    )
    assert "lastmodifieddate" in first.properties
    assert "hs_lastmodifieddate" not in first.properties
    dup = api_error(contacts.basic_api.create, {"properties": {"email": "KIM@acme.test"}})
    assert dup.status == 409 and body(dup)["message"] == (
        f"Contact already exists. Existing ID: {first.id}"
    )
    found = contacts.search_api.do_search(
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": ms(NOW)}
                    ]
                }
            ]
        }
    )
    assert found.total == 1
    wrong = api_error(
        contacts.search_api.do_search,
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": ms(NOW)}
                    ]
                }
            ]
        },
    )
    assert wrong.status == 400


# ------------------------------------------------------------------------------ limits, faults
def test_ten_secondly_limit_answers_429_with_headers() -> None:
    clock = FakeMonotonic()
    with HubSpotEmulator(requests_per_10s=3, rate_clock=clock) as emu:
        # Retry(0): without it urllib3 would sleep Retry-After and retry this GET itself
        api = sdk(emu, retry=Retry(0)).crm.companies.basic_api
        remaining = []
        for _ in range(3):
            _, status, headers = api.get_page_with_http_info(limit=1)
            assert status == 200
            assert headers["X-HubSpot-RateLimit-Max"] == "3"
            assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            assert int(headers["X-HubSpot-RateLimit-Daily-Remaining"]) > 0
            remaining.append(headers["X-HubSpot-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]
        clock.now += 4
        exc = api_error(api.get_page, limit=1)
        assert exc.status == 429 and type(exc) is CompaniesApiException
        err = body(exc)
        assert err["errorType"] == "RATE_LIMIT" and err["category"] == "RATE_LIMITS"
        assert err["policyName"] == "TEN_SECONDLY_ROLLING" and err["status"] == "error"
        assert err["message"] == "You have reached your ten_secondly_rolling limit."
        assert err["correlationId"]
        assert exc.headers["Retry-After"] == "6"
        assert exc.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        clock.now += 6  # the oldest request leaves the rolling window
        assert api.get_page(limit=1).results == []
        assert emu.api_calls == 4  # the 429 was not counted


def test_search_has_its_own_secondly_limit() -> None:
    clock = FakeMonotonic()
    with HubSpotEmulator(requests_per_10s=2, rate_clock=clock) as emu:
        client = sdk(emu)
        search = client.crm.companies.search_api.do_search_with_http_info
        for _ in range(5):  # 5/s, and not counted against the ten-secondly window
            _, status, headers = search({"limit": 1})
            assert status == 200 and "X-HubSpot-RateLimit-Max" not in headers
        exc = api_error(search, {"limit": 1})
        assert exc.status == 429 and body(exc)["policyName"] == "SECONDLY"
        assert body(exc)["message"] == "You have reached your secondly limit."
        assert "X-HubSpot-RateLimit-Remaining" not in exc.headers
        assert client.crm.companies.basic_api.get_page(limit=1).results == []
        clock.now += 1
        assert search({"limit": 1})[1] == 200
        emu.set_rate_limits(search_per_second=1)
        search({"limit": 1})
        assert api_error(search, {"limit": 1}).status == 429


def test_faults_use_hubspot_wire_format(emu: HubSpotEmulator) -> None:
    api = sdk(emu).crm.companies.basic_api
    emu.faults.add("server_error", path=r"/crm/v3/objects/companies$", times=1)
    boom = api_error(api.get_page)
    assert isinstance(boom, ServiceException) and boom.status == 500
    assert set(body(boom)) >= {"status", "message", "correlationId", "category"}
    assert api.get_page().results == []  # the rule is spent
    emu.faults.add("rate_limit", times=1)
    batch_read = sdk(emu).crm.companies.batch_api.read
    limited = api_error(
        batch_read, {"properties": [], "propertiesWithHistory": [], "inputs": []}
    )  # a POST: urllib3 never retries it
    assert limited.status == 429 and body(limited)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.headers["Retry-After"] == "1"
    emu.faults.add("expired_session", times=1)
    expired = api_error(api.get_page)
    assert isinstance(expired, UnauthorizedException)
    assert body(expired)["category"] == "EXPIRED_AUTHENTICATION"
    emu.faults.add("slow", times=1, delay=0.2)
    started = time.monotonic()
    assert api.get_page().results == []
    assert time.monotonic() - started >= 0.2
    assert [e.fault for e in emu.requests()] == [
        "server_error",
        None,
        "rate_limit",
        "expired_session",
        "slow",
    ]


def test_sdk_retries_a_get_429_that_carries_retry_after() -> None:
    """hubspot-api-client leaves urllib3's default Retry(3) in place: a GET (not a POST or
    PATCH) answered 429 *with* Retry-After is retried after sleeping that long."""
    with HubSpotEmulator() as emu:
        emu.faults.add("rate_limit", method="GET", times=1)
        started = time.monotonic()
        assert sdk(emu).crm.companies.basic_api.get_page().results == []
        assert time.monotonic() - started >= 1.0
        assert [e.fault for e in emu.requests("GET")] == ["rate_limit", None]
    with HubSpotEmulator(retry_after=False) as emu:
        emu.faults.add("rate_limit", method="GET", times=1)
        exc = api_error(sdk(emu).crm.companies.basic_api.get_page)
        assert exc.status == 429 and "Retry-After" not in exc.headers
        assert len(emu.requests("GET")) == 1


def test_bad_token_is_401_and_tokens_never_logged(emu: HubSpotEmulator) -> None:
    wrong = api_error(sdk(emu, "pat-na1-wrong").crm.companies.basic_api.get_page)
    assert isinstance(wrong, UnauthorizedException) and wrong.status == 401
    err = body(wrong)
    assert err["category"] == "INVALID_AUTHENTICATION" and err["status"] == "error"
    assert err["message"].startswith("Authentication credentials not found.")
    assert "X-HubSpot-RateLimit-Max" not in wrong.headers
    missing = api_error(HubSpot(host=emu.base_url).crm.companies.basic_api.get_page)
    assert missing.status == 401
    owners = api_error(sdk(emu, "nope").crm.owners.owners_api.get_page)
    assert owners.status == 401  # every API checks the token
    old = emu.access_token
    emu.expire_tokens()
    expired = api_error(sdk(emu, old).crm.companies.basic_api.get_page)
    assert body(expired)["category"] == "EXPIRED_AUTHENTICATION"
    fresh = emu.issue_token()
    assert sdk(emu, fresh).crm.companies.basic_api.get_page().results == []
    assert emu.api_calls == 1  # rejected calls are not counted
    # the api_request helper reads base_url (trap 1 of the sheet)
    raw = sdk(emu, fresh).api_request({"method": "GET", "path": "/crm/v3/owners/"})
    assert raw.status_code == 200 and raw.json() == {"results": []}
    logged = repr(emu.requests())
    assert old not in logged and fresh not in logged and "Authorization" not in logged
