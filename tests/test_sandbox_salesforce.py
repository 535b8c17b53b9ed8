"""SalesforceEmulator, SOQL, FaultPlan and synthetic org, driven through the real clients.

simple-salesforce talks to the emulator in direct mode (``instance_url`` + ``session_id``) over
HTTPS trusting the sandbox CA; tokens are fetched with httpx from ``token_url``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

# Submodule imports work whether or not the editable install knows sandbox/__init__.py.
from sandbox import soql
from sandbox.faults import FaultPlan
from sandbox.salesforce import SalesforceEmulator
from sandbox.salesforce_schema import id_checksum, normalize_id
from sandbox.synthetic import HOSTILE_NAMES, generate_org
from sandbox.tls import SandboxCA

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


class FakeClock:
    """Deterministic clock for SystemModstamp tests."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


def fetch_token(emu: SalesforceEmulator) -> str:
    with httpx.Client(verify=emu.ca.client_ssl_context()) as client:
        resp = client.post(
            emu.token_url,
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def sf_client(emu: SalesforceEmulator, token: str | None = None) -> Salesforce:
    session = requests.Session()
    session.verify = emu.ca_bundle_path
    # requests lets REQUESTS_CA_BUNDLE from the environment override Session.verify.
    session.trust_env = False
    return Salesforce(
        instance_url=emu.base_url, session_id=token or fetch_token(emu), session=session
    )


def collection(*records: dict[str, Any], all_or_none: bool = False) -> dict[str, Any]:
    return {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Account"}, **r} for r in records],
    }


@pytest.fixture
def emu(ca: SandboxCA) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(ca=ca) as server:
        server.seed(generate_org(40, now=NOW))
        yield server


@pytest.fixture(scope="module")
def big_emu(ca: SandboxCA) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(ca=ca) as server:
        server.seed(generate_org(4500, now=NOW))
        yield server


def account_ids(emu: SalesforceEmulator) -> list[str]:
    return [r["Id"] for r in emu.records("Account")]


# ------------------------------------------------------------------------------ OAuth


def test_client_credentials_token_shape_and_failures(emu: SalesforceEmulator) -> None:
    with httpx.Client(verify=emu.ca.client_ssl_context()) as client:
        ok = client.post(
            emu.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
        bad = client.post(
            emu.token_url, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "nope")
        )
        unsupported = client.post(emu.token_url, data={"grant_type": "password"})
    body = ok.json()
    assert ok.status_code == 200
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
        "scope",
    }
    assert body["instance_url"] == emu.base_url
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit()
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client"
    assert unsupported.status_code == 400
    assert unsupported.json()["error"] == "unsupported_grant_type"
    # Secrets never reach the request log.
    logged = emu.requests("POST", r"oauth2/token")[0]
    assert logged.body["client_secret"] == "[redacted]"
    assert logged.body["grant_type"] == "client_credentials"


def _rsa_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_jwt_bearer_flow(ca: SandboxCA) -> None:
    private, public = _rsa_key()
    other_private, _ = _rsa_key()

    def assertion(key: bytes, **overrides: Any) -> str:
        claims = {
            "iss": CLIENT_ID,
            "sub": "integration@healthscore-demo.test",
            "aud": "https://login.salesforce.com",
            # simple-salesforce sends exp as a string
            "exp": f"{(datetime.now(UTC) + timedelta(minutes=3)).timestamp():.0f}",
            **overrides,
        }
        return jwt.encode(claims, key, algorithm="RS256")

    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    with SalesforceEmulator(ca=ca, jwt_public_key=public) as emu:
        with httpx.Client(verify=ca.client_ssl_context()) as client:

            def post(token: str) -> httpx.Response:
                return client.post(emu.token_url, data={"grant_type": grant, "assertion": token})

            ok = post(assertion(private))
            wrong_key = post(assertion(other_private))
            wrong_iss = post(assertion(private, iss="someone-else"))
            expired = post(assertion(private, exp=int(time.time()) - 60))
            no_sub = post(assertion(private, sub=""))
        assert ok.status_code == 200, ok.text
        sf = sf_client(emu, ok.json()["access_token"])
        assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
        assert (wrong_key.status_code, wrong_key.json()["error"]) == (400, "invalid_grant")
        assert (wrong_iss.status_code, wrong_iss.json()["error"]) == (400, "invalid_client")
        assert (expired.status_code, expired.json()["error"]) == (400, "invalid_grant")
        assert (no_sub.status_code, no_sub.json()["error"]) == (400, "invalid_grant")


