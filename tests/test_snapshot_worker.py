"""The snapshot jobs through real Celery workers on the Redis broker (PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tasktracker.config import Settings
from tasktracker.jobs.snapshot_jobs import DAILY, MAX_RETRIES, REQUESTED, RETRY_BACKOFF_MAX_SECONDS
from tasktracker.models import JobStatus, SnapshotRun

from .conftest import TEST_SECRET, TestUser
from .live_server import wait_for
from .task_log_factories import Tasks, tasks_fixture  # noqa: F401  (the tasks fixture)

pytestmark = [pytest.mark.worker, pytest.mark.postgres_only]

DAY = "2024-05-01"


def run_status(app: Flask, run_id: str) -> SnapshotRun | None:
    with app.app_context(), app.extensions["tasktracker"].uow() as uow:
        return uow.task_logs.get_run(run_id)


def celery(app: Flask) -> Any:
    return app.extensions["celery"]


def test_the_tasks_are_registered_with_acks_late_and_bounded_retries(app: Flask) -> None:
    from tasktracker.config import DEFAULT_CELERY_VISIBILITY_TIMEOUT as VISIBILITY_TIMEOUT

    conf = celery(app).conf
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    assert conf.result_backend_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT
    for name in (DAILY, REQUESTED):
        task = celery(app).tasks[name]
        assert task.acks_late
        assert task.reject_on_worker_lost
        assert task.max_retries == MAX_RETRIES
        assert task.retry_jitter
        assert task.retry_backoff
    # The longest wait before a retry is far below the visibility timeout, so a message
    # waiting for its retry is never handed to a second worker as if its worker had died.
    assert RETRY_BACKOFF_MAX_SECONDS * 10 < VISIBILITY_TIMEOUT


def test_the_daily_job_runs_on_a_worker(
    app: Flask, celery_worker: Any, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id, "a")
    tasks.add(admin.id, "b", status="done")
    result = celery(app).tasks[DAILY].apply_async(args=[DAY])
    outcome = result.get(timeout=30)
    assert outcome == {
        "run_id": result.id,
        "log_date": DAY,
        "status": "succeeded",
        "created": 1,
        "existing": 0,
    }
    run = run_status(app, result.id)
    assert run is not None
    assert (run.status, run.trigger, run.created) == ("succeeded", "schedule", 1)
    assert len(tasks.logs()) == 1


def test_an_admin_run_is_queued_and_its_status_can_be_followed(
    client: FlaskClient, celery_worker: Any, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id)
    response = client.post("/api/v1/task-logs/run", headers=admin.headers)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["job_id"] == body["id"]
    assert body["status"] in {"queued", "running", "succeeded"}
    assert response.headers["Location"] == f"/api/v1/task-logs/runs/{body['id']}"

    def finished() -> Any:
        run = client.get(response.headers["Location"], headers=admin.headers).get_json()
        return run if run["status"] == "succeeded" else None

    run = wait_for(finished, what="the run to finish")
    assert (run["created"], run["existing"], run["trigger"]) == (1, 0, "manual")
    assert run["requested_by_id"] == admin.id


def test_a_run_on_a_worker_makes_cached_pages_stale(
    client: FlaskClient, celery_worker: Any, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id)
    assert client.get(f"/tasks?date={DAY}", headers=admin.headers).get_json()["tasks"] == []
    assert client.get(f"/tasks?date={DAY}", headers=admin.headers).headers["X-Cache"] == "HIT"
    celery(client.application).tasks[DAILY].apply_async(args=[DAY]).get(timeout=30)
    page = client.get(f"/tasks?date={DAY}", headers=admin.headers)
    assert (page.headers["X-Cache"], page.get_json()["total"]) == ("MISS", 1)


def test_a_database_error_is_retried_until_it_passes(
    app: Flask, celery_worker: Any, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id)
    container = app.extensions["tasktracker"]

    def rename(old: str, new: str) -> None:
        with app.app_context(), container.uow() as uow:
            uow.session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
            uow.commit()

    rename("task_logs", "task_logs_away")
    try:
        result = celery(app).tasks[DAILY].apply_async(args=[DAY])
        failed = wait_for(
            lambda: (run := run_status(app, result.id)) and run.status == JobStatus.FAILED.value,
            what="the first attempt to fail",
        )
        assert failed
    finally:
        rename("task_logs_away", "task_logs")
    # The retry waits 0-10 s (backoff with jitter), then finishes the same run.
    assert result.get(timeout=60)["created"] == 1
    run = run_status(app, result.id)
    assert run is not None
    assert (run.status, run.error) == ("succeeded", None)


# -- two workers at once -------------------------------------------------------------------------


@pytest.fixture
def second_worker(
    app: Flask, settings: Settings, tmp_path: Path, celery_worker: Any
) -> Iterator[str]:
    """A second worker: a separate process started the way README says."""
    env = {
        **os.environ,
        "TASKTRACKER_ENV": "testing",
        "TASKTRACKER_DATA_DIR": str(tmp_path),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "TASKTRACKER_REDIS_PREFIX": settings.redis_prefix,
        "TASKTRACKER_CELERY_QUEUE": settings.celery_queue,
        "JWT_SECRET_KEY": TEST_SECRET,
        "TASKTRACKER_LOG_LEVEL": "WARNING",
    }
    hostname = f"second-{os.getpid()}@localhost"
    command = [
        *(sys.executable, "-m", "celery", "-A", "tasktracker.jobs.worker", "worker"),
        *("--pool", "solo", "--loglevel", "WARNING", "--hostname", hostname),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    log_path = tmp_path / "second-worker.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_for(
            lambda: (
                process.poll() is not None
                or celery(app).control.ping(destination=[hostname], timeout=0.5)
            ),
            timeout=60,
            what="the second worker to answer a ping",
        )
        assert process.poll() is None, log_path.read_text()
        yield hostname
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_two_workers_running_the_job_at_once_log_each_task_once(
    app: Flask, second_worker: str, tasks: Tasks, admin: TestUser
) -> None:
    tasks.bulk(admin.id, 20_000)
    jobs = [celery(app).tasks[DAILY].apply_async(args=[DAY]) for _ in range(4)]
    outcomes = [job.get(timeout=90) for job in jobs]
    assert all(o["status"] == "succeeded" for o in outcomes)
    assert sum(o["created"] for o in outcomes) == 20_000
    assert all(o["created"] + o["existing"] == 20_000 for o in outcomes)
    assert len(tasks.logs()) == 20_000
    assert tasks.duplicate_logs() == 0
    # Both workers took part (each reserves one message at a time).
    stats = celery(app).control.inspect([second_worker], timeout=2).stats() or {}
    assert stats[second_worker]["total"].get(DAILY, 0) >= 1, stats
