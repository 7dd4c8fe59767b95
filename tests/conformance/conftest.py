"""The live stack the conformance stages run against, once per backend.

``stack`` starts the API under gunicorn (``tests/live_server.py``) on a free loopback port,
first on PostgreSQL + Redis with a real Celery worker, then on the embedded default (SQLite,
in-process cache, jobs inline), and creates one account per role. Rate limits are raised so
the fuzzer is not throttled; everything else is the production configuration.

These tests start servers and take minutes, so a plain ``pytest`` run (``make test-postgres``,
``make test-embedded``) deselects them; they run when ``tests/conformance`` is named on the
command line (``make test-conformance``). ``TASKTRACKER_CONFORMANCE_BACKENDS`` (default
``postgres,embedded``) chooses the backends.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from tests.live_server import LiveServer, http_request, start_live_server

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = Path(__file__).resolve().parent
ARTIFACTS = REPO_ROOT / "build" / "conformance"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get(
    "TEST_REDIS_URL", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
)
BACKENDS = [
    name.strip()
    for name in os.environ.get("TASKTRACKER_CONFORMANCE_BACKENDS", "postgres,embedded").split(",")
    if name.strip()
]
RUN_ID = uuid.uuid4().hex[:10]

# Limits no stage reaches: the fuzzer sends thousands of requests, logins included.
UNTHROTTLED = {
    "TASKTRACKER_RATELIMIT_DEFAULT": "1000000/minute",
    "TASKTRACKER_RATELIMIT_LOGIN": "1000000/minute",
    "TASKTRACKER_RATELIMIT_UPLOAD": "1000000/hour",
}

_not_run: list[str] = []


# -- selection ---------------------------------------------------------------------------------
def _requested(config: pytest.Config) -> bool:
    """True when the command line names this folder (or something inside it)."""
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (base / arg.split("::", 1)[0]).resolve()
        if path == CONFORMANCE_DIR or CONFORMANCE_DIR in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _requested(config):
        return
    ours = [item for item in items if CONFORMANCE_DIR in Path(str(item.path)).parents]
    if ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if item not in ours]


# -- loud skips --------------------------------------------------------------------------------
def tool_missing(stage: str, what: str, how: str) -> None:
    """A stage whose tool cannot be had: a failure in CI, a loud skip elsewhere."""
    message = f"{stage} NOT RUN: {what} is missing. Install it with: {how}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    _not_run.append(message)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _not_run:
        return
    terminalreporter.section("CONFORMANCE STAGES NOT RUN", sep="!", red=True, bold=True)
    for message in dict.fromkeys(_not_run):
        terminalreporter.line(f"!!! {message}", red=True, bold=True)


# -- the stack ---------------------------------------------------------------------------------
@dataclass
class Account:
    role: str
    username: str
    password: str
    id: int = 0
    token: str = field(default="", repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Stack:
    """A running API (and worker) with one account per role and a decoy user."""

    backend: str
    server: LiveServer
    accounts: dict[str, Account]
    decoy: Account
    artifacts: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin(self) -> Account:
        return self.accounts["admin"]


def _login(server: LiveServer, account: Account) -> None:
    response = server.post(
        "/api/v1/auth/login",
        json_body={"username": account.username, "password": account.password},
    )
    assert response.status == 200, response.body[:500]
    account.token = response.json()["access_token"]


def _create_accounts(server: LiveServer) -> tuple[dict[str, Account], Account]:
    admin = Account("admin", "conf_admin", secrets.token_urlsafe(18))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "tasktracker.wsgi",
            "users",
            "create-admin",
            "--username",
            admin.username,
            "--email",
            "conf_admin@example.com",
        ],
        cwd=REPO_ROOT,
        env={**server.env, "TASKTRACKER_ADMIN_PASSWORD": admin.password},
        check=True,
        timeout=120,
        capture_output=True,
    )
    _login(server, admin)
    accounts = {"admin": admin}
    for role, name in [("user", "conf_user"), ("viewer", "conf_viewer"), ("user", "conf_decoy")]:
        account = Account(role, name, secrets.token_urlsafe(18))
        response = server.post(
            "/api/v1/users",
            headers=admin.headers,
            json_body={
                "username": name,
                "email": f"{name}@example.com",
                "password": account.password,
                "role": role,
            },
        )
        assert response.status == 201, response.body[:500]
        account.id = response.json()["id"]
        accounts[name] = account
    me = http_request(server.url, "GET", "/api/v1/users/me", headers=admin.headers)
    admin.id = me.json()["id"]
    decoy = accounts.pop("conf_decoy")
    accounts["user"] = accounts.pop("conf_user")
    accounts["viewer"] = accounts.pop("conf_viewer")
    for account in (accounts["user"], accounts["viewer"]):
        _login(server, account)
    return accounts, decoy


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A database made for this run, dropped afterwards."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            returncode=3,
        )
    name = f"tasktracker_conf_{RUN_ID}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def _redis(prefix: str) -> Iterator[str]:
    """The Redis URL; this run's keys (under ``prefix``) are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.exit(
            f"Redis is not reachable at {REDIS_URL} ({exc}); start it with: "
            'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""',
            returncode=3,
        )
    try:
        yield REDIS_URL
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _start_worker(server: LiveServer, log_path: Path) -> subprocess.Popen[bytes]:
    """A real Celery worker on the server's queue, so the snapshot and import jobs run."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasktracker.jobs.worker",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                server.env["TASKTRACKER_CELERY_QUEUE"],
            ],
            cwd=REPO_ROOT,
            env=server.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(15)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(10)


@pytest.fixture(scope="session", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The API under gunicorn on ``request.param`` ("postgres" or "embedded"), with accounts."""
    backend = str(request.param)
    if backend not in {"postgres", "embedded"}:
        pytest.fail(f"unknown backend {backend!r} in TASKTRACKER_CONFORMANCE_BACKENDS")
    artifacts = ARTIFACTS / backend
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    run_dir = tmp_path_factory.mktemp(f"live-{backend}")
    # prometheus_client's multiprocess mode needs the folder before any process starts
    # (the migration and the admin command run before gunicorn makes it).
    (run_dir / "metrics").mkdir()
    prefix = f"ttconf:{RUN_ID}:"
    extra = {
        **UNTHROTTLED,
        # The production configuration (strong secret, no debug), which is what users run.
        "TASKTRACKER_ENV": "production",
        # Stages run for minutes; a token must not expire in the middle of one.
        "TASKTRACKER_ACCESS_TOKEN_MINUTES": "120",
        "TASKTRACKER_LOG_LEVEL": "WARNING",
        "TASKTRACKER_REDIS_PREFIX": prefix,
        "TASKTRACKER_CELERY_QUEUE": f"ttconf-{RUN_ID}",
        "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "metrics"),
    }
    with ExitStack() as cleanup:
        if backend == "postgres":
            database_url = cleanup.enter_context(_postgres_database())
            redis_url: str | None = cleanup.enter_context(_redis(prefix))
            workers = 2
        else:
            database_url = f"sqlite:///{run_dir / 'tasktracker.db'}"
            redis_url = None
            # The embedded mode keeps its cache and rate limits in the process: one worker.
            workers = 1
        server = start_live_server(
            database_url=database_url,
            redis_url=redis_url,
            jwt_secret=secrets.token_urlsafe(48),
            log_dir=run_dir,
            workers=workers,
            extra_env=extra,
        )
        cleanup.callback(shutil.copy, server.log_path, artifacts / "gunicorn.log")
        cleanup.callback(server.stop)
        if backend == "postgres":
            worker = _start_worker(server, artifacts / "celery-worker.log")
            cleanup.callback(_stop, worker)
        accounts, decoy = _create_accounts(server)
        yield Stack(backend, server, accounts, decoy, artifacts)
