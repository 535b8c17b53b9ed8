"""Emulator answers the vendors' published specs and docs say they give, through the real clients.

Salesforce through simple-salesforce (REST in direct mode over HTTPS; the token endpoint with
its ``token_login``), HubSpot through hubspot-api-client, Slack through slack-sdk's WebClient,
SendGrid through httpx (the product has no SendGrid SDK).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceResourceNotFound,
)
from simple_salesforce.login import token_login
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

# Submodule imports work whether or not the editable install knows sandbox/__init__.py.
from sandbox.hubspot import HubSpotEmulator
from sandbox.salesforce import SalesforceEmulator
from sandbox.salesforce_schema import id_checksum
from sandbox.sendgrid import SendGridEmulator
from sandbox.slack import SlackEmulator
from sandbox.tls import SandboxCA

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MAIL_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"


# ------------------------------------------------------------------------------ Salesforce
@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA()


@pytest.fixture
def sf_emu(ca: SandboxCA) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(ca=ca) as emu:
        yield emu


def trusting_session(emu: SalesforceEmulator) -> requests.Session:
    session = requests.Session()
    session.verify = emu.ca_bundle_path
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not override Session.verify
    return session


def sf_client(emu: SalesforceEmulator) -> Salesforce:
    return Salesforce(
        instance_url=emu.base_url, session_id=emu.issue_token(), session=trusting_session(emu)
    )


def not_found(call: Any, *args: Any) -> SalesforceResourceNotFound:
    with pytest.raises(SalesforceResourceNotFound) as info:
        call(*args)
    assert info.value.status == 404
    return info.value


ENTITY_IS_DELETED = [
    {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}
]
NOT_FOUND = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


def test_salesforce_deleted_record_answers_entity_is_deleted(sf_emu: SalesforceEmulator) -> None:
    (account_id,) = sf_emu.insert("Account", [{"Name": "Acme"}])
    (contact_id,) = sf_emu.insert("Contact", [{"LastName": "Lee", "AccountId": account_id}])
    sf = sf_client(sf_emu)
    assert sf.Account.get(account_id)["Name"] == "Acme"
    assert sf.Account.delete(account_id) == 204
    sf_emu.delete("Contact", contact_id)  # deleted elsewhere (UI, another integration)
    stamp = sf_emu.record("Account", account_id)["SystemModstamp"]

    cases = ((sf.Account, account_id, "Name"), (sf.Contact, contact_id, "LastName"))
    for sobject, record_id, field in cases:
        assert not_found(sobject.get, record_id).content == ENTITY_IS_DELETED
        assert not_found(sobject.update, record_id, {field: "x"}).content == ENTITY_IS_DELETED
        assert not_found(sobject.delete, record_id).content == ENTITY_IS_DELETED
    # ...also for a 15-character id and a PATCH that would fail validation anyway
    assert not_found(sf.Account.get, account_id[:15]).content == ENTITY_IS_DELETED
    read_only = {"CreatedDate": "2020-01-01T00:00:00Z"}
    assert not_found(sf.Account.update, account_id, read_only).content == ENTITY_IS_DELETED
    # nothing was written, and the record is still in the recycle bin for queryAll
    assert sf_emu.write_history == []
    assert sf_emu.record("Account", account_id)["SystemModstamp"] == stamp
    deleted = sf.query_all(
        f"SELECT Id, IsDeleted FROM Account WHERE Id = '{account_id}'", include_deleted=True
    )["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in deleted] == [(account_id, True)]
    # the error reads as simple-salesforce formats it
    message = str(not_found(sf.Account.get, account_id))
    assert "ENTITY_IS_DELETED" in message and "entity is deleted" in message


def test_salesforce_id_that_never_existed_stays_not_found(sf_emu: SalesforceEmulator) -> None:
    never = "001SB00000ZZZZZ" + id_checksum("001SB00000ZZZZZ")
    sf = sf_client(sf_emu)
    assert not_found(sf.Account.get, never).content == NOT_FOUND
    assert not_found(sf.Account.update, never, {"Name": "x"}).content == NOT_FOUND
    assert not_found(sf.Account.delete, never).content == NOT_FOUND
    # an id of another object's key prefix is no Account either
    (user_id,) = sf_emu.insert(
        "User", [{"Name": "Ops", "Email": "ops@acme.test", "Username": "ops@acme.test"}]
    )
    assert not_found(sf.Account.get, user_id).content == NOT_FOUND
    assert not_found(sf.Account.update, user_id, {"Name": "x"}).content == NOT_FOUND


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_salesforce_token_endpoint_unknown_client_id(sf_emu: SalesforceEmulator) -> None:
    """simple-salesforce's own token_login (what its client-credentials login calls), pointed
    at the emulator's token URL; httpx for the exact wire bodies."""
    session = trusting_session(sf_emu)

    def login(headers: dict[str, str] | None, **form: str) -> tuple[Any, Any]:
        data = {"grant_type": "client_credentials", **form}
        return token_login(sf_emu.token_url, data, "acme.my", "key", headers, None, session)

    token, instance = login(_basic(sf_emu.client_id, sf_emu.client_secret))
    assert sf_emu.base_url.endswith(instance) and token
    cases = [
        (_basic("3MVG9-not-a-connected-app", sf_emu.client_secret), {}),
        (None, {"client_id": "3MVG9-not-a-connected-app", "client_secret": "x"}),
        (None, {}),  # no client id at all
    ]
    for headers, form in cases:
        with pytest.raises(SalesforceAuthenticationFailed) as failed:
            login(headers, **form)
        assert (failed.value.code, failed.value.auth_message) == (
            "invalid_client_id",
            "client identifier invalid",
        )
    with pytest.raises(SalesforceAuthenticationFailed) as wrong_secret:
        login(_basic(sf_emu.client_id, "not-the-secret"))
    assert (wrong_secret.value.code, wrong_secret.value.auth_message) == (
        "invalid_client",
        "invalid client credentials",
    )

    with httpx.Client(verify=sf_emu.ca.client_ssl_context()) as http:
        unknown = http.post(
            sf_emu.token_url,
            data={"grant_type": "client_credentials"},
            auth=("someone-else", sf_emu.client_secret),
        )
        unsupported = http.post(sf_emu.token_url, data={"grant_type": "password"})
    assert unknown.status_code == 400
    assert unknown.headers["Content-Type"].startswith("application/json")
    assert unknown.json() == {
        "error": "invalid_client_id",
        "error_description": "client identifier invalid",
    }
    assert (unsupported.status_code, unsupported.json()["error"]) == (
        400,
        "unsupported_grant_type",
    )


