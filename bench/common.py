"""What every benchmark shares: bench databases, servers on loopback, machine facts, results.

Everything here talks to 127.0.0.1 only. Servers run in their own process group and are
killed when their ``with`` block ends, whatever happened inside it.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from flask import Flask

REPO_ROOT = Path(__file__).resolve().parent.parent
# The maintenance database of the PostgreSQL server the bench databases are created on.
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DB_PREFIX = "tasktracker_bench"
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
# One secret per bench run: the servers sign tokens and cursors with it, the scripts too.
JWT_SECRET = os.environ.get("BENCH_JWT_SECRET") or secrets.token_urlsafe(48)
# Load average above which figures are noisy on this 2-core machine (recorded beside them).
NOISY_LOAD = 1.5
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def results_dir() -> Path:
    """Where figures are written: BENCH_RESULTS_DIR, default var/bench (read on each call)."""
    return Path(os.environ.get("BENCH_RESULTS_DIR") or REPO_ROOT / "var" / "bench")


def log_dir() -> Path:
    """Where the servers' logs go (inside the results directory)."""
    path = results_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_sizes(text: str) -> list[str]:
    """``10k,1m`` -> ["10k", "1m"], refusing names that are not in SIZES."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}; use {', '.join(SIZES)}")
    return names


# -- databases -------------------------------------------------------------------------------
def database_url(name: str, *, driver: str = "") -> str:
    """The URL of database ``name`` on the bench server (``driver``: e.g. "+psycopg")."""
    parts = urlsplit(PG_URL)
    scheme = parts.scheme.split("+")[0] + driver
    return urlunsplit((scheme, parts.netloc, "/" + name, parts.query, ""))


def bench_db_name(size: str, suffix: str = "") -> str:
    return f"{DB_PREFIX}_{size}{suffix}"


def admin_connection() -> psycopg.Connection[Any]:
    return psycopg.connect(PG_URL, autocommit=True)


def create_database(name: str) -> None:
    """A new, empty database (an old one of the same name is dropped first)."""
    drop_database(name)
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a bench database")
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_env(db_name: str, **extra: str) -> dict[str, str]:
    """The environment of a product process on a bench database: this one's, minus any
    TaskTracker setting of the caller's, plus the bench's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TASKTRACKER_", "GUNICORN_", "FLASK_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        DATABASE_URL=database_url(db_name),
        REDIS_URL=REDIS_URL,
        # Cache, rate-limit and blocklist keys of this run only (removed by clear_redis).
        TASKTRACKER_REDIS_PREFIX=redis_prefix(),
        JWT_SECRET_KEY=JWT_SECRET,
        TASKTRACKER_ENV="production",
        TASKTRACKER_DATA_DIR=str(Path(tempfile.gettempdir()) / "tasktracker-bench"),
        TASKTRACKER_ACCESS_TOKEN_MINUTES="120",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def product_app(db_name: str, **settings: str) -> Iterator[Flask]:
    """The product's Flask app in this process, configured as its worker would be on the
    bench database (the environment is changed only while the settings are read); its
    database and Redis connections are closed when the block ends."""
    from tasktracker import create_app
    from tasktracker.extensions import db

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(app_env(db_name, **{"TASKTRACKER_LOG_LEVEL": "WARNING", **settings}))
    try:
        app = create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()
        client = app.extensions["tasktracker"].redis
        if client is not None:
            client.close()


def redis_prefix() -> str:
    return f"ttbench:{os.getpid()}:"


def clear_redis(*queues: str) -> None:
    """Delete this run's Redis keys (cache pages, rate-limit windows, unacknowledged jobs) and
    what Celery keeps for ``queues`` (the queue and its binding)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        batch = list(client.scan_iter(match=redis_prefix() + "*", count=1000))
        batch += [key for queue in queues for key in (queue, f"_kombu.binding.{queue}")]
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])
    finally:
        client.close()


def migrate(db_name: str) -> None:
    """The product's own migrations (``flask db upgrade``): the bench schema is the real one."""
    run(
        [sys.executable, "-m", "flask", "--app", "tasktracker.wsgi", "db", "upgrade"],
        env=app_env(db_name),
        timeout=300,
    )


def run(cmd: list[str], *, env: Mapping[str, str] | None = None, timeout: float) -> str:
    """Run a command to completion (bounded), raising with its output when it fails."""
    done = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


# -- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A gunicorn master and its workers in a process group of their own."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def pids(self) -> list[int]:
        """The master and its workers (for profilers and memory readings)."""
        out = subprocess.run(
            ["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(STOP_TIMEOUT)


@contextmanager
def gunicorn(name: str, app: str, env: Mapping[str, str], log_dir: Path) -> Iterator[Server]:
    """``gunicorn -c gunicorn.conf.py <app>`` on a free loopback port, the product's settings
    (workers, threads, keep-alive) for every app, until the block ends."""
    port = free_port()
    server_env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app],
            cwd=REPO_ROOT,
            env=server_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        _wait_until_up(server)
        yield server
    finally:
        server.stop()


def _wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with suppress(OSError):
            if request(server.url, "GET", "/healthz", timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    tail = server.log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{server.name} did not start; its log ends with:\n{tail}")


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection, with a hard timeout."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    send = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        send["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=send)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def login(base_url: str, username: str, password: str) -> str:
    """An access token, the way a client gets one (POST /api/v1/auth/login)."""
    status, body = request(
        base_url,
        "POST",
        "/api/v1/auth/login",
        body={"username": username, "password": password},
    )
    if status != 200:
        raise RuntimeError(f"login as {username} failed: {status} {body[:300]!r}")
    return str(json.loads(body)["access_token"])


# -- machine and results ---------------------------------------------------------------------
def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def warn_if_noisy(what: str) -> float:
    load = load_average()
    if load > NOISY_LOAD:
        print(f"[bench] {what}: load average {load} > {NOISY_LOAD}: figures will be noisy")
    return load


def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    with suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare these figures with theirs."""
    with admin_connection() as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg_version = str(row[0]) if row else "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "ram_gib": _ram_gib(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "kernel": platform.release(),
        "commit": commit or "?",
    }


def command_line() -> str:
    """How this process was started, as a reader would type it (``python -m bench.x ...``)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["python", "-m", spec.name] if spec else ["python", sys.argv[0]]
    return shlex.join([*program, *sys.argv[1:]])


def save_result(figure: str, payload: dict[str, Any]) -> Path:
    """Write one figure's results (with when, how and on what) to var/bench/<figure>.json."""
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "figure": figure,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine(),
        **payload,
    }
    path = directory / f"{figure}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(
        f"[bench] wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}"
    )
    return path


def load_result(figure: str) -> dict[str, Any] | None:
    path = results_dir() / f"{figure}.json"
    return json.loads(path.read_text()) if path.exists() else None


def ratio(value: float, limit: float) -> float | None:
    return None if not limit else round(value / limit, 3)
