"""Import jobs: large files through a real Celery worker, a worker killed midway, redelivery,
a broker that is down, and a duplicate found only when the job runs."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tasktracker.auth.policy import Actor
from tasktracker.config import Settings
from tasktracker.errors import Conflict, InvalidInput
from tasktracker.models import ImportJob, Role, Task, db
from tasktracker.services import imports as import_service

from .conftest import TEST_SECRET, TestUser
from .live_server import free_port, start_live_server
from .test_imports import SPREADSHEET, V1, post_csv

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_csv(rows: int) -> bytes:
    lines = ["task_name,description,status,priority,created_at,assigned_user,due_date"]
    priorities = ("low", "medium", "high")
    lines += [
        f"Task {i},Imported task number {i},{'TRUE' if i % 2 else 'FALSE'},"
        f"{priorities[i % 3]},{1 + i % 12}/{1 + i % 28}/2025,,2026-{1 + i % 12:02d}-01"
        for i in range(rows)
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def count_tasks(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Task)) or 0
        db.session.remove()
        return count


def job_row(app: Flask, job_id: int) -> ImportJob:
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        assert job is not None
        db.session.remove()
        return job


def queue_without_running(app: Flask, admin: TestUser, content: bytes, force: bool = False) -> int:
    """Accept an upload as a queued job, through the service, without handing it to Celery."""
    with app.app_context():
        c = app.extensions["tasktracker"]
        submission = import_service.submit_import(
            c.uow(),
            Actor(admin.id, admin.username, Role.ADMIN),
            io.BytesIO(content),
            "tasks.csv",
            import_service.ImportOptions(force=force),
            settings=replace(c.settings, import_async_rows=0),
            cache=c.cache,
            enqueue=lambda job_id, force: None,
        )
        assert submission.queued
        return submission.job.id


def run_job(app: Flask, job_id: int, force: bool = False) -> ImportJob:
    with app.app_context():
        c = app.extensions["tasktracker"]
        return import_service.run_import(c.uow(), job_id, force, c.settings, c.cache)


def wait_for(client: FlaskClient, admin: TestUser, import_id: int, timeout: float) -> list[Any]:
    """Poll the import until it finishes; every report seen, in order."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = client.get(f"{V1}/{import_id}", headers=admin.headers).get_json()
        seen.append(report)
        if report["status"] in {"succeeded", "failed"}:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"import {import_id} did not finish in {timeout}s: {seen[-1]}")


# -- a real worker -------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.postgres_only
@pytest.mark.timeout(600)
def test_a_100000_row_file_is_imported_by_a_worker(
    client: FlaskClient, app: Flask, admin: TestUser, celery_worker: Any, settings: Settings
) -> None:
    rows = 100_000
    assert app.extensions["tasktracker"].settings.import_async_rows < rows  # the default 50,000

    response = post_csv(client, admin.headers, make_csv(rows))

    assert response.status_code == 202, response.get_json()
    queued = response.get_json()
    assert queued["status"] in {"queued", "running"}
    assert queued["total_rows"] == rows  # estimated from the line count
    seen = wait_for(client, admin, queued["id"], timeout=480)
    final = seen[-1]
    assert final["status"] == "succeeded", final
    assert (final["total_rows"], final["imported"], final["failed"]) == (rows, rows, 0)
    assert final["progress"] == {"processed_rows": rows, "total_rows": rows, "percent": 100.0}
    assert count_tasks(app) == rows
    # Progress never goes backwards while the job runs.
    processed = [report["processed_rows"] for report in seen]
    assert processed == sorted(processed)
    assert list((settings.data_dir / "imports").glob("*")) == []


@pytest.mark.worker
@pytest.mark.postgres_only
def test_a_job_with_bad_rows_in_atomic_mode_fails_and_imports_nothing(
    client: FlaskClient,
    app: Flask,
    admin: TestUser,
    make_user: Callable[..., TestUser],
    celery_worker: Any,
    override_settings: Callable[..., Settings],
) -> None:
    make_user("user", username="alice")
    override_settings(import_async_rows=1)
    response = post_csv(client, admin.headers, SPREADSHEET)
    assert response.status_code == 202
    final = wait_for(client, admin, response.get_json()["id"], timeout=60)[-1]
    assert final["status"] == "failed"
    assert [error["line"] for error in final["errors"]] == [4, 5, 6]
    assert "Nothing was imported" in final["message"]
    assert count_tasks(app) == 0


