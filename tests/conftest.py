"""Shared test vocabulary: ``settings``, ``app``, ``client``, ``make_user``, ``admin``/``user``/
``viewer`` (each with ``.headers``), ``uow``, ``celery_worker``.

Backends: ``TASKTRACKER_TEST_BACKEND=postgres`` (default) runs against a fresh PostgreSQL
database and a Redis key prefix made for this run; ``embedded`` runs against a SQLite file
with the in-process cache. Each test starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tasktracker import create_app
from tasktracker.config import Settings
from tasktracker.models import Base, Role, db
from tasktracker.services.users import NewUser, create_user
from tasktracker.unit_of_work import UnitOfWork

BACKEND = os.environ.get("TASKTRACKER_TEST_BACKEND", "postgres")
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get(
    "TEST_REDIS_URL", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
)
RUN_ID = uuid.uuid4().hex[:10]
TEST_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct-horse-battery"

START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "embedded":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL/Redis (embedded run)")
    for item in items:
        if "postgres_only" in item.keywords or "worker" in item.keywords:
            item.add_marker(skip)


def _pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database made for this run (and dropped after it)."""
    if BACKEND == "embedded":
        path = tmp_path_factory.mktemp("db") / "tasktracker.db"
        yield f"sqlite:///{path}"
        return
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}).\n"
            f"Start it with: {START_PG}\nor set TEST_DATABASE_URL.",
            returncode=3,
        )
    name = f"tasktracker_test_{RUN_ID}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str | None]:
    if BACKEND == "embedded":
        yield None
        return
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.exit(
            f"Redis is not reachable at {REDIS_URL} ({exc}).\n"
            f"Start it with: {START_REDIS}\nor set TEST_REDIS_URL.",
            returncode=3,
        )
    yield REDIS_URL
    for key in client.scan_iter(match=f"tttest:{RUN_ID}:*", count=1000):
        client.delete(key)


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        env="testing",
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"tttest:{RUN_ID}:",
        jwt_secret_key=TEST_SECRET,
        # The limiter is on (as in production) with limits no test reaches; rate-limit tests
        # use the ``strict_limits`` fixture.
        ratelimit_default="100000/minute",
        ratelimit_login="100000/minute",
        ratelimit_upload="100000/hour",
        celery_eager=redis_url is None,
        celery_queue=f"tttest-{RUN_ID}",
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app(settings)
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables and an empty cache."""
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    _quiesce_jobs(application)
    with application.app_context():
        db.session.remove()
        _empty_tables()
    container = application.extensions["tasktracker"]
    if container.redis is not None:
        prefix = container.settings.redis_prefix
        keys = list(container.redis.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            container.redis.delete(*keys)
    else:
        container.cache.clear()
    from tasktracker.extensions import limiter

    limiter.reset()


def _quiesce_jobs(application: Flask) -> None:
    """No job of this test may outlive it: drop what it queued and wait for what runs.

    The session's ``celery_worker`` keeps consuming this run's queue after the test that
    started it, so a job queued by any later test (``POST /task-logs/run`` say) would run
    during, or after, the next test's clean-up and write into the next test's tables.
    """
    if application.extensions["tasktracker"].settings.celery_eager:
        return
    from celery.worker import state as worker_state

    application.extensions["celery"].control.purge()
    deadline = time.monotonic() + 60
    while worker_state.active_requests or worker_state.reserved_requests:
        if time.monotonic() > deadline:
            raise RuntimeError("a job of this test was still running after 60 s")
        time.sleep(0.02)


def _empty_tables() -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    for attempt in range(3):
        try:
            with db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for table in tables:
                        conn.execute(text(f"DELETE FROM {table}"))
            return
        except OperationalError as exc:
            # A job a worker took just before the purge can still hold a row lock; PostgreSQL
            # breaks the deadlock by aborting one side. Wait and empty the tables again.
            if attempt == 2 or "deadlock" not in str(exc.orig):
                raise
            time.sleep(0.5)


@pytest.fixture
def override_settings(app: Flask) -> Iterator[Callable[..., Settings]]:
    """Change settings of the running app for one test (the extensions are per process, so
    tests change the one app rather than build a second)."""
    container = app.extensions["tasktracker"]
    original = container.settings

    def change(**overrides: Any) -> Settings:
        container.settings = replace(container.settings, **overrides)
        app.config["TASKTRACKER_SETTINGS"] = container.settings
        return container.settings

    yield change
    container.settings = original
    app.config["TASKTRACKER_SETTINGS"] = original


@pytest.fixture
def strict_limits(override_settings: Callable[..., Settings]) -> Settings:
    """The production defaults of SPEC section 8 (login 5/minute, upload 10/hour, 300/minute)."""
    return override_settings(
        ratelimit_login="5/minute", ratelimit_upload="10/hour", ratelimit_default="300/minute"
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def uow(app: Flask) -> Iterator[UnitOfWork]:
    """A unit of work inside an app context (for service and repository tests)."""
    with app.app_context():
        yield app.extensions["tasktracker"].uow()


@dataclass
class TestUser:
    __test__ = False  # a fixture value, not a test class

    id: int
    username: str
    email: str
    password: str
    role: Role
    headers: dict[str, str]


@pytest.fixture
def make_user(app: Flask) -> Callable[..., TestUser]:
    """Create a user directly through the service and mint an access token for it."""

    def factory(role: Role | str = Role.USER, username: str | None = None, **kw: Any) -> TestUser:
        role = Role(role)
        name = username or f"{role.value}_{secrets.token_hex(4)}"
        email = kw.get("email") or f"{name}@example.com"
        password = kw.get("password") or PASSWORD
        with app.app_context():
            container = app.extensions["tasktracker"]
            user = create_user(container.uow(), None, NewUser(name, email, password, role))
            token = container.tokens.issue_pair(user.id).access.token
        return TestUser(
            user.id, name, email.lower(), password, role, {"Authorization": f"Bearer {token}"}
        )

    return factory


@pytest.fixture
def admin(make_user: Callable[..., TestUser]) -> TestUser:
    return make_user(Role.ADMIN, username="admin")


@pytest.fixture
def user(make_user: Callable[..., TestUser]) -> TestUser:
    return make_user(Role.USER, username="alice")


@pytest.fixture
def other_user(make_user: Callable[..., TestUser]) -> TestUser:
    return make_user(Role.USER, username="bob")


@pytest.fixture
def viewer(make_user: Callable[..., TestUser]) -> TestUser:
    return make_user(Role.VIEWER, username="victor")


@pytest.fixture(scope="session")
def celery_worker(app: Flask) -> Iterator[Any]:
    """A real Celery worker (threaded, solo pool) consuming this run's queue on Redis."""
    if app.extensions["tasktracker"].settings.celery_eager:
        pytest.skip("embedded mode runs jobs inline")
    from celery.contrib.testing.worker import start_worker

    celery_app = app.extensions["celery"]
    with start_worker(
        celery_app,
        pool="solo",
        perform_ping_check=False,
        queues=[app.extensions["tasktracker"].settings.celery_queue],
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker


@pytest.fixture
def tmp_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(content: str, name: str = "tasks.csv") -> Path:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        return path

    return write