# ------------------------------------------------------------------------------ Slack
@pytest.fixture
def slack_emu() -> Iterator[SlackEmulator]:
    with SlackEmulator(messages_per_second=1000.0, burst=1000) as emu:
        yield emu


def slack(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.bot_token, base_url=emu.base_url)


#: the user object of docs.slack.dev/reference/methods/users.lookupByEmail
# fmt: off
USER_KEYS = {
    "id", "team_id", "name", "deleted", "color", "real_name", "tz", "tz_label", "tz_offset",
    "profile", "is_admin", "is_owner", "is_primary_owner", "is_restricted",
    "is_ultra_restricted", "is_bot", "updated", "is_app_user", "has_2fa",
}
PROFILE_KEYS = {
    "avatar_hash", "status_text", "status_emoji", "real_name", "display_name",
    "real_name_normalized", "display_name_normalized", "email", "image_24", "image_32",
    "image_48", "image_72", "image_192", "image_512", "team",
}
# fmt: on


def test_slack_lookup_by_email_returns_the_full_user_object(slack_emu: SlackEmulator) -> None:
    client = slack(slack_emu)
    team_id = client.auth_test()["team_id"]
    user_id = slack_emu.add_user("Kim.Lee@acme.test", "Kim Lée", tz="Europe/Berlin")

    resp = client.users_lookupByEmail(email="kim.lee@ACME.test")
    assert resp.status_code == 200 and resp["ok"] is True
    user = resp["user"]
    assert set(user) >= USER_KEYS
    assert set(user["profile"]) >= PROFILE_KEYS
    assert (user["id"], user["team_id"], user["name"]) == (user_id, team_id, "Kim.Lee")
    assert (user["real_name"], user["deleted"], user["is_bot"]) == ("Kim Lée", False, False)
    assert user["tz"] == "Europe/Berlin"
    assert user["tz_label"] in ("Central European Time", "Central European Summer Time")
    assert user["tz_offset"] in (3600, 7200)
    assert isinstance(user["updated"], int) and user["updated"] > 1_700_000_000
    assert len(user["color"]) == 6 and int(user["color"], 16) >= 0
    profile = user["profile"]
    assert profile["email"] == "Kim.Lee@acme.test"
    assert (profile["real_name"], profile["real_name_normalized"]) == ("Kim Lée", "Kim Lee")
    assert (profile["display_name"], profile["display_name_normalized"]) == ("Kim", "Kim")
    assert profile["team"] == team_id
    for size in (24, 32, 48, 72, 192, 512):
        url = profile[f"image_{size}"]
        assert url.startswith("https://") and f"s={size}" in url
    # UTC default for members registered without a zone
    slack_emu.add_user("ops@acme.test", "Ops")
    utc = client.users_lookupByEmail(email="ops@acme.test")["user"]
    assert (utc["tz"], utc["tz_offset"]) == ("Etc/UTC", 0)


