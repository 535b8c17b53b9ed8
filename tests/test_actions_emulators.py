"""The sending emulators speak the vendors' wire: SendGrid mail send and suppressions,
Mailchimp Transactional send-template, Slack message metadata and conversations.history."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.mailchimp.mandrill import MandrillSender
from connectors.outbound import Contact, Rejected
from connectors.sendgrid.client import SendGridClient
from connectors.sendgrid.sender import SendGridSender
from healthscore.core.errors import AuthError, FatalError, RateLimited, RetriableError
from sandbox import SlackEmulator
from sandbox.mandrill import MandrillEmulator
from sandbox.sendgrid import SendGridEmulator

ANA = Contact("003A", "ana@acme.example", "Ana", "Admin", False, "salesforce")


def mail(**extra: object) -> dict[str, object]:
    return {
        "from": {"email": "cs@vendor.example"},
        "template_id": "d-1",
        "personalizations": [{"to": [{"email": "ana@acme.example"}], "custom_args": {"k": "v"}}],
        **extra,
    }


def test_sendgrid_mail_send_wire_format_errors_and_limits() -> None:
    with SendGridEmulator(mail_sends_per_window=2) as sg:
        http = httpx.Client(base_url=sg.base_url, headers={"Authorization": f"Bearer {sg.api_key}"})
        ok = http.post("/v3/mail/send", json=mail())
        assert ok.status_code == 202 and ok.content == b"" and ok.headers["X-Message-Id"]
        assert ok.headers["X-RateLimit-Limit"] == "2"
        bad = http.post(
            "/v3/mail/send",
            json=mail(
                personalizations=[{"to": [{"email": "ana@acme.example"}], "custom_args": {"n": 1}}]
            ),
        )
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "personalizations.0.custom_args.n"
        no_key = httpx.post(f"{sg.base_url}/v3/mail/send", json=mail())
        assert no_key.status_code == 401
        assert no_key.json() == {"errors": [{"field": None, "message": "authorization required"}]}
        limited = http.post("/v3/mail/send", json=mail())
        assert limited.status_code == 429 and "Retry-After" not in limited.headers
        assert limited.json() == {"errors": [{"field": None, "message": "too many requests"}]}
        assert int(limited.headers["X-RateLimit-Reset"]) > 0
        assert [r.status for r in sg.requests("POST", "/v3/mail/send")] == [202, 400, 401, 429]
        assert sg.requests()[0].headers.get("Authorization") is None  # never logged


def test_sendgrid_sender_reads_suppressions_and_maps_errors() -> None:
    with SendGridEmulator() as sg:
        for i in range(3):
            sg.unsubscribe(f"u{i}@x.example")
        sg.unsubscribe("g@x.example", group=7)
        sender = SendGridSender(
            SendGridClient(sg.api_key, sg.base_url),
            from_email="cs@v.example",
            from_name="CS",
            unsubscribe_group=7,
        )
        assert sender.suppressed() == {
            "u0@x.example",
            "u1@x.example",
            "u2@x.example",
            "g@x.example",
        }
        message_id = sender.send(
            to=ANA,
            template="d-1",
            data={"a": 1},
            key="r:a:1:email:003A",
            account_id="001A",
            subject=None,
        )
        (sent,) = sg.sent
        assert sent["message_id"] == message_id and sent["asm_group"] == 7
        assert sent["custom_args"] == {
            "healthscore_key": "r:a:1:email:003A",
            "healthscore_account": "001A",
        }
        for kind, error in (
            ("rate_limit", RateLimited),
            ("server_error", RetriableError),
            ("expired_session", AuthError),
        ):
            sg.faults.add(kind, path="/v3/mail/send", times=1)
            with pytest.raises(error):
                sender.send(to=ANA, template="d-1", data={}, key="k", account_id="a", subject=None)
        with pytest.raises(FatalError, match=r"template_id|subject"):
            sender.send(
                to=ANA,
                template=None,
                data={},
                key="k",  # type: ignore[arg-type]
                account_id="a",
                subject=None,
            )


def test_sendgrid_has_one_suppression_store_for_reads_and_sends() -> None:
    with SendGridEmulator() as sg:
        http = httpx.Client(base_url=sg.base_url, headers={"Authorization": f"Bearer {sg.api_key}"})
        sg.add_message("seeded@x.example", datetime.now(UTC), unsubscribed=True)
        sg.add_message("bounced@x.example", datetime.now(UTC), bounced=True)
        assert (
            http.post(
                "/v3/asm/suppressions/global", json={"recipient_emails": ["posted@x.example"]}
            ).status_code
            == 201
        )
        assert (
            http.post(
                "/v3/asm/groups/7/suppressions", json={"recipient_emails": ["grouped@x.example"]}
            ).status_code
            == 201
        )
        assert http.post("/v3/asm/groups/7/suppressions", json={}).status_code == 400
        sg.unsubscribe("called@x.example")
        listed = http.get("/v3/suppression/unsubscribes").json()
        assert {r["email"] for r in listed} == {
            "seeded@x.example",
            "posted@x.example",
            "called@x.example",
        }
        assert http.get("/v3/asm/groups/7/suppressions").json() == ["grouped@x.example"]
        to = [
            "seeded@x.example",
            "posted@x.example",
            "grouped@x.example",
            "bounced@x.example",
            "ana@acme.example",
        ]
        assert (
            http.post(
                "/v3/mail/send",
                json=mail(
                    asm={"group_id": 7}, personalizations=[{"to": [{"email": e}]} for e in to]
                ),
            ).status_code
            == 202
        )
        assert {m["to"]: m["dropped"] for m in sg.sent} == {
            "seeded@x.example": "Unsubscribed Address",
            "posted@x.example": "Unsubscribed Address",
            "grouped@x.example": "Unsubscribed Address",
            "bounced@x.example": "Bounced Address",
            "ana@acme.example": None,
        }
        stats = http.get("/v3/stats", params={"start_date": "2026-01-01"})
        assert stats.status_code == 200 and stats.headers["X-RateLimit-Limit"] == "600"


def test_mandrill_send_template_per_recipient_results_and_named_errors() -> None:
    with MandrillEmulator(templates=("welcome",)) as md:
        sender = MandrillSender(
            md.api_key, base_url=md.base_url, from_email="cs@v.example", from_name="CS"
        )
        md.reject("gone@acme.example", "hard-bounce")
        assert sender.send(
            to=ANA, template="welcome", data={"x": "1"}, key="k1", account_id="a", subject="Hi"
        )
        gone = Contact("003B", "gone@acme.example", "", "Admin", False, "salesforce")
        with pytest.raises(Rejected, match="hard-bounce"):
            sender.send(
                to=gone, template="welcome", data={}, key="k2", account_id="a", subject=None
            )
        with pytest.raises(FatalError, match="Unknown_Template"):
            sender.send(to=ANA, template="nope", data={}, key="k3", account_id="a", subject=None)
        md.faults.add("rate_limit", times=1)
        with pytest.raises(RateLimited):
            sender.send(to=ANA, template="welcome", data={}, key="k4", account_id="a", subject=None)
        wrong = MandrillSender(
            "md-wrong", base_url=md.base_url, from_email="cs@v.example", from_name="CS"
        )
        with pytest.raises(AuthError):
            wrong.send(to=ANA, template="welcome", data={}, key="k5", account_id="a", subject=None)
        assert [m["metadata"]["healthscore_key"] for m in md.sent] == ["k1", "k2"]
        assert md.requests()[0].path == "/api/1.3/messages/send-template.json"
        assert md.requests()[0].body["key"] == "[redacted]"


def test_slack_history_pages_newest_first_and_shows_metadata_only_when_asked() -> None:
    with SlackEmulator(messages_per_second=100, burst=100) as emu:
        client = WebClient(token=emu.bot_token, base_url=emu.base_url)
        for i in range(5):
            client.chat_postMessage(
                channel="C0CSALERTS",
                text=f"m{i}",
                metadata={"event_type": "healthscore_action", "event_payload": {"key": f"k{i}"}},
            )
        plain = client.conversations_history(channel="C0CSALERTS", limit=10)
        assert [m["text"] for m in plain["messages"]] == ["m4", "m3", "m2", "m1", "m0"]
        assert all("metadata" not in m for m in plain["messages"])
        keys, cursor = [], None
        while True:
            page = client.conversations_history(
                channel="C0CSALERTS", limit=2, cursor=cursor, include_all_metadata=True
            )
            keys += [m["metadata"]["event_payload"]["key"] for m in page["messages"]]
            cursor = page["response_metadata"]["next_cursor"]
            if not page["has_more"]:
                break
        assert keys == ["k4", "k3", "k2", "k1", "k0"]
        oldest = emu.messages[2]["ts"]
        newer = client.conversations_history(channel="C0CSALERTS", oldest=oldest)
        assert [m["text"] for m in newer["messages"]] == ["m4", "m3"]
        with pytest.raises(SlackApiError, match="invalid_metadata_schema"):
            client.chat_postMessage(channel="C0CSALERTS", text="x", metadata={"event_payload": {}})
        with pytest.raises(SlackApiError, match="channel_not_found"):
            client.conversations_history(channel="C0NOPE")
