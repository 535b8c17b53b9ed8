"""`healthscore demo --chaos`: a Slack 429 storm, and the delivery's real worker processes
SIGKILLed inside a Slack post, a task upsert and a mail send — still every alert, task and
email exactly once in the emulators' logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_with_chaos_delivers_each_action_exactly_once(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "healthscore.cli", "demo", "--accounts", "60", "--chaos"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    first, second = result["cycles"]
    assert result["chaos"] is True
    assert first["slack_messages"] == first["entered_red"] > 0
    assert first["tasks_created"] == first["entered_red"] and first["emails_sent"] > 0
    assert (second["slack_messages"], second["tasks_created"], second["emails_sent"]) == (0, 0, 0)
    once = result["exactly_once"]
    assert (once["slack"], once["tasks"], once["emails"]) == (True, True, True)
    assert once["slack_429s"] == 6  # the storm happened and was waited out
    # the emails whose worker died: every email of the one mail send the worker was killed
    # in (a batch is one request; SendGrid served it after the kill) — sent once, not
    # re-sent; the other batches of the cycle went out from the next worker
    assert 1 <= once["unknown"] < first["emails_sent"]
    assert proc.stdout.count("SIGKILLed worker pid") == 3
    assert "✗" not in proc.stdout