def test_slack_lookup_by_email_unknown_address_is_users_not_found(
    slack_emu: SlackEmulator,
) -> None:
    slack_emu.add_user("kim@acme.test", "Kim Lee")
    slack_emu.add_user("gone@acme.test", "Gone User", deleted=True)
    for email in ("nobody@acme.test", "gone@acme.test"):
        with pytest.raises(SlackApiError) as exc:
            slack(slack_emu).users_lookupByEmail(email=email)
        assert exc.value.response.status_code == 200
        assert exc.value.response.data == {"ok": False, "error": "users_not_found"}


def test_slack_history_has_channel_actions_and_keeps_paging(slack_emu: SlackEmulator) -> None:
    client = slack(slack_emu)
    for i in range(5):
        client.chat_postMessage(channel="C0CSALERTS", text=f"m{i}")
    first = client.conversations_history(channel="C0CSALERTS", limit=2)
    assert list(first.data) == [
        "ok",
        "messages",
        "has_more",
        "pin_count",
        "channel_actions_ts",
        "channel_actions_count",
        "response_metadata",
    ]
    assert (first["channel_actions_ts"], first["channel_actions_count"]) == (None, 0)
    assert first["has_more"] is True and first["response_metadata"]["next_cursor"]
    # slack-sdk's own cursor pagination (iterating the response; it yields itself, refilled)
    pages = [
        dict(page.data) for page in client.conversations_history(channel="C0CSALERTS", limit=2)
    ]
    assert [len(p["messages"]) for p in pages] == [2, 2, 1]
    assert [m["text"] for p in pages for m in p["messages"]] == ["m4", "m3", "m2", "m1", "m0"]
    assert all(p["channel_actions_ts"] is None and p["channel_actions_count"] == 0 for p in pages)
    last = pages[-1]
    assert last["has_more"] is False and last["response_metadata"] == {"next_cursor": ""}
    empty = client.conversations_history(channel="C0CSALERTS", oldest="9999999999.000000")
    assert empty["messages"] == [] and empty["channel_actions_count"] == 0


# ------------------------------------------------------------------------------ HubSpot
@pytest.fixture
def hs_emu() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(requests_per_10s=10_000, search_per_second=1_000) as emu:
        emu.set_time(NOW)
        yield emu


def hubspot(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=emu.access_token, host=emu.base_url, base_url=emu.base_url)