# -- a worker killed midway ----------------------------------------------------------------

KILLABLE_IMPORT = """
import sys
from tasktracker import create_app
from tasktracker.services import imports

app = create_app()
with app.app_context():
    c = app.extensions["tasktracker"]
    imports.run_import(c.uow(), int(sys.argv[1]), False, c.settings, c.cache)
"""


@pytest.fixture
def import_process(settings: Settings, tmp_path: Path) -> Iterator[Callable[[int], Any]]:
    """Start the import service for a job in a separate process (killed at the end)."""
    started: list[subprocess.Popen[bytes]] = []
    application_name = f"tt-import-{os.getpid()}"

    def start(job_id: int) -> subprocess.Popen[bytes]:
        url = settings.database_url
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASKTRACKER_")},
            "DATABASE_URL": f"{url}?application_name={application_name}",
            "REDIS_URL": settings.redis_url or "",
            "JWT_SECRET_KEY": TEST_SECRET,
            "TASKTRACKER_DATA_DIR": str(settings.data_dir),
            "TASKTRACKER_REDIS_PREFIX": settings.redis_prefix,
            "TASKTRACKER_LOG_LEVEL": "WARNING",
        }
        with (tmp_path / "import.out").open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-c", KILLABLE_IMPORT, str(job_id)],
                cwd=REPO_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    start.application_name = application_name  # type: ignore[attr-defined]
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.mark.postgres_only
@pytest.mark.timeout(600)
def test_a_worker_killed_midway_leaves_nothing_and_the_job_runs_again(
    app: Flask,
    admin: TestUser,
    settings: Settings,
    import_process: Any,
) -> None:
    rows = 200_000
    job_id = queue_without_running(app, admin, make_csv(rows))
    stored = settings.data_dir / "imports" / job_row(app, job_id).storage_key

    process = import_process(job_id)
    deadline = time.monotonic() + 300
    while job_row(app, job_id).processed_rows == 0:
        assert process.poll() is None, "the import process ended before it could be killed"
        assert time.monotonic() < deadline, "no progress was ever reported"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    # The server notices the dead client and rolls its transaction back.
    libpq = settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq, autocommit=True) as conn:
        deadline = time.monotonic() + 120
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (import_process.application_name,),
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the killed import's session never ended"
            time.sleep(0.1)

    job = job_row(app, job_id)
    assert job.status == "running"
    assert 0 < job.processed_rows < rows or job.processed_rows == rows
    assert count_tasks(app) == 0
    assert stored.exists()

    # Redelivered: it starts over and imports every row exactly once.
    again = run_job(app, job_id)
    assert (again.status, again.imported, again.failed) == ("succeeded", rows, 0)
    assert count_tasks(app) == rows
    assert not stored.exists()


def test_a_redelivered_job_that_already_succeeded_does_nothing(app: Flask, admin: TestUser) -> None:
    job_id = queue_without_running(app, admin, make_csv(3))
    first = run_job(app, job_id)
    assert (first.status, first.imported) == ("succeeded", 3)

    second = run_job(app, job_id)

    assert (second.status, second.imported, second.finished_at) == (
        "succeeded",
        3,
        first.finished_at,
    )
    assert count_tasks(app) == 3


def test_the_celery_task_is_thin_and_idempotent(app: Flask, admin: TestUser) -> None:
    from tasktracker.jobs.import_jobs import IMPORT_CSV

    task = app.extensions["celery"].tasks[IMPORT_CSV]
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    job_id = queue_without_running(app, admin, make_csv(2))
    with app.app_context():
        assert task.apply(args=[job_id, False]).get()["status"] == "succeeded"
        assert task.apply(args=[job_id, False]).get()["status"] == "succeeded"
    assert count_tasks(app) == 2


