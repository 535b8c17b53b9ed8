"""No message lost: every task beat sent reached a worker, or still waits in Redis.

Beat logs each task it sends (``Sending due task <entry> (<task>)``) and each it could not
(``Message Error``); a worker logs each message it received (``Task <name>[<id>] received``,
again for a retry of the same id). What is neither received nor still in Redis — a queue, or
the unacknowledged set a killed worker left — was lost, e.g. by a Redis restart without its
append-only file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import redis

SENT = re.compile(r"Sending due task \S+ \((?P<task>[\w.]+)\)")
SEND_FAILED = re.compile(r"Message Error: Couldn't apply scheduled task")
RECEIVED = re.compile(r"Task (?P<task>[\w.]+)\[(?P<id>[0-9a-f-]+)\] received")
BEAT_TASKS = ("tasks.score_cycle", "tasks.sync_source")


def sent_by_beat(beat_log: Path) -> tuple[Counter[str], int]:
    """Tasks beat sent, by name, and how many sends failed."""
    text = beat_log.read_text(encoding="utf-8", errors="replace")
    return Counter(m["task"] for m in SENT.finditer(text)), len(SEND_FAILED.findall(text))


def received(worker_logs: list[Path]) -> dict[str, set[str]]:
    """Message ids the workers received, by task name."""
    out: dict[str, set[str]] = {}
    for path in worker_logs:
        for m in RECEIVED.finditer(path.read_text(encoding="utf-8", errors="replace")):
            out.setdefault(m["task"], set()).add(m["id"])
    return out


def waiting(client: redis.Redis, queues: tuple[str, ...] = ("score", "sync")) -> Counter[str]:
    """Messages still in Redis, by task name: queued, or unacknowledged by a dead worker."""
    bodies = [raw for q in queues for raw in client.lrange(q, 0, -1)]
    bodies += [json.dumps(json.loads(v)[0]).encode() for v in client.hvals("unacked")]
    out: Counter[str] = Counter()
    for raw in bodies:
        out[json.loads(raw).get("headers", {}).get("task", "?")] += 1
    return out


def lost(workdir: Path, client: redis.Redis) -> dict[str, int]:
    """Per beat task: sent − received − still waiting (never below 0), and the failed sends."""
    sent, failed = sent_by_beat(workdir / "beat.log")
    got = received(sorted(workdir.glob("worker-*.log")))
    left = waiting(client)
    out = {t: max(0, sent[t] - len(got.get(t, ())) - left[t]) for t in BEAT_TASKS}
    return {"lost_messages": sum(out.values()), "beat_send_failures": failed} | {
        f"sent_{t.split('.')[-1]}": sent[t] for t in BEAT_TASKS
    }
