"""The real processes of a chaos run and how they die: ``redis-server``, Celery workers and
beat, the emulators, a PostgreSQL schema. Kills are SIGKILLs of the real process (a worker's
whole process group: its main process and its pool children, as when its machine dies)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import redis

from healthscore.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]  # the checkout: tasks.py, celeryconfig.py
PG_URL = os.environ.get("HEALTHSCORE_CHAOS_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ready: Any, timeout: float, every: float = 0.1) -> Any:
    """Poll ``ready()`` until it returns something truthy; a clear error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


class Child:
    """A subprocess in its own process group, its output in ``log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self._log: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (a warm shutdown), SIGKILL after ``grace`` seconds."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill9()
                return
        self._log.close()


class RedisServer:
    """Our own ``redis-server`` on a free port, with an append-only file synced on every
    write: a SIGKILL loses no queued message, and a restart on the same port finds them."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("redis-server is needed (apt-get install redis-server)")
        self.binary, self.port, self.dir = binary, free_port(), workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: Child | None = None
        self.restarts = 0
        self.start()

    def start(self) -> None:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ]
        self.child = Child("redis", argv, dict(os.environ), self.dir / "redis.log")
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.RedisError:
                return False

        wait_for("redis-server start", up, 15)

    def kill_and_restart(self, down_for: float) -> None:
        """SIGKILL it, wait ``down_for`` seconds, start it again on the same port and files."""
        assert self.child is not None
        self.child.kill9()
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


class Emulators:
    """``python -m sandbox.chaos.emulators`` in its own process, and its control endpoint."""

    def __init__(self, workdir: Path, *, accounts: int, seed: int, every: int) -> None:
        argv = [
            sys.executable,
            "-m",
            "sandbox.chaos.emulators",
            "--accounts",
            str(accounts),
            "--seed",
            str(seed),
            "--every",
            str(every),
            "--workdir",
            str(workdir),
        ]
        env = {**os.environ, "PYTHONPATH": _pythonpath()}
        self.child = Child("emulators", argv, env, workdir / "emulators.log")
        ready = workdir / "emulators.json"

        def started() -> bool:
            if not self.child.alive():
                raise RuntimeError("the emulators exited: " + _tail(workdir / "emulators.log"))
            return ready.exists()

        wait_for("the emulators", started, 120, 0.2)
        self.info = json.loads(ready.read_text(encoding="utf-8"))
        self.url = self.info["control"]

    def get(self, path: str) -> Any:
        with urlopen(self.url + path, timeout=60) as answer:
            return json.load(answer)

    def post(self, path: str, **body: Any) -> Any:
        data = json.dumps(body).encode()
        request = Request(self.url + path, data=data, method="POST")
        try:
            with urlopen(request, timeout=30) as answer:
                return json.load(answer)
        except HTTPError as exc:
            raise RuntimeError(f"emulators {path}: {exc.read().decode(errors='replace')}") from None

    def stop(self) -> None:
        self.child.stop()


class Postgres:
    """A fresh schema in the PostgreSQL at PG_URL (HEALTHSCORE_CHAOS_PG_URL), dropped after."""

    def __init__(self) -> None:
        import psycopg

        try:
            self.conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"HEALTHSCORE_CHAOS_PG_URL: PostgreSQL at {PG_URL} unreachable ({exc})"
            ) from None
        self.schema = f"chaos_{uuid.uuid4().hex[:10]}"
        self.conn.execute(f"CREATE SCHEMA {self.schema}")
        self.url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        self.conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.conn.close()


def worker(n: int, env: dict[str, str], workdir: Path) -> Child:
    """``celery -A tasks worker`` (both queues, 2 pool processes) named ``chaos<n>@…``."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-Q",
        "sync,score",
        "-n",
        f"chaos{n}@%h",
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
    ]
    return Child(f"chaos{n}", argv, env, workdir / f"worker-{n}.log")


def beat(env: dict[str, str], workdir: Path) -> Child:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "beat",
        "--loglevel",
        "INFO",
        "-s",
        str(workdir / "beat-schedule"),
    ]
    return Child("beat", argv, env, workdir / "beat.log")


def cli(env: dict[str, str], *args: str) -> str:
    """Run ``healthscore <args>`` (the product's command line) to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "healthscore.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"healthscore {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def _pythonpath() -> str:
    extra = os.environ.get("PYTHONPATH")
    return str(ROOT) + (os.pathsep + extra if extra else "")


def child_env(emulators: Emulators, redis_url: str, database_url: str) -> dict[str, str]:
    """What every worker, beat and CLI run of the chaos gets: the emulators' settings, our
    Redis, the PostgreSQL schema."""
    return {
        **os.environ,
        **emulators.info["environment"],
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "PYTHONPATH": _pythonpath(),
    }


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"