def test_a_duplicate_found_when_the_job_runs_fails_the_job(app: Flask, admin: TestUser) -> None:
    content = make_csv(4)
    first = queue_without_running(app, admin, content)
    second = queue_without_running(app, admin, content)  # queued before the first ran

    assert run_job(app, first).status == "succeeded"
    with pytest.raises(Conflict) as caught:
        run_job(app, second)

    assert caught.value.details["import_id"] == first
    job = job_row(app, second)
    assert job.status == "failed"
    assert f"import {first}" in (job.message or "")
    assert count_tasks(app) == 4
    # Forced, the same file goes in again.
    forced = queue_without_running(app, admin, content, force=True)
    assert run_job(app, forced, force=True).imported == 4


# -- the broker is down --------------------------------------------------------------------


@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_a_job_that_cannot_be_queued_is_503_and_marked_failed(
    app: Flask, admin: TestUser, settings: Settings, tmp_path: Path
) -> None:
    server = start_live_server(
        database_url=settings.database_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        jwt_secret=TEST_SECRET,
        log_dir=tmp_path,
        extra_env={
            "TASKTRACKER_REDIS_PREFIX": settings.redis_prefix,
            "TASKTRACKER_CELERY_QUEUE": settings.celery_queue,
            "TASKTRACKER_IMPORT_ASYNC_ROWS": "1",
        },
    )
    data_dir = Path(server.env["TASKTRACKER_DATA_DIR"])
    try:
        boundary = "import-test-boundary"
        body = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="tasks.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
            "task_name,priority\r\nOne,high\r\nTwo,low\r\n"
            f"\r\n--{boundary}--\r\n"
        ).encode()
        headers = {**admin.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        response = server.post(V1, body=body, headers=headers, timeout=30)
        logs = server.logs()
    finally:
        server.stop()

    assert response.status == 503, f"{response.body[:500]!r}\n{logs[-3000:]}"
    assert response.json()["error"]["code"] == "service_unavailable"
    with app.app_context():
        (job,) = db.session.scalars(select(ImportJob)).all()
        assert job.status == "failed"
        assert "queue is unavailable" in (job.message or "")
        db.session.remove()
    assert list((data_dir / "imports").glob("*")) == []
    assert count_tasks(app) == 0


# -- storing the upload --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "ok"),
    [
        ([b"a" * 1000 + b"\n"] * 3, True),
        ([b"a" * (1 << 20)], True),  # exactly the limit, in one chunk
        ([b"a" * (1 << 19), b"a" * (1 << 19), b"\nb"], True),
        ([b"a" * (1 << 19), b"a" * (1 << 19), b"a\n"], False),  # one byte over, across chunks
        ([b"x\n" + b"a" * ((1 << 20) - 1), b"a" * 10 + b"\r"], False),
        ([b"x\r" + b"a" * ((1 << 20) - 2), b"\r\n" + b"a" * ((1 << 20) - 2)], True),
    ],
)
def test_lines_longer_than_the_limit_are_found_across_chunks(
    chunks: list[bytes], ok: bool, tmp_path: Path
) -> None:
    class Chunked(io.RawIOBase):
        def __init__(self) -> None:
            self.parts = list(chunks)

        def read(self, size: int = -1) -> bytes:
            return self.parts.pop(0) if self.parts else b""

    if ok:
        stored = import_service.store_upload(Chunked(), tmp_path)
        assert stored.size == sum(map(len, chunks))
    else:
        with pytest.raises(InvalidInput, match="longer than 1 MiB"):
            import_service.store_upload(Chunked(), tmp_path)
        assert list(tmp_path.glob("*")) == []


# -- the sweep of abandoned imports and unused upload files ------------------------------------


def _sweep(app: Flask, hours_later: float) -> import_service.Sweep:
    """The sweep as it would run ``hours_later`` from now (the clock is the only fake)."""
    with app.app_context():
        c = app.extensions["tasktracker"]
        now = datetime.now(UTC) + timedelta(hours=hours_later)
        return import_service.sweep_abandoned(c.uow(), c.settings, now=now)


def _stored(app: Flask, job_id: int) -> Path:
    key = job_row(app, job_id).storage_key
    assert key is not None
    return import_service.import_dir(app.extensions["tasktracker"].settings) / key


