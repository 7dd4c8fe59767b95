"""Fault tolerance with real processes (issue 7, item 5): gunicorn servers on loopback ports
sharing this run's PostgreSQL database and Redis prefix.

(a) two API processes share rate limits and token revocation; (b) with Redis unreachable the
API reads, writes, keeps revoked tokens out, limits in memory, refuses to queue jobs (503) and
says so in /readyz; (c) killed database connections are replaced without a hang; (d) a request
that fails midway leaves no partial write. Every server is stopped in a ``finally``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.config import Settings

from .conftest import PASSWORD, TEST_SECRET, TestUser
from .live_server import LiveServer, free_port, start_live_server

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(240)]

ME = "/api/v1/users/me"
DEFAULT = object()


@pytest.fixture
def start(app: Flask, settings: Settings, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start API processes on this run's database and Redis prefix; all stopped at the end."""
    started: list[LiveServer] = []

    def factory(*, redis_url: Any = DEFAULT, workers: int = 1, **env: str) -> LiveServer:
        server = start_live_server(
            database_url=settings.database_url,
            redis_url=settings.redis_url if redis_url is DEFAULT else redis_url,
            jwt_secret=TEST_SECRET,
            log_dir=tmp_path,
            workers=workers,
            extra_env={
                "TASKTRACKER_REDIS_PREFIX": settings.redis_prefix,
                "TASKTRACKER_CELERY_QUEUE": settings.celery_queue,
                # As in-process (conftest.settings): limits no test reaches unless it sets its
                # own. The production default (300/minute) is a few seconds of a test's load.
                "TASKTRACKER_RATELIMIT_DEFAULT": "100000/minute",
                **env,
            },
        )
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