def test_hubspot_deal_without_pipeline_lands_in_default(hs_emu: HubSpotEmulator) -> None:
    deals = hubspot(hs_emu).crm.deals
    created = deals.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "Renewal 2027", "dealstage": "appointmentscheduled"}
        )
    )
    assert created.properties["pipeline"] == "default"
    read = deals.basic_api.get_by_id(created.id, properties=["pipeline", "dealname"])
    assert read.properties["pipeline"] == "default"
    assert deals.basic_api.get_by_id(created.id).properties["pipeline"] == "default"

    batch = deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"dealname": "Upsell"}),
                SimplePublicObjectBatchInputForCreate(
                    properties={"dealname": "Partner deal", "pipeline": "partners"}
                ),
            ]
        )
    )
    by_name = {r.properties["dealname"]: r.properties["pipeline"] for r in batch.results}
    assert by_name == {"Upsell": "default", "Partner deal": "partners"}
    ids = [SimplePublicObjectId(id=r.id) for r in batch.results]
    back = deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(inputs=ids, properties=["dealname", "pipeline"])
    )
    assert {r.properties["dealname"]: r.properties["pipeline"] for r in back.results} == by_name
    stored = {
        r["properties"]["dealname"]: r["properties"]["pipeline"] for r in hs_emu.records("deals")
    }
    assert stored == {"Renewal 2027": "default", **by_name}
    # only creates fill it in: an update leaves the pipeline alone
    deals.basic_api.update(created.id, {"properties": {"amount": "1200"}})
    assert deals.basic_api.get_by_id(created.id).properties["pipeline"] == "default"


# ------------------------------------------------------------------------------ SendGrid
@pytest.fixture
def sg() -> Iterator[SendGridEmulator]:
    with SendGridEmulator(mail_sends_per_window=50) as emu:
        yield emu


def sendgrid(emu: SendGridEmulator, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {key or emu.api_key}"}
    )


def mail(**extra: Any) -> dict[str, Any]:
    return {
        "from": {"email": "cs@vendor.example"},
        "template_id": "d-13b8f94fbcae4ec6b75270d6cb59f932",
        "personalizations": [{"to": [{"email": "ana@acme.example"}], "custom_args": {"k": "v"}}],
        **extra,
    }


