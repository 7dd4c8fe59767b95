"""Real API processes for tests: gunicorn with ``gunicorn.conf.py`` on a free loopback port.

Used by the fault-tolerance, rate-limit, metrics and security tests, and reusable for running
schemathesis or newman against a live server::

    with live_server(database_url=..., redis_url=..., jwt_secret=..., log_dir=tmp) as server:
        server.get("/healthz").status  # 200
        server.url                     # "http://127.0.0.1:<port>"

The database is migrated first (``flask db upgrade``), the server is ready when ``/healthz``
answers, and it is always stopped (SIGTERM, then SIGKILL of its process group) on exit. Every
network call has a timeout, so a test never hangs on a dead server.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 40.0
STOP_TIMEOUT = 10.0
# The caller's own settings must not leak into a process started for a test.
_SCRUBBED_PREFIXES = ("TASKTRACKER_", "GUNICORN_", "FLASK_")
_SCRUBBED = {"DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"}
_migrated: set[str] = set()


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``check`` every 0.1 s until it returns something truthy (returned); fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def http_request(
    base_url: str,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """One HTTP request with a hard timeout; headers come back with lower-case names."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    send_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        send_headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=send_headers)
        response = conn.getresponse()
        data = response.read()
        # Repeated headers (e.g. Vary) are joined, as HTTP allows.
        merged: dict[str, str] = {}
        for name, value in response.getheaders():
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return HttpResponse(response.status, merged, data)
    finally:
        conn.close()


@dataclass
class LiveServer:
    """A running gunicorn master (and its workers) started by :func:`start_live_server`."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def request(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        return http_request(self.url, method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.request("PATCH", path, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """The server's JSON log lines, parsed (non-JSON lines are skipped)."""
        records = []
        for line in self.logs().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL of the whole process group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        # The group was made for this server (start_new_session): workers included.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(STOP_TIMEOUT)


def clean_environment() -> dict[str, str]:
    """This interpreter's environment without the caller's own settings, for a process started
    by a test (a server or a worker), which then gets the test's settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }


def server_env(
    *,
    database_url: str,
    redis_url: str | None,
    jwt_secret: str,
    port: int,
    workers: int = 1,
    data_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a test server: this interpreter's, minus the caller's settings."""
    env = clean_environment()
    env.update(
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=jwt_secret,
        TASKTRACKER_ENV="testing",
        TASKTRACKER_DATA_DIR=str(data_dir),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY=str(workers),
        PYTHONUNBUFFERED="1",
        # Lets a test find this server's database sessions (pg_stat_activity.application_name).
        PGAPPNAME=f"tasktracker-live-{port}",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


def migrate(env: Mapping[str, str], timeout: float = 120.0) -> None:
    """``flask db upgrade`` against the server's database (once per database per session)."""
    url = env["DATABASE_URL"]
    if url in _migrated:
        return
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "tasktracker.wsgi", "db", "upgrade"],
        cwd=REPO_ROOT,
        env=dict(env),
        check=True,
        timeout=timeout,
        capture_output=True,
    )
    _migrated.add(url)


def start_live_server(
    *,
    database_url: str,
    redis_url: str | None,
    jwt_secret: str,
    log_dir: Path,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    run_migrations: bool = True,
) -> LiveServer:
    """Migrate, start gunicorn on a free loopback port and wait until /healthz answers.

    A port taken between choosing and binding it (another test run) is retried on a new one.
    """
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        data_dir = log_dir / f"data-{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = server_env(
            database_url=database_url,
            redis_url=redis_url,
            jwt_secret=jwt_secret,
            port=port,
            workers=workers,
            data_dir=data_dir,
            extra=extra_env,
        )
        if run_migrations:
            migrate(env)
        log_path = log_dir / f"gunicorn-{port}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "gunicorn.conf.py",
                    "tasktracker.wsgi:app",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = LiveServer(f"http://127.0.0.1:{port}", port, process, log_path, env)
        try:
            if _wait_until_up(server, startup_timeout):
                return server
        except BaseException:
            server.stop()
            raise
        server.stop()
        last_error = server.logs()[-4000:]
        if "in use" not in last_error:
            break
    raise RuntimeError(f"the live server did not start; its log ends with:\n{last_error}")


def _wait_until_up(server: LiveServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if server.get("/healthz", timeout=2).status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@contextmanager
def live_server(**kwargs: Any) -> Iterator[LiveServer]:
    """:func:`start_live_server` as a context manager that always stops the server."""
    server = start_live_server(**kwargs)
    try:
        yield server
    finally:
        server.stop()