def test_https_only(emu: SalesforceEmulator) -> None:
    plain = emu.base_url.replace("https://", "http://") + "/services/data/v59.0/limits/"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(plain, timeout=5)
    # ...and the server keeps serving TLS afterwards.
    assert sf_client(emu).limits()["DailyApiRequests"]["Max"] == 15000


# ------------------------------------------------------------------------------ query


def test_query_all_pages_through_4500_accounts(big_emu: SalesforceEmulator) -> None:
    big_emu.clear_log()
    sf = sf_client(big_emu)
    result = sf.query_all("SELECT Id, Name, SystemModstamp FROM Account")
    ids = [r["Id"] for r in result["records"]]
    assert len(ids) == len(set(ids)) == 4500
    gets = big_emu.requests("GET", r"/query/")
    assert len(gets) == 3
    assert gets[0].query["q"].startswith("SELECT Id")
    assert all(e.status == 200 for e in gets)
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w+-2000", gets[1].path)
    assert all(SF_DATETIME.match(r["SystemModstamp"]) for r in result["records"][:50])


def test_first_page_shape_and_batch_size_hint(big_emu: SalesforceEmulator) -> None:
    sf = sf_client(big_emu)
    page = sf.query("SELECT Id FROM Account")
    assert page["totalSize"] == 4500 and page["done"] is False
    assert len(page["records"]) == 2000
    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    record = page["records"][0]
    assert record["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v59.0/sobjects/Account/{record['Id']}",
    }
    hinted = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(hinted["records"]) == 500
    clamped = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(clamped["records"]) == 200
    # Locator pages are stable snapshots: the same page twice gives the same rows.
    again = [sf.query_more(page["nextRecordsUrl"], identifier_is_url=True) for _ in range(2)]
    assert again[0]["records"] == again[1]["records"]
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query_more("/services/data/v59.0/query/01gSB0000000ZZZAAA-2000", identifier_is_url=True)
    assert bad.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_systemmodstamp_incremental_filter(ca: SandboxCA) -> None:
    clock = FakeClock(NOW)
    with SalesforceEmulator(ca=ca, clock=clock) as emu:
        ids = emu.insert("Account", [{"Name": f"Acct {i}"} for i in range(10)])
        cursor = clock.advance(hours=1)
        for record_id in (ids[7], ids[2], ids[5]):
            emu.update("Account", record_id, {"Open_Cases__c": 3})
        # Same-millisecond writes are realistic: ids 7 and 2 share the same stamp.
        clock.advance(seconds=5)
        emu.update("Account", ids[5], {"Open_Cases__c": 4})
        sf = sf_client(emu)
        literal = cursor.strftime("%Y-%m-%dT%H:%M:%SZ")
        soql_text = (
            "SELECT Id, SystemModstamp FROM Account "
            f"WHERE SystemModstamp >= {literal} ORDER BY SystemModstamp, Id"
        )
        rows = sf.query_all(soql_text)["records"]
        assert [r["Id"] for r in rows] == [*sorted([ids[2], ids[7]]), ids[5]]
        assert rows[0]["SystemModstamp"] == "2026-11-23T10:00:00.000+0000"
        later = "2026-11-23T10:00:01.000+0000"
        q2 = f"SELECT Id FROM Account WHERE SystemModstamp > {later}"
        assert [r["Id"] for r in sf.query(q2)["records"]] == [ids[5]]
        assert sf.query("SELECT Id FROM Account WHERE SystemModstamp < 2026-11-23T09:30:00Z")[
            "totalSize"
        ] == (10 - 3)