def test_sendgrid_mail_send_400s_carry_help_links(sg: SendGridEmulator) -> None:
    with sendgrid(sg) as http:
        assert http.post("/v3/mail/send", json=mail()).status_code == 202

        nothing = http.post("/v3/mail/send", json={"template_id": "d-1"})
        assert nothing.status_code == 400
        assert [(e["field"], e["help"]) for e in nothing.json()["errors"]] == [
            ("from.email", MAIL_HELP + "message.from"),
            ("personalizations", MAIL_HELP + "message.personalizations"),
        ]
        assert nothing.json()["errors"][1]["message"] == (
            "The personalizations field is required and must have at least one personalization."
        )

        people = [
            {"to": [{"email": "ana@acme.example"}, {"email": "not-an-address"}]},
            {"to": []},
        ]
        bad = http.post("/v3/mail/send", json=mail(personalizations=people))
        assert bad.status_code == 400
        assert bad.json() == {
            "errors": [
                {
                    "message": "Does not contain a valid address.",
                    "field": "personalizations.0.to.1.email",
                    "help": MAIL_HELP + "message.personalizations.to",
                },
                {
                    "message": "The to array is required for all personalization objects, and "
                    "must have at least one email object with a valid email address.",
                    "field": "personalizations.1.to",
                    "help": MAIL_HELP + "message.personalizations.to",
                },
            ]
        }
        args = http.post(
            "/v3/mail/send",
            json=mail(
                personalizations=[{"to": [{"email": "a@b.example"}], "custom_args": {"n": 1}}]
            ),
        ).json()["errors"]
        assert args == [
            {
                "message": "Invalid type. Expected: string, given: integer.",
                "field": "personalizations.0.custom_args.n",
                "help": MAIL_HELP + "message.personalizations.custom_args",
            }
        ]

        plain = http.post("/v3/mail/send", json=mail(template_id=None)).json()["errors"]
        assert [(e["field"], e["help"]) for e in plain] == [
            ("subject", MAIL_HELP + "message.subject"),
            ("content", MAIL_HELP + "message.content"),
        ]
        assert plain[0]["message"].startswith("The subject is required.")
        per_person = mail(
            template_id=None,
            content=[{"type": "text/plain", "value": "hi"}],
            personalizations=[{"to": [{"email": "a@b.example"}], "subject": "Hi"}],
        )
        assert http.post("/v3/mail/send", json=per_person).status_code == 202

        crowd = [{"to": [{"email": f"p{i}@b.example"}]} for i in range(1001)]
        (limit,) = http.post("/v3/mail/send", json=mail(personalizations=crowd)).json()["errors"]
        assert limit["help"] == MAIL_HELP + "message.personalizations"
        assert "limited to 1000 personalizations" in limit["message"]
        assert "You have provided 1001 personalizations" in limit["message"]

        garbled = http.post(
            "/v3/mail/send", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert (garbled.status_code, garbled.json()) == (
            400,
            {"errors": [{"message": "Bad Request", "field": None, "help": None}]},
        )
        bad_from = http.post("/v3/mail/send", json=mail(**{"from": {"email": "nobody"}}))
        assert bad_from.json()["errors"] == [
            {
                "message": "The from email does not contain a valid address.",
                "field": "from.email",
                "help": MAIL_HELP + "message.from",
            }
        ]
    assert len(sg.sent) == 2  # the two accepted sends only


def test_sendgrid_403_unverified_sender_and_activity_without_add_on() -> None:
    emu = SendGridEmulator(verified_senders=("cs@vendor.example",), activity_enabled=False)
    with emu as sg, sendgrid(sg) as http:
        other = http.post("/v3/mail/send", json=mail(**{"from": {"email": "me@else.example"}}))
        activity = http.get("/v3/messages", params={"limit": 10})
        verified = http.post("/v3/mail/send", json=mail())
    assert other.status_code == 403
    assert other.json() == {
        "errors": [
            {
                "message": "The from address does not match a verified Sender Identity. Mail "
                "cannot be sent until this error is resolved. Visit https://sendgrid.com/docs/"
                "for-developers/sending-email/sender-identity/ to see the Sender Identity "
                "requirements",
                "field": "from",
                "help": None,
            }
        ]
    }
    assert activity.status_code == 403
    assert activity.json() == {
        "errors": [{"field": None, "message": "access forbidden", "help": None}]
    }
    assert verified.status_code == 202


def test_sendgrid_401_and_429_bodies(sg: SendGridEmulator) -> None:
    no_key = httpx.post(f"{sg.base_url}/v3/mail/send", json=mail())
    assert no_key.status_code == 401
    assert no_key.json() == {"errors": [{"field": None, "message": "authorization required"}]}
    with sendgrid(sg, key="SG.revoked-key") as wrong:
        rejected = wrong.post("/v3/mail/send", json=mail())
        listing = wrong.get("/v3/suppression/bounces")
    assert rejected.status_code == 401
    assert rejected.json() == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }
    assert listing.status_code == 401
    assert listing.json() == {"errors": [{"field": None, "message": "authorization required"}]}
    sg.faults.add("expired_session", path="/v3/mail/send", times=1)
    with sendgrid(sg) as http:
        revoked = http.post("/v3/mail/send", json=mail())
        assert revoked.status_code == 401 and revoked.json()["errors"][0]["help"] is None

        sg.configure_limits(requests_per_window=600, window=60.0, mail_sends_per_window=1)
        assert http.post("/v3/mail/send", json=mail()).status_code == 202
        limited = http.post("/v3/mail/send", json=mail())
    assert limited.status_code == 429 and "Retry-After" not in limited.headers
    assert limited.json() == {"errors": [{"field": None, "message": "too many requests"}]}
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) >= int(datetime.now(UTC).timestamp())
    assert [r.status for r in sg.requests("POST", "/v3/mail/send")] == [401, 401, 401, 202, 429]