def test_the_sweep_fails_an_import_whose_job_was_lost(app: Flask, admin: TestUser) -> None:
    job_id = queue_without_running(app, admin, make_csv(3))
    stored = _stored(app, job_id)
    limit = app.extensions["tasktracker"].settings.import_abandon_hours

    assert _sweep(app, limit - 1) == import_service.Sweep(0, 0)  # not yet: still queued
    assert job_row(app, job_id).status == "queued"
    assert stored.exists()

    assert _sweep(app, limit + 1) == import_service.Sweep(1, 1)
    job = job_row(app, job_id)
    assert job.status == "failed"
    assert job.message is not None
    assert "Upload the file again" in job.message
    assert job.finished_at is not None
    assert not stored.exists()
    # The lost message arriving after all finds the job finished and imports nothing.
    assert run_job(app, job_id).status == "failed"
    assert count_tasks(app) == 0


def test_the_sweep_leaves_finished_imports_alone(app: Flask, admin: TestUser) -> None:
    job_id = queue_without_running(app, admin, make_csv(2))
    done = run_job(app, job_id)
    limit = app.extensions["tasktracker"].settings.import_abandon_hours
    assert _sweep(app, limit + 1) == import_service.Sweep(0, 0)
    assert job_row(app, job_id).finished_at == done.finished_at
    assert job_row(app, job_id).status == "succeeded"


def test_the_sweep_deletes_only_old_files_no_unfinished_import_uses(
    app: Flask, admin: TestUser
) -> None:
    settings = app.extensions["tasktracker"].settings
    directory = import_service.import_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    in_use = _stored(app, queue_without_running(app, admin, make_csv(1)))
    old_orphan = directory / f"{'0' * 32}.csv"
    new_orphan = directory / f"{'1' * 32}.csv"
    not_an_upload = directory / "README"
    for path in (old_orphan, new_orphan, not_an_upload):
        path.write_bytes(b"task_name\n")
    hour_ago = time.time() - 3600 * (settings.import_abandon_hours + 1)
    for path in (in_use, old_orphan, not_an_upload):
        os.utime(path, (hour_ago, hour_ago))

    # Run "now": the job is recent (not abandoned), its file is old but in use.
    assert _sweep(app, 0) == import_service.Sweep(0, 1)
    assert not old_orphan.exists()
    assert in_use.exists()
    assert new_orphan.exists()
    assert not_an_upload.exists()
    for path in (in_use, new_orphan, not_an_upload):
        path.unlink()


def test_beat_runs_the_sweep_hourly(app: Flask) -> None:
    from tasktracker.jobs.import_jobs import SWEEP

    celery = app.extensions["celery"]
    assert SWEEP in celery.tasks
    (entry,) = [e for e in celery.conf.beat_schedule.values() if e["task"] == SWEEP]
    assert entry["schedule"].minute == {35}
    assert len(entry["schedule"].hour) == 24


def test_the_abandon_limit_must_outlast_redelivery(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tasktracker.config import ConfigError

    monkeypatch.setenv("TASKTRACKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TASKTRACKER_IMPORT_ABANDON_HOURS", "2")
    monkeypatch.setenv("TASKTRACKER_CELERY_VISIBILITY_TIMEOUT", str(3 * 3600))
    with pytest.raises(ConfigError, match="TASKTRACKER_IMPORT_ABANDON_HOURS"):
        Settings.from_env()
    monkeypatch.setenv("TASKTRACKER_IMPORT_ABANDON_HOURS", "4")
    assert Settings.from_env().import_abandon_hours == 4


def test_the_sweep_command(app: Flask, admin: TestUser) -> None:
    queue_without_running(app, admin, make_csv(1))
    result = app.test_cli_runner().invoke(args=["imports", "sweep"])
    assert result.exit_code == 0, result.output
    # The upload directory is shared by the session's tests: only the job of this one is known.
    assert re.search(
        r"^Failed 0 abandoned import\(s\); deleted \d+ unused upload file\(s\)\.$",
        result.output,
        re.MULTILINE,
    )