def test_owner_relationship_is_nested(emu: SalesforceEmulator) -> None:
    orphan = emu.insert("Account", [{"Name": "No Owner Ltd"}])[0]
    sf = sf_client(emu)
    rows = sf.query_all("SELECT Id, Name, Owner.Email, Owner.Name FROM Account")["records"]
    users = {u["Id"]: u for u in emu.records("User")}
    owned = [r for r in rows if r["Id"] != orphan]
    assert owned and all(r["Owner"] is not None for r in owned)
    sample = owned[0]
    owner_id = emu.record("Account", sample["Id"])["OwnerId"]
    assert sample["Owner"]["attributes"]["type"] == "User"
    assert sample["Owner"]["attributes"]["url"].endswith(f"/sobjects/User/{owner_id}")
    assert sample["Owner"]["Email"] == users[owner_id]["Email"]
    assert sample["Owner"]["Name"] == users[owner_id]["Name"]
    assert next(r for r in rows if r["Id"] == orphan)["Owner"] is None
    email = users[owner_id]["Email"]
    filtered = sf.query_all(f"SELECT Id FROM Account WHERE Owner.Email = '{email}'")["records"]
    assert {r["Id"] for r in filtered} == {
        a["Id"] for a in emu.records("Account") if a["OwnerId"] == owner_id
    }


def test_query_hides_deleted_and_query_all_includes_them(ca: SandboxCA) -> None:
    with SalesforceEmulator(ca=ca, page_size=4) as emu:
        ids = emu.insert("Account", [{"Name": f"A{i}"} for i in range(10)])
        emu.delete("Account", ids[3])
        sf = sf_client(emu)
        live = sf.query_all("SELECT Id FROM Account")["records"]
        assert ids[3] not in {r["Id"] for r in live} and len(live) == 9
        everything = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)
        assert len(everything["records"]) == 10
        assert {r["Id"] for r in everything["records"] if r["IsDeleted"]} == {ids[3]}
        more = emu.requests("GET", r"/queryAll/01g")
        assert len(more) == 2  # pages of 4: 4 + 4 + 2


