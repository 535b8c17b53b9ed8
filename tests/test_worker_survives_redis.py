"""A worker survives Redis being killed and restarted while a task runs (celery 5.7 / kombu
5.7 exit with an AttributeError there; healthscore/worker/redis_transport.py keeps it alive)
and takes new work once Redis is back."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is needed for this test (apt-get install redis-server)")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            return proc
        except redis.exceptions.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


def test_the_worker_survives_a_redis_kill_mid_task(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    broker = start_redis(port)
    log = (tmp_path / "worker.log").open("w")
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.redis_restart_app",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sys.path.insert(0, str(ROOT))
    os.environ["REDIS_URL"] = url
    try:
        from tests.redis_restart_app import app

        assert app.send_task("nap", args=(0.1,)).get(timeout=30) == 0.1  # the worker is up
        app.send_task("nap", args=(6,))
        time.sleep(2)  # the task is running
        broker.send_signal(signal.SIGKILL)
        broker.wait()
        time.sleep(2)
        broker = start_redis(port)
        time.sleep(3)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert app.send_task("nap", args=(0.2,)).get(timeout=30) == 0.2  # and works again
        assert "Unrecoverable error" not in (tmp_path / "worker.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        broker.kill()
        broker.wait()
        log.close()
