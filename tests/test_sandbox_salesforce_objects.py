"""Emulator objects beyond Account (Contact, Opportunity, Case, Task, Event), record creates and
upserts, Bulk API 2.0 query jobs and the synthetic related records — through simple-salesforce.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.salesforce import SalesforceEmulator
from sandbox.salesforce_bulk import decode_locator, encode_locator
from sandbox.synthetic import generate_org
from sandbox.tls import SandboxCA

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
V = "/services/data/v59.0"


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


def sf_client(emu: SalesforceEmulator, version: str = "59.0") -> Salesforce:
    return Salesforce(
        instance_url=emu.base_url,
        session_id=emu.issue_token(),
        session=emu.ca.requests_session(),
        version=version,
    )


def raw(emu: SalesforceEmulator) -> requests.Session:
    """A plain HTTPS session with a valid bearer token (for wire-level assertions)."""
    session = emu.ca.requests_session()
    session.headers["Authorization"] = f"Bearer {emu.issue_token()}"
    return session


def rows(chunks: list[str]) -> list[dict[str, str]]:
    return [r for chunk in chunks for r in csv.DictReader(io.StringIO(chunk))]


@pytest.fixture
def emu(ca: SandboxCA) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(ca=ca, bulk_polls=1) as server:
        server.seed(generate_org(40, seed=5, now=NOW))
        yield server


@pytest.fixture(scope="module")
def big_emu(ca: SandboxCA) -> Iterator[SalesforceEmulator]:
    """800 accounts: more than 2,000 Contacts, Opportunities and Cases each."""
    with SalesforceEmulator(ca=ca) as server:
        server.seed(generate_org(800, seed=9, now=NOW))
        yield server


# ------------------------------------------------------------------------------ describe


def test_describe_knows_the_related_objects(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    names = {o["name"]: o for o in sf.describe()["sobjects"]}
    assert {"Account", "User", "Contact", "Opportunity", "Case", "Task", "Event"} <= set(names)
    assert names["Opportunity"]["keyPrefix"] == "006" and names["Task"]["keyPrefix"] == "00T"

    opp = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    stages = [p["value"] for p in opp["StageName"]["picklistValues"]]
    assert {"Closed Won", "Closed Lost"} <= set(stages)
    types = {p["value"] for p in opp["Type"]["picklistValues"]}
    assert {"Renewal", "New Business", "Expansion", "Upsell"} <= types
    assert opp["IsWon"]["updateable"] is False and opp["IsClosed"]["createable"] is False
    assert opp["AccountId"]["referenceTo"] == ["Account"]
    assert opp["AccountId"]["relationshipName"] == "Account"

    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    key = task["Healthscore_Key__c"]
    assert (key["externalId"], key["unique"], key["idLookup"], key["custom"]) == (
        True,
        True,
        True,
        True,
    )
    assert task["WhatId"]["referenceTo"] == ["Account", "Opportunity", "Case"]
    assert task["ActivityDate"]["type"] == "date"

    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    roles = [p["value"] for p in contact["Role__c"]["picklistValues"]]
    assert roles == ["Admin", "Champion", "Executive Sponsor", "User"]
    assert contact["HasOptedOutOfEmail"]["type"] == "boolean"
    case = {f["name"]: f for f in sf.Case.describe()["fields"]}
    assert {"High", "Urgent"} <= {p["value"] for p in case["Priority"]["picklistValues"]}
    assert case["CaseNumber"]["autoNumber"] is True

    children = {c["relationshipName"]: c for c in sf.Account.describe()["childRelationships"]}
    assert {"Contacts", "Opportunities", "Cases", "Tasks", "Events"} <= set(children)
    assert children["Tasks"] == {**children["Tasks"], "childSObject": "Task", "field": "WhatId"}


# ------------------------------------------------------------------------------ SOQL


@pytest.mark.parametrize("sobject", ["Opportunity", "Case", "Contact"])
def test_query_pages_related_objects_past_2000(big_emu: SalesforceEmulator, sobject: str) -> None:
    stored = [r for r in big_emu.records(sobject) if not r["IsDeleted"]]
    assert len(stored) > 2000
    big_emu.clear_log()
    sf = sf_client(big_emu)
    result = sf.query_all(f"SELECT Id, AccountId, Account.Name, SystemModstamp FROM {sobject}")
    ids = [r["Id"] for r in result["records"]]
    assert len(ids) == len(set(ids)) == len(stored) == result["totalSize"]
    more = big_emu.requests("GET", r"/query/01g\w+-\d+$")
    assert len(more) == math.ceil(len(stored) / 2000) - 1
    names = {r["Id"]: r["Name"] for r in big_emu.records("Account")}
    for record in result["records"][:300]:
        assert record["Account"]["Name"] == names[record["AccountId"]]
        assert record["Account"]["attributes"]["type"] == "Account"


def test_relationship_filters_and_polymorphic_what(big_emu: SalesforceEmulator) -> None:
    sf = sf_client(big_emu)
    enterprise = sf.query_all(
        "SELECT Id, Account.Plan_Tier__c, Amount FROM Opportunity "
        "WHERE Account.Plan_Tier__c = 'Enterprise' AND IsWon = true ORDER BY Amount DESC"
    )["records"]
    assert enterprise and all(r["Account"]["Plan_Tier__c"] == "Enterprise" for r in enterprise)
    amounts = [r["Amount"] for r in enterprise]
    assert amounts == sorted(amounts, reverse=True)

    urgent = sf.query(
        "SELECT COUNT() FROM Case WHERE IsClosed = false AND Priority IN ('High', 'Urgent')"
    )["totalSize"]
    expected = sum(a["Urgent_Open_Cases__c"] for a in big_emu.records("Account"))
    assert urgent == expected

    task_id = big_emu.insert(
        "Task",
        [{"WhatId": big_emu.records("Opportunity")[0]["Id"], "Subject": "on an opportunity"}],
    )[0]
    (task,) = sf.query(f"SELECT Id, What.Name, Who.Email FROM Task WHERE Id = '{task_id}'")[
        "records"
    ]
    assert task["What"]["attributes"]["type"] == "Opportunity"
    assert task["What"]["Name"] == big_emu.records("Opportunity")[0]["Name"]
    assert task["Who"] is None
    meetings = sf.query_all(
        "SELECT Id, What.Name, StartDateTime FROM Event "
        "WHERE Type = 'Executive Sponsor Meeting' AND StartDateTime >= 2026-08-25T00:00:00Z"
    )["records"]
    assert len(meetings) == sum(
        a["Exec_Sponsor_Meetings_90d__c"] for a in big_emu.records("Account")
    )
    assert all(m["What"]["attributes"]["type"] == "Account" for m in meetings)


def test_delete_and_query_all_show_deleted_related_records(ca: SandboxCA) -> None:
    with SalesforceEmulator(ca=ca) as emu:
        emu.seed(generate_org(10, seed=2, now=NOW))
        sf = sf_client(emu)
        opp_id = emu.seeded["Opportunity"][0]
        before = emu.record("Opportunity", opp_id)["SystemModstamp"]
        assert sf.Opportunity.delete(opp_id) == 204
        with pytest.raises(SalesforceResourceNotFound):
            sf.Opportunity.delete(opp_id)
        live = sf.query_all("SELECT Id FROM Opportunity")["records"]
        assert opp_id not in {r["Id"] for r in live}
        stamp = before.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        deleted = sf.query_all(
            f"SELECT Id, IsDeleted, SystemModstamp FROM Opportunity "
            f"WHERE IsDeleted = true AND SystemModstamp >= {stamp}",
            include_deleted=True,
        )["records"]
        assert [(r["Id"], r["IsDeleted"]) for r in deleted] == [(opp_id, True)]
        everything = sf.query_all("SELECT Id FROM Opportunity", include_deleted=True)
        assert everything["totalSize"] == len(live) + 1

        # Derived fields follow writes: closing a case sets IsClosed and ClosedDate.
        case_id = next(r["Id"] for r in emu.records("Case") if not r["IsClosed"])
        assert sf.Case.update(case_id, {"Status": "Closed"}) == 204
        closed = sf.Case.get(case_id)
        assert closed["IsClosed"] is True and closed["ClosedDate"].endswith("+0000")
        with pytest.raises(SalesforceMalformedRequest) as readonly:
            sf.Case.update(case_id, {"IsClosed": False})
        assert readonly.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


# ------------------------------------------------------------------------------ writes


def test_task_create_validation_and_external_id_upsert(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    account_id = emu.seeded["Account"][3]
    owner_id = emu.record("Account", account_id)["OwnerId"]
    created = sf.Task.create(
        {
            "WhatId": account_id,
            "OwnerId": owner_id,
            "Subject": "Health dropped to 38 (red)",
            "ActivityDate": "2026-11-30",
            "Priority": "High",
            "Description": "Top reasons: seat utilisation 22% (-14)",
        }
    )
    assert created["success"] is True and created["errors"] == []
    task = emu.record("Task", created["id"])
    assert created["id"].startswith("00T") and task["WhatId"] == account_id
    assert (task["Status"], task["IsClosed"], str(task["ActivityDate"])) == (
        "Not Started",
        False,
        "2026-11-30",
    )
    with pytest.raises(SalesforceMalformedRequest) as bad_ref:
        sf.Task.create({"WhatId": "001SB0000000ZZZZZZ", "Subject": "x"})
    assert bad_ref.value.content[0]["errorCode"] in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID")
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Opportunity.create({"Name": "No stage"})
    assert missing.value.content == [
        {
            "message": "Required fields are missing: [StageName, CloseDate]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["StageName", "CloseDate"],
        }
    ]

    key = f"acct-{account_id}-2026-11-23-red"
    before = len(emu.records("Task"))
    first = sf.Task.upsert(
        f"Healthscore_Key__c/{key}",
        {"WhatId": account_id, "Subject": "Health dropped to 38 (red)", "Priority": "High"},
        raw_response=True,
    )
    assert first.status_code == 201
    body = first.json()
    assert body["success"] is True and body["created"] is True
    second = sf.Task.upsert(
        f"Healthscore_Key__c/{key}", {"Subject": "Health dropped to 35 (red)"}, raw_response=True
    )
    assert second.status_code == 200  # API v46.0+: 200 + "created": false (v45 and older: 204)
    assert second.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    mine = [t for t in emu.records("Task") if t["Healthscore_Key__c"] == key]
    assert len(mine) == 1 and len(emu.records("Task")) == before + 1
    assert mine[0]["Subject"] == "Health dropped to 35 (red)"
    assert sf.Task.get_by_custom_id("Healthscore_Key__c", key)["Id"] == body["id"]

    old = sf_client(emu, version="45.0")
    assert old.Task.upsert("Healthscore_Key__c/old-api-key", {"Subject": "a"}) == 201
    assert old.Task.upsert("Healthscore_Key__c/old-api-key", {"Subject": "b"}) == 204

    with pytest.raises(SalesforceMalformedRequest) as dup:
        sf.Task.create({"Subject": "dup", "Healthscore_Key__c": key.upper()})
    assert dup.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    with pytest.raises(SalesforceResourceNotFound) as not_ext:
        sf.Task.upsert("Subject/whatever", {"Priority": "Low"})
    assert "external ID field" in not_ext.value.content[0]["message"]


def test_collections_create_up_to_200(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    accounts = emu.seeded["Account"]
    before = len(emu.records("Task"))

    def task(i: int, **extra: Any) -> dict[str, Any]:
        return {
            "attributes": {"type": "Task"},
            "WhatId": accounts[i % len(accounts)],
            "Subject": f"Follow up {i}",
            "Healthscore_Key__c": f"batch-{i}",
            **extra,
        }

    emu.clear_log()
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": True, "records": [task(i) for i in range(200)]},
    )
    assert len(emu.requests("POST", r"/composite/sobjects$")) == 1
    assert len(results) == 200 and all(r["success"] and r["id"] for r in results)
    assert len(emu.records("Task")) == before + 200
    assert emu.record("Task", results[7]["id"])["Subject"] == "Follow up 7"

    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.restful(
            "composite/sobjects", method="POST", json={"records": [task(i) for i in range(201)]}
        )
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"

    # allOrNone: one bad record (a duplicate external id) and nothing is committed.
    batch = [task(1000), task(1001, Priority="Low"), task(5)]
    rolled = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": batch}
    )
    assert [r["success"] for r in rolled] == [False, False, False]
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert rolled[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert len(emu.records("Task")) == before + 200
    partial = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": batch}
    )
    assert [r["success"] for r in partial] == [True, True, False]
    assert emu.record("Task", partial[1]["id"])["Priority"] == "Low"
    assert len(emu.records("Task")) == before + 202


# ------------------------------------------------------------------------------ Bulk API 2.0


def test_bulk2_queries_return_every_row_over_several_pages(big_emu: SalesforceEmulator) -> None:
    sf = sf_client(big_emu)
    big_emu.clear_log()
    chunks = list(
        sf.bulk2.Account.query(
            "SELECT Id, Name, ARR__c, Owner.Email, Renewal_Date__c FROM Account",
            max_records=150,
            wait=0,
        )
    )
    accounts = big_emu.records("Account")
    assert len(chunks) == math.ceil(len(accounts) / 150)
    got = rows(chunks)
    assert [r["Id"] for r in got] == [a["Id"] for a in accounts]
    emails = {u["Id"]: u["Email"] for u in big_emu.records("User")}
    first = accounts[0]
    assert got[0]["Name"] == first["Name"]  # hostile names survive CSV quoting
    assert got[0]["Owner.Email"] == emails[first["OwnerId"]]
    assert got[0]["Renewal_Date__c"] == first["Renewal_Date__c"].isoformat()
    pages = big_emu.requests("GET", r"/jobs/query/750\w+/results$")
    assert len(pages) == len(chunks) and all(p.query["maxRecords"] == "150" for p in pages)
    assert "locator" not in pages[0].query and "locator" in pages[1].query

    opp_id = big_emu.seeded["Opportunity"][0]
    big_emu.delete("Opportunity", opp_id)
    soql = "SELECT Id, AccountId, StageName, IsWon, CloseDate, SystemModstamp FROM Opportunity"
    live = rows(list(sf.bulk2.Opportunity.query(soql, max_records=1000, wait=0)))
    stored = big_emu.records("Opportunity")
    assert len(live) == len(stored) - 1 and opp_id not in {r["Id"] for r in live}
    everything = rows(list(sf.bulk2.Opportunity.query_all(soql, max_records=1000, wait=0)))
    assert len(everything) == len(stored)
    row = next(r for r in everything if r["Id"] == stored[1]["Id"])
    assert row["IsWon"] in ("true", "false") and row["SystemModstamp"].endswith("Z")
    assert row["CloseDate"] == stored[1]["CloseDate"].isoformat()


def test_bulk_job_wire_protocol(ca: SandboxCA) -> None:
    with SalesforceEmulator(ca=ca, bulk_polls=2) as emu:
        emu.seed(generate_org(25, seed=1, now=NOW))
        http = raw(emu)
        soql = "SELECT Id, Name, StageName FROM Opportunity"
        created = http.post(
            f"{emu.base_url}{V}/jobs/query",
            json={"operation": "query", "query": soql, "lineEnding": "CRLF"},
            headers={"Accept": "text/csv; charset=UTF-8"},
        )
        assert created.status_code == 200 and created.headers["Content-Type"].startswith(
            "application/json"
        )
        job = created.json()
        assert job["id"].startswith("750") and len(job["id"]) == 18
        assert (job["state"], job["object"], job["operation"]) == (
            "UploadComplete",
            "Opportunity",
            "query",
        )
        assert (job["contentType"], job["apiVersion"], job["columnDelimiter"]) == (
            "CSV",
            59.0,
            "COMMA",
        )
        url = f"{emu.base_url}{V}/jobs/query/{job['id']}"
        early = http.get(url + "/results")
        assert early.status_code == 412 and early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
        states = [http.get(url).json()["state"] for _ in range(3)]
        assert states == ["UploadComplete", "InProgress", "JobComplete"]
        info = http.get(url).json()
        total = len(emu.records("Opportunity"))
        assert info["numberRecordsProcessed"] == total and info["jobType"] == "V2Query"

        first = http.get(url + "/results", params={"maxRecords": 40})
        assert first.status_code == 200 and first.headers["Content-Type"].startswith("text/csv")
        assert first.headers["Sforce-NumberOfRecords"] == "40"
        assert decode_locator(first.headers["Sforce-Locator"]) == 40
        assert first.text.startswith('"Id","Name","StageName"\r\n')
        assert first.headers["Sforce-Limit-Info"].startswith("api-usage=")
        locator = encode_locator(total - 5)
        last = http.get(url + "/results", params={"maxRecords": 40, "locator": locator})
        assert last.headers["Sforce-Locator"] == "null"
        assert last.headers["Sforce-NumberOfRecords"] == "5"
        assert len(list(csv.reader(io.StringIO(last.text)))) == 6
        bad = http.get(url + "/results", params={"locator": "!!!"})
        assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
        other_version = http.get(url.replace("v59.0", "v58.0") + "/results")
        assert other_version.status_code == 409

        listed = http.get(f"{emu.base_url}{V}/jobs/query").json()
        assert [j["id"] for j in listed["records"]] == [job["id"]] and listed["done"] is True
        refused = http.patch(url, json={"state": "Aborted"})
        assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALIDJOBSTATE"
        assert http.delete(url).status_code == 204
        assert http.get(url).json()[0]["errorCode"] == "NOT_FOUND"

        second = http.post(
            f"{emu.base_url}{V}/jobs/query", json={"operation": "queryAll", "query": soql}
        ).json()
        aborted = http.patch(
            f"{emu.base_url}{V}/jobs/query/{second['id']}", json={"state": "Aborted"}
        )
        assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
        limits = http.get(f"{emu.base_url}{V}/limits/").json()
        assert limits["DailyBulkV2QueryJobs"] == {"Max": 10000, "Remaining": 9998}
        assert limits["DailyBulkV2QueryFileStorageMB"]["Max"] == 976562

        sf = sf_client(emu)
        for bad_soql, code in [
            ("SELECT COUNT() FROM Account", "API_ERROR"),
            ("SELECT Id FROM Account LIMIT 5 OFFSET 5", "API_ERROR"),
            ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD"),
            ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
            ("SELECT FROM Account", "MALFORMED_QUERY"),
        ]:
            with pytest.raises(SalesforceMalformedRequest) as exc:
                next(iter(sf.bulk2.Account.query(bad_soql, wait=0)))
            assert exc.value.content[0]["errorCode"] == code, bad_soql


def test_bulk_jobs_share_auth_limits_and_faults(ca: SandboxCA) -> None:
    with SalesforceEmulator(ca=ca, bulk_polls=0, api_limit=40) as emu:
        emu.seed(generate_org(12, seed=4, now=NOW))
        sf = sf_client(emu)
        soql = "SELECT Id, Name FROM Account"
        used = emu.api_used
        assert len(rows(list(sf.bulk2.Account.query(soql, max_records=5, wait=0)))) == 12
        assert emu.api_used - used == 1 + 1 + 3  # create, one poll, three result pages

        emu.faults.add("expired_session", path=r"/jobs/query/750\w+$", method="GET", times=1)
        with pytest.raises(SalesforceExpiredSession) as expired:
            list(sf.bulk2.Account.query(soql, wait=0))
        assert expired.value.content == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]
        emu.faults.add("rate_limit", path=r"/jobs/query", times=1)
        with pytest.raises(SalesforceRefusedRequest) as refused:
            list(sf.bulk2.Account.query(soql, wait=0))
        assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        emu.faults.add("server_error", path=r"/results", times=1)
        with pytest.raises(SalesforceGeneralError) as busy:
            list(sf.bulk2.Account.query(soql, wait=0))
        assert busy.value.status == 503
        assert [e.fault for e in emu.requests() if e.fault] == [
            "expired_session",
            "rate_limit",
            "server_error",
        ]

        emu.bulk.fail_next("InvalidBatch : Failed to process query: QUERY_TIMEOUT")
        with pytest.raises(SalesforceOperationError, match="QUERY_TIMEOUT"):
            list(sf.bulk2.Account.query(soql, wait=0))

        emu.expire_tokens()
        with pytest.raises(SalesforceExpiredSession):
            list(sf.bulk2.Account.query(soql, wait=0))

        fresh = sf_client(emu)
        while emu.api_used < emu.api_limit:
            fresh.limits()
        with pytest.raises(SalesforceRefusedRequest) as spent:
            list(fresh.bulk2.Account.query(soql, wait=0))
        assert spent.value.content == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]


# ------------------------------------------------------------------------------ synthetic


def test_seed_links_related_records_to_their_accounts(ca: SandboxCA) -> None:
    org = generate_org(300, seed=21, now=NOW)
    assert org == generate_org(300, seed=21, now=NOW)
    bare = generate_org(300, seed=21, now=NOW, related=False)
    assert (bare.accounts, bare.users) == (org.accounts, org.users)
    assert not (bare.contacts or bare.opportunities or bare.cases or bare.tasks or bare.events)

    with SalesforceEmulator(ca=ca) as emu:
        account_ids = emu.seed(org)
        seeded = emu.seeded
        assert seeded["Account"] == account_ids
        assert {k: len(v) for k, v in seeded.items() if k not in ("User", "Account")} == {
            "Contact": len(org.contacts),
            "Opportunity": len(org.opportunities),
            "Case": len(org.cases),
            "Task": len(org.tasks),
            "Event": len(org.events),
        }
        accounts = set(account_ids)
        contacts = {c["Id"]: c for c in emu.records("Contact")}
        users = {u["Id"] for u in emu.records("User")}
        for name in ("Contact", "Opportunity", "Case"):
            for record in emu.records(name):
                assert record["AccountId"] in accounts and record["OwnerId"] in users
        for name in ("Task", "Event"):
            for record in emu.records(name):
                assert record["WhatId"] in accounts
                assert record["WhoId"] is None or (
                    contacts[record["WhoId"]]["AccountId"] == record["WhatId"]
                )
        for case in emu.records("Case"):
            assert contacts[case["ContactId"]]["AccountId"] == case["AccountId"]
            assert case["CreatedDate"] < NOW and case["CaseNumber"].isdigit()
            assert (
                (case["ClosedDate"] is not None) == case["IsClosed"] == (case["Status"] == "Closed")
            )

        # The seeded records agree with each account's own fields and archetype.
        by_account: dict[str, dict[str, list[dict[str, Any]]]] = {
            a: {n: [] for n in ("Contact", "Opportunity", "Case", "Task", "Event")}
            for a in accounts
        }
        for name in by_account[account_ids[0]]:
            field = "WhatId" if name in ("Task", "Event") else "AccountId"
            for record in emu.records(name):
                by_account[record[field]][name].append(record)
        kinds = Counter()
        for account_id, source in zip(account_ids, org.accounts, strict=True):
            kind = org.archetypes[source["Name"]]
            kinds[kind] += 1
            mine = by_account[account_id]
            domain = source["Website"].removeprefix("https://")
            assert 1 <= len(mine["Contact"]) <= 4
            assert all(c["Email"].endswith("@" + domain) for c in mine["Contact"])
            assert {"Admin"} <= {c["Role__c"] for c in mine["Contact"]}
            open_cases = [c for c in mine["Case"] if not c["IsClosed"]]
            assert len(open_cases) == max(source["Open_Cases__c"], source["Urgent_Open_Cases__c"])
            urgent = [c for c in open_cases if c["Priority"] in ("High", "Urgent")]
            assert len(urgent) == source["Urgent_Open_Cases__c"]
            renewals = [o for o in mine["Opportunity"] if o["Type"] == "Renewal"]
            upcoming = [o for o in renewals if o["CloseDate"] == source["Renewal_Date__c"]]
            lost = [o for o in renewals if o["StageName"] == "Closed Lost"]
            if kind == "about_to_churn":
                assert (len(upcoming), len(lost)) in ((1, 0), (0, 1))
                assert all(o["CloseDate"] < TODAY for o in lost)
                assert all(not o["IsClosed"] for o in upcoming)
                assert (source["Renewal_Date__c"] - TODAY).days <= 60
            else:
                assert len(upcoming) == 1 and not upcoming[0]["IsClosed"] and not lost
            assert all(o["IsWon"] for o in renewals if o["CloseDate"] < TODAY and o not in lost)
            if kind == "healthy":
                won = [o for o in mine["Opportunity"] if o["Type"] in ("Expansion", "Upsell")]
                assert any(o["IsWon"] and (TODAY - o["CloseDate"]).days <= 365 for o in won)
            done = [t["ActivityDate"] for t in mine["Task"] if t["Status"] == "Completed"]
            if done:
                assert max(done) == source["Last_CSM_Touch_Date__c"]
            exec_meetings = [
                e
                for e in mine["Event"]
                if e["Type"] == "Executive Sponsor Meeting"
                and NOW - timedelta(days=90) <= e["StartDateTime"] <= NOW
            ]
            assert len(exec_meetings) == source["Exec_Sponsor_Meetings_90d__c"]
            if kind == "healthy" and source["Plan_Tier__c"] == "Enterprise":
                assert exec_meetings
                assert "Executive Sponsor" in {c["Role__c"] for c in mine["Contact"]}
        assert set(kinds) == {
            "healthy",
            "declining",
            "stuck_onboarding",
            "about_to_churn",
            "new_healthy",
        }

        opted_out = sum(c["HasOptedOutOfEmail"] for c in contacts.values()) / len(contacts)
        assert 0.02 < opted_out < 0.15

        def mean_cases(kind: str, *, recent: bool = False) -> float:
            ids = [
                a for a, s in zip(account_ids, org.accounts, strict=True)
                if org.archetypes[s["Name"]] == kind
            ]  # fmt: skip
            cutoff = NOW - timedelta(days=30)
            total = sum(
                1
                for a in ids
                for c in by_account[a]["Case"]
                if not recent or c["CreatedDate"] >= cutoff
            )
            return total / len(ids)

        assert mean_cases("about_to_churn") > mean_cases("declining") > mean_cases("healthy")
        assert mean_cases("about_to_churn", recent=True) > mean_cases("healthy", recent=True)