def test_query_errors(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    cases = {
        "SELECT Id, Bogus__c FROM Account": ("INVALID_FIELD", "No such column 'Bogus__c'"),
        "SELECT Id, Boss.Email FROM Account": ("INVALID_FIELD", "Didn't understand relationship"),
        "SELECT Id FROM Account WHERE": ("MALFORMED_QUERY", "unexpected token"),
        "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'": (
            "MALFORMED_QUERY",
            "unexpected token: 'OR'",
        ),
        "SELECT Id FROM Account WHERE NumberOfEmployees = '5'": ("INVALID_FIELD", "type int"),
        "SELECT Id FROM Account WHERE SystemModstamp > 2026-01-01": ("INVALID_FIELD", "dateTime"),
        "SELECT Id FROM Widget__c": ("INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
    }
    for text, (code, fragment) in cases.items():
        with pytest.raises(SalesforceMalformedRequest) as exc:
            sf.query(text)
        assert isinstance(exc.value.content, list), text
        assert exc.value.content[0]["errorCode"] == code, text
        assert fragment in exc.value.content[0]["message"], text


def test_query_operators_end_to_end(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)

    def names(where: str) -> set[str]:
        rows = sf.query_all(f"SELECT Name FROM Account WHERE {where}")["records"]
        return {r["Name"] for r in rows}

    assert names("Name = 'O\\'Reilly \"Quoted\" Media'") == {'O\'Reilly "Quoted" Media'}
    assert names("Name = 'back\\\\slash labs'") == {"Back\\Slash Labs"}  # = is case-insensitive
    assert names("Name LIKE '%<Ltd>'") == {"Smith & Sons <Ltd>"}
    assert names("Name IN ('Smith & Sons <Ltd>', '<!channel> Alerts Inc', 'nobody')") == {
        "Smith & Sons <Ltd>",
        "<!channel> Alerts Inc",
    }
    churn = {a["Name"] for a in emu.records("Account") if a["Renewal_Date__c"] < date(2027, 1, 1)}
    assert names("Renewal_Date__c < 2027-01-01") == churn
    missing = {a["Name"] for a in emu.records("Account") if a["NPS_Score__c"] is None}
    assert names("NPS_Score__c = null") == missing
    assert names(
        "(NPS_Score__c = null OR NPS_Score__c >= 0) AND Onboarding_Complete__c IN (true, false)"
    ) == {a["Name"] for a in emu.records("Account")}
    count = sf.query("select count() from account where plan_tier__c != 'Starter'")
    assert count["totalSize"] == sum(a["Plan_Tier__c"] != "Starter" for a in emu.records("Account"))
    top = sf.query("SELECT Name, ARR__c FROM Account ORDER BY ARR__c DESC LIMIT 3")["records"]
    arr = sorted((a["ARR__c"] for a in emu.records("Account")), reverse=True)[:3]
    assert [r["ARR__c"] for r in top] == arr


# ------------------------------------------------------------------------------ describe


def test_describe_lists_health_fields_and_remove_field(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    assert {"Account", "User"} <= {o["name"] for o in sf.describe()["sobjects"]}
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    for name in ("Health_Score__c", "Health_Grade__c", "Health_Trend__c", "Health_Reasons__c"):
        assert fields[name]["custom"] is True and fields[name]["updateable"] is True
    assert (fields["Health_Score__c"]["precision"], fields["Health_Score__c"]["scale"]) == (5, 1)
    grade = fields["Health_Grade__c"]
    assert grade["restrictedPicklist"] is True
    assert [v["value"] for v in grade["picklistValues"]] == [
        "Green",
        "Yellow",
        "Red",
        "Insufficient Data",
    ]
    assert fields["Health_Trend__c"]["length"] == 40
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"

    emu.remove_field("Account", "Health_Grade__c")
    names = {f["name"] for f in sf.Account.describe()["fields"]}
    assert "Health_Grade__c" not in names and "Health_Score__c" in names
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Health_Grade__c FROM Account")
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    target = account_ids(emu)[0]
    with pytest.raises(SalesforceMalformedRequest) as write:
        sf.restful(
            "composite/sobjects",
            method="PATCH",
            json=collection({"id": target, "Health_Grade__c": "Green"}),
        )
    assert write.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Widget__c.describe()
    assert missing.value.content == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]


# ------------------------------------------------------------------------------ writes


def test_collections_update_200_and_reject_201(emu: SalesforceEmulator) -> None:
    ids = emu.insert("Account", [{"Name": f"Bulk {i}"} for i in range(201)])
    sf = sf_client(emu)
    emu.clear_log()
    before = emu.record("Account", ids[0])["SystemModstamp"]
    time.sleep(0.002)
    records = [
        {
            "id": rid,
            "Health_Score__c": 64.25,
            "Health_Grade__c": "Yellow",
            "Health_Updated__c": "2026-11-23T10:00:00Z",
        }
        for rid in ids[:200]
    ]
    results = sf.restful("composite/sobjects", method="PATCH", json=collection(*records))
    assert results == [{"id": rid, "success": True, "errors": []} for rid in ids[:200]]
    assert len(emu.requests("PATCH", r"composite/sobjects")) == 1
    stored = emu.record("Account", ids[0])
    assert stored["Health_Score__c"] == 64.3  # scale 1, half-up
    assert stored["Health_Updated__c"] == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert stored["SystemModstamp"] > before
    assert len(emu.write_history) == 200
    assert emu.write_history[0] == (
        ids[0],
        {
            "Health_Score__c": 64.3,
            "Health_Grade__c": "Yellow",
            "Health_Updated__c": datetime(2026, 11, 23, 10, tzinfo=UTC),
        },
    )

    too_many = [{"id": rid, "Health_Score__c": 1} for rid in ids]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="PATCH", json=collection(*too_many))
    assert exc.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert len(emu.write_history) == 200


def test_collections_per_record_failures(emu: SalesforceEmulator) -> None:
    ids = account_ids(emu)
    emu.delete("Account", ids[5])
    missing_id = "001SB00000ZZZZZ" + id_checksum("001SB00000ZZZZZ")
    emu.fail_records({ids[1]: ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Blocked by rule")})
    sf = sf_client(emu)
    payload = collection(
        {"id": ids[0], "Health_Score__c": 80, "Health_Grade__c": "Green"},
        {"id": ids[1], "Health_Score__c": 10},
        {"id": ids[2], "Health_Grade__c": "Purple"},
        {"id": missing_id, "Health_Score__c": 1},
        {"id": "001RO000001BADIDXX", "Health_Score__c": 1},
        {"id": ids[5], "Health_Score__c": 1},
        {"id": ids[6], "CreatedDate": "2020-01-01T00:00:00Z"},
        {"id": ids[7], "Health_Trend__c": "x" * 41},
        {"id": ids[8], "Health_Score__c": 12345.0},
    )
    payload["records"].append({"id": ids[9], "Health_Score__c": 5})  # no attributes
    results = sf.restful("composite/sobjects", method="PATCH", json=payload)
    codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
    assert codes == [
        None,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "INVALID_CROSS_REFERENCE_KEY",
        "MALFORMED_ID",
        "ENTITY_IS_DELETED",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "STRING_TOO_LONG",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "INVALID_TYPE",
    ]
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert all(r["success"] is False and "errorCode" not in r["errors"][0] for r in results[1:])
    assert results[4]["errors"][0]["fields"] == ["Id"]
    assert results[2]["errors"][0]["fields"] == ["Health_Grade__c"]
    assert [rid for rid, _ in emu.write_history] == [ids[0]]
    assert emu.record("Account", ids[1])["Health_Score__c"] is None

    # fail_records(times=1) is one-shot: the retry goes through.
    retry = sf.restful(
        "composite/sobjects", method="PATCH", json=collection({"id": ids[1], "Health_Score__c": 10})
    )
    assert retry == [{"id": ids[1], "success": True, "errors": []}]


def test_collections_all_or_none_rolls_back(emu: SalesforceEmulator) -> None:
    ids = account_ids(emu)
    sf = sf_client(emu)
    payload = collection(
        {"id": ids[0], "Health_Score__c": 50},
        {"id": ids[1], "Health_Grade__c": "Purple"},
        {"id": ids[2], "Health_Score__c": 70},
        all_or_none=True,
    )
    results = sf.restful("composite/sobjects", method="PATCH", json=payload)
    rolled_back = {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[0] == rolled_back and results[2] == rolled_back
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emu.write_history == []
    assert emu.record("Account", ids[0])["Health_Score__c"] is None


def test_single_record_patch_and_get(emu: SalesforceEmulator) -> None:
    target = account_ids(emu)[0]
    sf = sf_client(emu)
    assert sf.Account.update(target, {"Health_Trend__c": "up"}) == 204
    assert sf.Account.get(target)["Health_Trend__c"] == "up"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.update(target, {"Health_Grade__c": "Purple"})
    assert exc.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


# ------------------------------------------------------------------------------ auth, faults


def test_expired_session_is_a_json_array(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    sf.query("SELECT Id FROM Account LIMIT 1")
    emu.expire_tokens()
    with pytest.raises(SalesforceExpiredSession) as exc:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert exc.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    anonymous = requests.get(
        emu.base_url + "/services/data/v59.0/limits/", verify=emu.ca_bundle_path, timeout=5
    )
    assert anonymous.status_code == 401 and anonymous.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert sf_client(emu).query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1


def test_faults_use_salesforce_wire_format(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    emu.faults.add("rate_limit", path=r"/query", times=1)
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account")
    assert refused.value.status == 403
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 40  # times=1 is one-shot

    emu.faults.add("server_error", method="GET", times=1)
    with pytest.raises(SalesforceGeneralError) as busy:
        sf.query("SELECT Id FROM Account")
    assert busy.value.status == 503
    assert busy.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"

    emu.faults.add("expired_session", times=1)
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()

    emu.faults.add("slow", path=r"/limits", delay=0.2, times=1)
    started = time.monotonic()
    assert sf.limits()["DailyApiRequests"]["Max"] == 15000
    assert time.monotonic() - started >= 0.2
    faults = [e.fault for e in emu.requests() if e.fault]
    assert faults == ["rate_limit", "server_error", "expired_session", "slow"]


def test_api_limit_exhaustion_and_usage_header(ca: SandboxCA) -> None:
    with SalesforceEmulator(ca=ca, api_limit=3) as emu:
        emu.insert("Account", [{"Name": "Only"}])
        sf = sf_client(emu)
        sf.query("SELECT Id FROM Account")
        assert (sf.api_usage["api-usage"].used, sf.api_usage["api-usage"].total) == (1, 3)
        limits = sf.limits()
        assert limits["DailyApiRequests"] == {"Max": 3, "Remaining": 1}
        sf.query("SELECT Id FROM Account")
        assert sf.api_usage["api-usage"].used == 3
        with pytest.raises(SalesforceRefusedRequest) as exc:
            sf.query("SELECT Id FROM Account")
        assert exc.value.content == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert emu.api_used == 3


def test_request_log_drops_authorization(emu: SalesforceEmulator) -> None:
    sf = sf_client(emu)
    emu.clear_log()
    sf.query("SELECT Id FROM Account LIMIT 2")
    (entry,) = emu.requests("GET", r"/query")
    assert entry.status == 200 and entry.fault is None
    assert entry.query == {"q": "SELECT Id FROM Account LIMIT 2"}
    assert "authorization" not in {k.lower() for k in entry.headers}
    assert entry.headers.get("X-PrettyPrint") == "1"
    assert emu.requests("POST") == [] and emu.requests(path=r"nomatch") == []


# ------------------------------------------------------------------------------ FaultPlan


def test_fault_plan_times_share_and_order() -> None:
    plan = FaultPlan()
    plan.add("server_error", method="PATCH", path=r"composite", times=2)
    plan.add("rate_limit", path=r"/query")
    assert plan.pick("GET", "/services/data/v59.0/composite/sobjects") is None  # wrong method
    kinds = [plan.pick("PATCH", "/services/data/v59.0/composite/sobjects") for _ in range(3)]
    assert [k.kind if k else None for k in kinds] == ["server_error", "server_error", None]
    fault = plan.pick("GET", "/services/data/v59.0/query/")
    assert fault is not None and fault.kind == "rate_limit"

    def draws(seed: int) -> list[bool]:
        shared = FaultPlan().add("server_error", share=0.3, seed=seed)
        return [shared.pick("GET", "/x") is not None for _ in range(1000)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert 0.25 < sum(draws(7)) / 1000 < 0.35

    layered = FaultPlan().add("slow", share=0.0).add("server_error")
    picked = layered.pick("GET", "/x")
    assert picked is not None and picked.kind == "server_error"  # first rule that fires wins
    layered.clear()
    assert layered.pick("GET", "/x") is None
    with pytest.raises(ValueError):
        FaultPlan().add("meteor_strike")


def test_share_faults_are_deterministic_over_http(ca: SandboxCA) -> None:
    outcomes = []
    for _ in range(2):
        with SalesforceEmulator(ca=ca) as emu:
            emu.faults.add("server_error", path=r"/limits", share=0.5, seed=3)
            sf = sf_client(emu)
            pattern = []
            for _ in range(12):
                try:
                    sf.limits()
                    pattern.append(True)
                except SalesforceGeneralError:
                    pattern.append(False)
            outcomes.append(pattern)
    assert outcomes[0] == outcomes[1]
    assert True in outcomes[0] and False in outcomes[0]


# ------------------------------------------------------------------------------ SOQL unit


def test_soql_parser_subset() -> None:
    q = soql.parse(
        "select Id, Owner.Email from Account where (A__c = 'x\\'y' or B__c != null) "
        "and C__c not in (1, 2.5) order by D__c desc nulls first, Id limit 10 offset 5"
    )
    assert q.fields == ("Id", "Owner.Email") and q.sobject == "Account"
    assert q.limit == 10 and q.offset == 5
    assert q.order_by[0] == soql.OrderItem("D__c", descending=True, nulls_last=False)
    assert isinstance(q.where, soql.BoolOp) and q.where.op == "AND"
    inner = q.where.operands[0]
    assert isinstance(inner, soql.BoolOp) and inner.op == "OR"
    assert isinstance(inner.operands[0], soql.Comparison)
    assert inner.operands[0].value.value == "x'y"
    dt = soql.parse("SELECT Id FROM A WHERE S >= 2026-11-01T00:00:00.000+0000").where
    assert isinstance(dt, soql.Comparison)
    assert dt.value.value == datetime(2026, 11, 1, tzinfo=UTC)
    for bad in (
        "SELECT FROM Account",
        "SELECT Id Account",
        "SELECT Id FROM Account WHERE Name = 'unterminated",
        "SELECT Id FROM Account LIMIT x",
        "SELECT Id FROM Account WHERE Name = 'bad \\q escape'",
        "SELECT Id, id FROM Account",
    ):
        with pytest.raises(soql.SoqlSyntaxError):
            soql.parse(bad)


def test_soql_like_and_null_semantics() -> None:
    rows = [{"N": "100% Pure"}, {"N": "100 Pure"}, {"N": "a_b"}, {"N": "axb"}, {"N": None}]

    def run(where: str) -> list[Any]:
        expr = soql.parse(f"SELECT N FROM T WHERE {where}").where
        return [r["N"] for r in rows if soql.matches(expr, r.get)]

    assert run("N LIKE '100\\%%'") == ["100% Pure"]
    assert run("N LIKE 'a\\_b'") == ["a_b"]
    assert run("N LIKE 'A_B'") == ["a_b", "axb"]
    assert run("N != 'axb'") == ["100% Pure", "100 Pure", "a_b", None]
    assert run("N = null") == [None]
    assert run("N NOT IN ('axb', 'a_b')") == ["100% Pure", "100 Pure", None]
    assert run("NOT N = 'axb'") == ["100% Pure", "100 Pure", "a_b", None]
    ordered = soql.sort_rows(rows, soql.parse("SELECT N FROM T ORDER BY N").order_by, dict.get)
    assert [r["N"] for r in ordered] == [None, "100 Pure", "100% Pure", "a_b", "axb"]
    desc = soql.parse("SELECT N FROM T ORDER BY N DESC").order_by
    assert [r["N"] for r in soql.sort_rows(rows, desc, dict.get)][-1] is None


def test_ids_have_real_checksums() -> None:
    assert id_checksum("001RO000001aBcD") == "YAU"  # the sheet's example id 001RO000001aBcDYAU
    assert normalize_id("001RO000001aBcD") == "001RO000001aBcDYAU"
    assert normalize_id("001RO000001aBcDYAU") == "001RO000001aBcDYAU"
    assert normalize_id("001RO000001BADIDXX") is None
    assert normalize_id("short") is None


# ------------------------------------------------------------------------------ synthetic


def test_synthetic_org_is_deterministic_and_plausible() -> None:
    org = generate_org(1000, seed=7, now=NOW)
    assert org == generate_org(1000, seed=7, now=NOW)
    assert org.accounts != generate_org(1000, seed=8, now=NOW).accounts
    assert len(org.users) == max(3, 1000 // 60)
    assert all(
        re.fullmatch(r"[a-z]+\.[a-z]+\d*@healthscore-demo\.test", u["Email"]) for u in org.users
    )
    names = [a["Name"] for a in org.accounts]
    assert len(set(names)) == 1000 and set(HOSTILE_NAMES) <= set(names)
    assert set(HOSTILE_NAMES) <= {a["Name"] for a in generate_org(20).accounts}
    assert not set(HOSTILE_NAMES) & {a["Name"] for a in generate_org(19).accounts}

    shares = Counter(org.archetypes.values())
    expected = {
        "healthy": 0.50,
        "declining": 0.18,
        "stuck_onboarding": 0.12,
        "about_to_churn": 0.12,
        "new_healthy": 0.08,
    }
    for archetype, share in expected.items():
        assert abs(shares[archetype] / 1000 - share) < 0.02, archetype
    missing_nps = sum(a["NPS_Score__c"] is None for a in org.accounts) / 1000
    assert 0.02 < missing_nps < 0.09

    today = NOW.date()
    owners = {u["Email"] for u in org.users}
    for account in org.accounts:
        kind = org.archetypes[account["Name"]]
        seats = account["Licensed_Seats__c"]
        util = account["Active_Users_30d__c"] / seats
        tenure = (today - account["Customer_Since__c"]).days
        assert account["OwnerEmail"] in owners
        assert account["NumberOfEmployees"] >= seats
        assert 500 * seats <= account["ARR__c"] <= 1300 * seats
        assert today < account["Renewal_Date__c"] <= today + timedelta(days=366)
        assert account["Website"].startswith("https://") and account["Website"].endswith(
            ".example.com"
        )
        assert account["Plan_Tier__c"] in ("Starter", "Growth", "Enterprise")
        if kind == "healthy":
            assert util >= 0.69 and account["Logins_30d__c"] >= 0.9 * account["Logins_Prev_30d__c"]
            assert account["NPS_Score__c"] in (None, 8, 9, 10)
            assert account["Urgent_Open_Cases__c"] == 0
        elif kind == "declining":
            ratio = account["Logins_30d__c"] / account["Logins_Prev_30d__c"]
            assert 0.35 <= ratio <= 0.75
            assert account["NPS_Score__c"] in (None, 5, 6, 7)
        elif kind == "stuck_onboarding":
            assert tenure < 90 and account["Onboarding_Complete__c"] is False
            assert account["Feature_Adoption__c"] <= 25
        elif kind == "about_to_churn":
            assert (account["Renewal_Date__c"] - today).days <= 60
            assert util < 0.25 and account["Urgent_Open_Cases__c"] >= 1
            assert 30 <= (today - account["Last_Login_Date__c"]).days <= 90
            assert (today - account["Last_CSM_Touch_Date__c"]).days >= 60
            assert account["NPS_Score__c"] is None or account["NPS_Score__c"] <= 4
        else:
            assert kind == "new_healthy"
            assert tenure < 90 and account["Onboarding_Complete__c"] is True and util >= 0.59
        if kind not in ("stuck_onboarding", "new_healthy"):
            assert tenure >= 90


def test_seed_maps_owner_emails_to_user_ids(ca: SandboxCA) -> None:
    org = generate_org(25, now=NOW)
    with SalesforceEmulator(ca=ca) as emu:
        ids = emu.seed(org)
        assert len(ids) == 25 and all(i.startswith("001SB") and len(i) == 18 for i in ids)
        users = {u["Id"]: u["Email"] for u in emu.records("User")}
        assert all(uid.startswith("005") for uid in users)
        for account_id, source in zip(ids, org.accounts, strict=True):
            stored = emu.record("Account", account_id)
            assert users[stored["OwnerId"]] == source["OwnerEmail"]
            assert stored["Customer_Since__c"] == source["Customer_Since__c"]
            assert stored["IsDeleted"] is False and stored["Health_Score__c"] is None
            assert stored["SystemModstamp"].tzinfo is not None
