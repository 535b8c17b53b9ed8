"""`healthscore check` covers every configured destination — Slack (token and scopes), the
SendGrid key's scopes, the Mandrill key — through the real clients against the emulators; one
failing check does not stop the others, and any ✗ exits non-zero."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from healthscore.cli.main import app
from sandbox import SlackEmulator
from sandbox.mandrill import MandrillEmulator
from sandbox.sendgrid import SendGridEmulator


@pytest.fixture
def emails(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SendGridEmulator, MandrillEmulator]]:
    """SendGrid and Mandrill keys set: both tech-touch senders are configured."""
    with SendGridEmulator() as sg, MandrillEmulator() as md:
        for var, value in {
            "SENDGRID_API_KEY": sg.api_key,
            "SENDGRID_BASE_URL": sg.base_url,
            "MANDRILL_API_KEY": md.api_key,
            "MANDRILL_BASE_URL": md.base_url,
        }.items():
            monkeypatch.setenv(var, value)
        yield sg, md


def check() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["check"], env={"COLUMNS": "1000"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def ok_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("ok ")]


def test_every_destination_passes(emails: tuple[SendGridEmulator, MandrillEmulator]) -> None:
    sg, md = emails
    code, out = check()
    assert code == 0, out
    assert "✗" not in out
    lines = ok_lines(out)
    assert any("Slack workspace 'Healthscore Sandbox', scopes present" in line for line in lines)
    assert any(
        line.startswith("ok SendGrid tech-touch sender: key has mail.send") for line in lines
    )
    assert any("Mailchimp Transactional key accepted (ping2: PONG!)" in line for line in lines)
    assert [r.path for r in sg.requests()] == ["/v3/scopes"]
    assert [r.path for r in md.requests()] == ["/api/1.3/users/ping2.json"]
    assert sg.api_key not in out and md.api_key not in out


def test_a_missing_slack_scope_is_named_and_the_rest_still_checked(
    slack_emu: SlackEmulator, emails: tuple[SendGridEmulator, MandrillEmulator]
) -> None:
    slack_emu.scopes.discard("users:read.email")
    code, out = check()
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("✗")]
    assert len(failed) == 1 and failed[0].startswith("✗ slack: Slack workspace 'Healthscore")
    assert "lacks the scope(s) users:read.email (users.lookupByEmail" in failed[0]
    assert "chat:write" not in failed[0]  # only what is missing
    lines = ok_lines(out)  # the email senders after Slack were still checked
    assert any("SendGrid tech-touch sender" in line for line in lines)
    assert any("Mailchimp Transactional key accepted" in line for line in lines)


def test_a_rejected_slack_token(
    slack_emu: SlackEmulator,
    emails: tuple[SendGridEmulator, MandrillEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-revoked")
    code, out = check()
    assert code == 1, out
    assert "✗ slack: Slack auth.test: invalid_auth — check SLACK_BOT_TOKEN" in out
    assert "xoxb-revoked" not in out


def test_a_sendgrid_key_without_mail_send(
    emails: tuple[SendGridEmulator, MandrillEmulator],
) -> None:
    sg, _ = emails
    sg.scopes.discard("mail.send")
    sg.scopes.discard("suppression.unsubscribes.read")
    code, out = check()
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("✗")]
    assert len(failed) == 1, out
    assert failed[0].startswith("✗ sendgrid email: SendGrid tech-touch sender: SENDGRID_API_KEY")
    assert "mail.send (POST /v3/mail/send" in failed[0]
    assert "suppression.unsubscribes.read" in failed[0]
    assert any("Mailchimp Transactional key accepted" in line for line in ok_lines(out))


def test_a_rejected_sendgrid_key(
    emails: tuple[SendGridEmulator, MandrillEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.not-the-key")
    code, out = check()
    assert code == 1, out
    assert "✗ sendgrid email: SendGrid key rejected: " in out
    assert "SG.not-the-key" not in out


def test_a_bad_mandrill_key(
    emails: tuple[SendGridEmulator, MandrillEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MANDRILL_API_KEY", "md-wrong-key")
    code, out = check()
    assert code == 1, out
    failed = [line for line in out.splitlines() if line.startswith("✗")]
    assert failed == [
        "✗ mailchimp email: Mailchimp Transactional key rejected: Mailchimp Transactional "
        "users/ping2: MANDRILL_API_KEY was rejected (Invalid_Key: Invalid API key)"
    ], out
    assert "md-wrong-key" not in out
    assert any("SendGrid tech-touch sender" in line for line in ok_lines(out))
