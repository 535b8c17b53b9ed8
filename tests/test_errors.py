"""What an operator sees when something is wrong: one clear message naming what to fix."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from healthscore.cli import main as cli
from healthscore.core.errors import ConfigError
from healthscore.core.locks import redis_client
from healthscore.worker import tasks
from sandbox import SalesforceEmulator, SlackEmulator, generate_org
from store import Store

NOW = datetime.now(UTC)
EXAMPLE = resources.files("healthscore").joinpath("healthscore.example.yaml").read_text("utf-8")


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    """Run the CLI in-process; return the exit code and everything it printed, unwrapped."""
    monkeypatch.setattr(cli, "console", Console(stderr=True, width=10_000, highlight=False))
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli.app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return run


@pytest.fixture
def fresh_task_runtime() -> Iterator[None]:
    tasks.runtime.cache_clear()
    yield
    if tasks.runtime.cache_info().currsize:
        tasks.runtime().store.close()
    tasks.runtime.cache_clear()


# -- Redis ---------------------------------------------------------------------------------------
def test_unreachable_redis_names_redis_url() -> None:
    with pytest.raises(ConfigError) as err:
        redis_client("redis://127.0.0.1:1/0")
    assert str(err.value).startswith("REDIS_URL: cannot connect to Redis at redis://127.0.0.1:1/0")


def test_redis_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as err:
        redis_client("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(err.value) and "redis://***@127.0.0.1:1/0" in str(err.value)
    with pytest.raises(ConfigError, match=r"^REDIS_URL: not a Redis URL"):
        redis_client("http://127.0.0.1:1/0")


def test_check_and_the_worker_stop_on_unreachable_redis(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    invoke: Callable[..., tuple[int, str]],
    fresh_task_runtime: None,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    code, out = invoke("check")
    assert code == 2
    assert "error (config): REDIS_URL: cannot connect to Redis at redis://127.0.0.1:1/0" in out
    with pytest.raises(ConfigError, match="REDIS_URL: cannot connect"):
        tasks.score_cycle.apply(throw=True)


# -- the YAML, through `healthscore validate` -----------------------------------------------------
def _line(text: str, pattern: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(text.splitlines(), 1) if re.search(pattern, line)][nth]


@pytest.mark.parametrize(
    ("name", "edit", "where", "field", "message"),
    [
        (
            "unknown field",
            (r"(?m)^  enter_red:", "  enter_redd:"),
            r"^  enter_redd:",
            "alerts.enter_redd",
            "unknown field (check the spelling)",
        ),
        (
            "bad duration",
            (r"(?m)^  every: 1h", "  every: hourly"),
            r"^  every: hourly",
            "scoring.every",
            "must be a duration like 30s, 15m, 1h or 7d; got 'hourly'",
        ),
        (
            "out of range",
            (r"(?m)^    batch_size: 200", "    batch_size: 500"),
            r"batch_size: 500",
            "sources.salesforce.batch_size",
            "Input should be less than or equal to 200",
        ),
        (
            "duplicate key",
            (r"(?m)^(    batch_size: 200.*)$", r"\1\n    batch_size: 100"),
            r"^    batch_size: 100",
            "sources.salesforce.batch_size",
            "duplicate key",
        ),
    ],
)
def test_validate_points_at_file_line_and_field(
    name: str,
    edit: tuple[str, str],
    where: str,
    field: str,
    message: str,
    tmp_path: Path,
    invoke: Callable[..., tuple[int, str]],
) -> None:
    text, count = re.subn(edit[0], edit[1], EXAMPLE)
    assert count == 1, f"the example no longer has the line this case edits ({name})"
    path = tmp_path / "healthscore.yaml"
    path.write_text(text)
    code, out = invoke("validate", str(path))
    assert code == 2, out
    assert f"error (config): {path}:{_line(text, where)} {field}: {message}" in out


def test_validate_accepts_the_example(
    tmp_path: Path, invoke: Callable[..., tuple[int, str]]
) -> None:
    path = tmp_path / "healthscore.yaml"
    path.write_text(EXAMPLE)
    code, out = invoke("validate", str(path))
    assert code == 0 and f"ok {path}" in out


def test_validate_without_a_file_says_how_to_point_at_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, invoke: Callable[..., tuple[int, str]]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEALTHSCORE_CONFIG", raising=False)
    code, out = invoke("validate")
    assert code == 2 and "healthscore.yaml: configuration file not found" in out
    assert "HEALTHSCORE_CONFIG" in out


# -- environment ----------------------------------------------------------------------------------
def test_run_without_salesforce_credentials_names_the_variables(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sf_emu: SalesforceEmulator,
    invoke: Callable[..., tuple[int, str]],
) -> None:
    monkeypatch.delenv("SALESFORCE_CLIENT_SECRET")
    monkeypatch.delenv("SALESFORCE_INSTANCE_URL")
    code, out = invoke("run")
    assert code == 2
    assert (
        "missing environment variable(s) for Salesforce (client_credentials flow): "
        "SALESFORCE_INSTANCE_URL, SALESFORCE_CLIENT_SECRET" in out
    )
    assert sf_emu.requests() == []


def test_check_without_slack_token_names_it(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sf_emu: SalesforceEmulator,
    invoke: Callable[..., tuple[int, str]],
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, out = invoke("check")
    assert code == 2 and "missing environment variable: SLACK_BOT_TOKEN" in out
    assert "ok database and Redis reachable" in out and "Account fields present" in out


def test_an_invalid_variable_is_named_without_its_value(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    invoke: Callable[..., tuple[int, str]],
) -> None:
    monkeypatch.setenv("SALESFORCE_CA_BUNDLE", "/nonexistent/ca.pem")
    code, out = invoke("run")
    assert code == 2 and "invalid environment: SALESFORCE_CA_BUNDLE: " in out
    assert "no such file: /nonexistent/ca.pem" in out


def test_alerts_wait_for_a_missing_slack_token_and_are_not_lost(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
    invoke: Callable[..., tuple[int, str]],
) -> None:
    sf_emu.seed(generate_org(20, seed=41, now=NOW))
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, _ = invoke("run")
    assert code == 0 and slack_emu.messages == []
    store = Store(sandbox_env["DATABASE_URL"])
    try:
        waiting = store.actions(status="pending")
        assert waiting
        monkeypatch.setenv("SLACK_BOT_TOKEN", sandbox_env["SLACK_BOT_TOKEN"])
        code, _ = invoke("actions")
        assert code == 0 and len(slack_emu.messages) == len(waiting)
        assert {a.status for a in store.actions()} == {"sent"}
    finally:
        store.close()


# -- the Salesforce org ---------------------------------------------------------------------------
def test_missing_salesforce_fields_stop_check_and_run_before_any_write(
    sandbox_env: dict[str, str],
    sf_emu: SalesforceEmulator,
    slack_emu: SlackEmulator,
    invoke: Callable[..., tuple[int, str]],
) -> None:
    sf_emu.seed(generate_org(10, seed=42, now=NOW))
    sf_emu.remove_field("Account", "Health_Reasons__c")
    sf_emu.remove_field("Account", "NPS_Score__c")
    config = sandbox_env["HEALTHSCORE_CONFIG"]
    for command in ("check", "run"):
        code, out = invoke(command)
        assert code == 2, out
        assert f"{config}: the Salesforce org does not match the configuration" in out
        assert "sources.salesforce.metrics.nps: Account has no field NPS_Score__c" in out
        assert "create these custom fields on Account" in out
        assert "Health_Reasons__c  (Long Text Area(1000))" in out
        assert "Health_Score__c" not in out  # it exists: only what is missing is listed
    assert sf_emu.requests("PATCH") == [] and slack_emu.messages == []
    assert sf_emu.client_secret not in out