def dead_redis_url() -> str:
    """A Redis URL on a loopback port nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


def login(server: LiveServer, username: str, password: str = PASSWORD) -> Any:
    return server.post("/api/v1/auth/login", json_body={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def libpq_url(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


# -- (a) two processes, one state ---------------------------------------------------------


def test_two_api_processes_share_rate_limits_and_revocations(
    start: Callable[..., LiveServer], user: TestUser, other_user: TestUser
) -> None:
    limits = {
        "TASKTRACKER_RATELIMIT_LOGIN": "3/minute",
        "TASKTRACKER_RATELIMIT_DEFAULT": "4/minute",
    }
    a, b = start(**limits), start(**limits)

    # Login attempts made on A count on B (and the other way round).
    assert login(a, "mallory", "wrong-password").status == 401
    assert login(b, "mallory", "wrong-password").status == 401
    assert login(a, "mallory", "wrong-password").status == 401
    limited = login(b, "mallory", "wrong-password")
    assert limited.status == 429
    assert limited.json()["error"]["code"] == "too_many_requests"
    assert int(limited.header("Retry-After") or -1) >= 0
    assert login(a, "mallory", "wrong-password").status == 429

    # One per-user budget over both processes.
    assert [a.get(ME, headers=user.headers).status for _ in range(2)] == [200, 200]
    assert [b.get(ME, headers=user.headers).status for _ in range(2)] == [200, 200]
    assert b.get(ME, headers=user.headers).status == 429
    assert a.get(ME, headers=user.headers).status == 429

    # A token revoked through A is refused by B, which had just accepted (and cached) it.
    session = login(a, other_user.username)
    assert session.status == 200
    access = session.json()["access_token"]
    assert b.get(ME, headers=bearer(access)).status == 200
    assert a.post("/api/v1/auth/logout", headers=bearer(access)).status == 204
    refused = b.get(ME, headers=bearer(access))
    assert refused.status == 401
    assert refused.json()["error"]["message"] == "The token has been revoked."
    # ... and so is its refresh token, on either process.
    refresh = session.json()["refresh_token"]
    assert b.post("/api/v1/auth/refresh", headers=bearer(refresh)).status == 401


# -- (b) Redis unreachable ----------------------------------------------------------------


def test_with_redis_unreachable_the_api_keeps_working(
    start: Callable[..., LiveServer],
    client: FlaskClient,
    admin: TestUser,
    user: TestUser,
    other_user: TestUser,
) -> None:
    # Revoked while Redis was up: the database has it, the dead Redis will not answer.
    assert client.post("/api/v1/auth/logout", headers=other_user.headers).status_code == 204
    server = start(redis_url=dead_redis_url(), TASKTRACKER_RATELIMIT_LOGIN="2/minute")

    ready = server.get("/readyz")
    assert ready.status == 503
    checks = ready.json()["checks"]
    assert checks["redis"]["status"] == "error"
    assert checks["database"] == "ok"
    assert ready.json()["status"] == "not ready"

    # Reads answer (uncached), writes work.
    assert server.get(ME, headers=admin.headers).status == 200
    assert server.get("/api/v1/users", headers=admin.headers).status == 200
    changed = server.patch(
        f"/api/v1/users/{user.id}", json_body={"role": "viewer"}, headers=admin.headers
    )
    assert changed.status == 200
    assert changed.json()["role"] == "viewer"
    created = server.post(
        "/api/v1/users",
        json_body={"username": "hana", "email": "hana@example.com", "password": PASSWORD},
        headers=admin.headers,
    )
    assert created.status == 201

    # Revocations: the one made before is still refused (database fallback, never "allow"),
    # and one made now (written to the database only) is refused at once.
    assert server.get(ME, headers=other_user.headers).status == 401
    session = login(server, "hana")
    assert session.status == 200
    access = session.json()["access_token"]
    assert server.get(ME, headers=bearer(access)).status == 200
    assert server.post("/api/v1/auth/logout", headers=bearer(access)).status == 204
    assert server.get(ME, headers=bearer(access)).status == 401

    # Rate limits fall back to memory: still enforced, not failing requests or failing open.
    assert login(server, "nobody", "wrong-password").status == 401
    assert login(server, "nobody", "wrong-password").status == 401
    limited = login(server, "nobody", "wrong-password")
    assert limited.status == 429
    assert limited.header("Retry-After") is not None
    assert "falling back to in-memory storage" in server.logs()


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/log-tasks", "snapshot"),
        ("/api/v1/task-logs/run", "snapshot"),
        ("/api/v1/imports", "import"),
    ],
)
def test_with_redis_unreachable_a_job_that_cannot_be_queued_is_503(
    start: Callable[..., LiveServer], admin: TestUser, path: str, kind: str
) -> None:
    # Every import goes to the queue (one row is "large"), so the broker is needed.
    server = start(redis_url=dead_redis_url(), TASKTRACKER_IMPORT_ASYNC_ROWS="1")
    if kind == "import":
        boundary = "tasktracker-test-boundary"
        body = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="tasks.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
            "task_name,priority\r\nOne,high\r\nTwo,low\r\n"
            f"\r\n--{boundary}--\r\n"
        ).encode()
        headers = {**admin.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        started = time.monotonic()
        response = server.post(path, body=body, headers=headers, timeout=30)
    else:
        started = time.monotonic()
        response = server.post(path, headers=admin.headers, timeout=30)
    elapsed = time.monotonic() - started
    if response.status == 404:
        pytest.skip(f"{path} does not exist yet (its issue is not merged)")
    assert response.status == 503, f"{response.body[:300]!r}\n{server.logs()[-3000:]}"
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert body["request_id"] == response.header("X-Request-ID")
    assert elapsed < 10, f"refusing took {elapsed:.1f}s"


def test_a_dead_redis_costs_milliseconds_not_seconds(
    start: Callable[..., LiveServer], admin: TestUser
) -> None:
    healthy, degraded = start(), start(redis_url=dead_redis_url())

    def median_seconds(server: LiveServer) -> float:
        server.get(ME, headers=admin.headers)  # warm up (connections, first fallback)
        timings = []
        for _ in range(15):
            began = time.perf_counter()
            assert server.get(ME, headers=admin.headers).status == 200
            timings.append(time.perf_counter() - began)
        return statistics.median(timings)

    normal, without_redis = median_seconds(healthy), median_seconds(degraded)
    print(f"\nGET {ME} median: Redis up {normal * 1000:.1f} ms, down {without_redis * 1000:.1f} ms")
    assert without_redis < normal + 0.1


# -- (c) database connections killed ------------------------------------------------------


def test_killed_database_connections_are_replaced_and_nothing_hangs(
    start: Callable[..., LiveServer], settings: Settings, admin: TestUser
) -> None:
    server = start()
    for _ in range(5):  # fill the pool with open connections
        assert server.get(ME, headers=admin.headers).status == 200
    statuses: list[int | str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                statuses.append(server.get(ME, headers=admin.headers, timeout=10).status)
            except OSError as exc:  # a timeout is a hang
                statuses.append(type(exc).__name__)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for worker in workers:
        worker.start()
    killed = 0
    try:
        with psycopg.connect(libpq_url(settings), autocommit=True, connect_timeout=5) as conn:
            for _ in range(4):
                time.sleep(0.3)
                row = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (f"tasktracker-live-{server.port}",),
                ).fetchone()
                killed += row[0] if row else 0
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers), "a request hung"
    assert killed > 0
    # In flight during a kill a request may fail (a JSON 500); none may hang.
    assert set(statuses) <= {200, 500}, statuses
    # The next requests succeed: the checkout check (tasktracker/db_pool.py) replaced every
    # dead connection.
    assert [server.get(ME, headers=admin.headers).status for _ in range(8)] == [200] * 8


def test_idle_connections_killed_between_requests_cost_no_request(
    start: Callable[..., LiveServer], settings: Settings, admin: TestUser
) -> None:
    """With no request in flight, a killed pooled connection is never handed to a request:
    every request after the kill succeeds, the first one included."""
    server = start(workers=1)
    for _ in range(5):
        assert server.get(ME, headers=admin.headers).status == 200
    with psycopg.connect(libpq_url(settings), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (f"tasktracker-live-{server.port}",),
        ).fetchone()
    assert row is not None
    assert row[0] > 0
    time.sleep(0.2)  # the backends have exited and closed their sockets
    assert [server.get(ME, headers=admin.headers).status for _ in range(8)] == [200] * 8


# -- (d) no partial write -----------------------------------------------------------------


@pytest.fixture
def failing_user_audit(app: Flask) -> Iterator[None]:
    """A real database failure in the middle of a write: the audit insert that follows the
    user insert (or update) is refused by a trigger."""
    from tasktracker.models import db

    statements = [
        "CREATE FUNCTION refuse_user_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.entity = 'user' AND NEW.action IN ('create', 'update') THEN "
        "RAISE EXCEPTION 'audit refused by test trigger'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_user_audit BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_user_audit()",
    ]
    with app.app_context():
        for statement in statements:
            db.session.execute(db.text(statement))
        db.session.commit()
    try:
        yield
    finally:
        with app.app_context():
            db.session.execute(db.text("DROP TRIGGER IF EXISTS refuse_user_audit ON audit_events"))
            db.session.execute(db.text("DROP FUNCTION IF EXISTS refuse_user_audit()"))
            db.session.commit()


def test_a_request_that_fails_midway_leaves_no_partial_write(
    start: Callable[..., LiveServer],
    settings: Settings,
    admin: TestUser,
    user: TestUser,
    failing_user_audit: None,
) -> None:
    server = start()
    created = server.post(
        "/api/v1/users",
        json_body={"username": "ivan", "email": "ivan@example.com", "password": PASSWORD},
        headers=admin.headers,
    )
    assert created.status == 500
    assert created.json()["error"]["code"] == "internal_error"
    changed = server.patch(
        f"/api/v1/users/{user.id}", json_body={"role": "admin"}, headers=admin.headers
    )
    assert changed.status == 500
    with psycopg.connect(libpq_url(settings), connect_timeout=5) as conn:
        ivan = conn.execute("SELECT count(*) FROM users WHERE username = 'ivan'").fetchone()
        role = conn.execute("SELECT role FROM users WHERE id = %s", (user.id,)).fetchone()
    assert ivan == (0,)  # the insert before the failure was rolled back with it
    assert role == ("user",)
    # The same server goes on serving: its connections were returned clean.
    assert server.get(ME, headers=admin.headers).status == 200
