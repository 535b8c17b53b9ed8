"""The chaos suite at a small size, through its real entry point (`python -m sandbox.chaos`,
what `make chaos` runs): real workers SIGKILLed inside a Slack post and a Salesforce write,
Redis SIGKILLed and restarted, 10 % vendor faults — and every invariant holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[1]


def _needs_services() -> None:
    import psycopg

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for this test (apt-get install redis-server)")
    try:
        psycopg.connect(PG_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_URL} unreachable (set HEALTHSCORE_TEST_PG_URL)")


def test_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    _needs_services()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HEALTHSCORE_CHAOS_PG_URL": PG_URL}
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.chaos", "--accounts", "40", "--cycles", "3",
         "--every", "8", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # exactly one JSON line; progress went to stderr
    result = json.loads(lines[0])
    assert result["worker_kills"] == 2
    assert [k["where"] for k in result["kills"]] == ["delivery", "write_back"]
    assert result["redis_restarts"] == 1 and result["worker_survived_redis_restart"] is True
    assert {
        "salesforce expired_session",  # 401 INVALID_SESSION_ID: the client signs in again
        "salesforce server_error",
        "salesforce timeout",  # served, its answer lost
        "hubspot expired_session",  # the 401 on HubSpot's write-back
        "hubspot rate_limit",
    } <= set(result["faults_by_vendor"]), (result, proc.stderr[-3000:])
    assert result["faults_injected"] == sum(result["faults_by_vendor"].values())
    assert result["cycles"] >= 3
    assert result["crm_records_checked"]["salesforce"] == result["accounts"] == 40
    assert result["crm_records_checked"]["hubspot"] > 0
    assert (result["crm_mismatches"], result["lost_writes"], result["lost_messages"]) == (0, 0, 0)
    assert (
        result["duplicate_alerts"],
        result["duplicate_tasks"],
        result["duplicate_emails"],
    ) == (0, 0, 0)
    assert result["undelivered"] == {"slack": 0, "tasks": 0, "emails": 0}
    assert result["alerts_delayed_by_kills"] > 0  # a kill held alerts up, and they went out
    assert 0 < result["max_recovery_cycles"] <= 2
    assert 0 < result["next_cycle_after_kill_cycles"] <= 2
    assert result["sent_score_cycle"] >= result["cycles"]


def test_a_timeout_fault_serves_the_request_and_loses_the_answer() -> None:
    """The chaos suite's `timeout`: the vendor did the work, the client cannot know it."""
    from slack_sdk import WebClient

    from sandbox import SlackEmulator

    with SlackEmulator(
        channels={"C0CSALERTS": "cs-alerts"}, messages_per_second=50, burst=5
    ) as slack:
        slack.faults.add("timeout", method="POST", path=r"chat\.postMessage", times=1)
        web = WebClient(token=slack.bot_token, base_url=slack.base_url, retry_handlers=[])
        with pytest.raises(Exception) as lost:
            web.chat_postMessage(channel="C0CSALERTS", text="first")
        assert "slack_sdk" not in type(lost.value).__module__  # no answer, not an API error
        web.chat_postMessage(channel="C0CSALERTS", text="second")  # the rule is spent
        assert [m["text"] for m in slack.messages] == ["first", "second"]
        assert [r.fault for r in slack.requests("POST", r"chat\.postMessage")] == ["timeout", None]


def test_the_worker_lock_outlives_a_killed_holder_by_at_most_half_an_interval() -> None:
    from datetime import timedelta

    from healthscore.worker.tasks import dead_after, lock_ttl

    assert lock_ttl(timedelta(hours=1)) == 60.0  # production schedules: the 60 s TTL
    assert lock_ttl(timedelta(seconds=15)) == 7.5  # the next cycle after a kill -9 runs
    assert dead_after(60.0) == timedelta(seconds=40)
    assert dead_after(7.5) == timedelta(seconds=5)
