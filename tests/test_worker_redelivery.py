"""A job whose worker dies midway runs again, and only once (``acks_late`` with
``reject_on_worker_lost``, and the Redis transport's visibility timeout).

The job is held midway without mocking anything: the test takes the PostgreSQL advisory lock
that serialises snapshots of one date (the lock a concurrent run of that date would hold), so
the worker's run has marked itself running and waits inside its transaction. Then:

- the whole worker is SIGKILLed (a machine or container dying): its message stays unacknowledged
  in Redis until another worker, here one with TASKTRACKER_CELERY_VISIBILITY_TIMEOUT=2, puts it
  back on the queue and runs it;
- only the pool process running the job is SIGKILLed (the OOM killer): the worker's main
  process requeues the message at once and a new pool process runs it.

Either way the run succeeds once: one run row, one log per active task, one success counted.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, select

from tasktracker.config import DEFAULT_CELERY_VISIBILITY_TIMEOUT, Settings
from tasktracker.jobs.celery_app import broker_transport_options, celery_config
from tasktracker.models import JobStatus, SnapshotRun, db
from tasktracker.repositories.task_logs import SNAPSHOT_LOCK_CLASS

from .conftest import TestUser
from .live_server import wait_for
from .task_log_factories import Tasks, tasks_fixture  # noqa: F401  (the tasks fixture)
from .test_worker_metrics import (
    WorkerProcess,
    request_snapshot,
    run_row,
    sample,
    scrape,
    start_worker,  # noqa: F401  (the fixture)
    wait_until_succeeded,
)

DAY = date(2024, 5, 1)
ACTIVE_TASKS = 5
SHORT_VISIBILITY_TIMEOUT = 2


def libpq_url(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def snapshot_date_locked(settings: Settings, day: date) -> Iterator[Callable[[], set[int]]]:
    """Hold the snapshot lock of ``day`` (released on exit); yields a function that returns
    the server processes of the sessions waiting for it."""
    with psycopg.connect(libpq_url(settings), autocommit=True, connect_timeout=5) as conn:
        key = (SNAPSHOT_LOCK_CLASS, day.toordinal())
        conn.execute("SELECT pg_advisory_lock(%s, %s)", key)

        def waiting() -> set[int]:
            rows = conn.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = %s AND objid::bigint = %s",
                key,
            ).fetchall()
            return {int(row[0]) for row in rows}

        yield waiting


def processes(*, parent: int | None = None, group: int | None = None) -> set[int]:
    """Live processes (from /proc) with this parent and/or in this process group."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ")".
        state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if state in {"Z", "X"}:
            continue
        if (parent is None or int(ppid) == parent) and (group is None or int(pgrp) == group):
            found.add(int(entry.name))
    return found


def run_count(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(SnapshotRun)) or 0
        db.session.remove()
        return count


def unacked(app: Flask, settings: Settings) -> list[str]:
    """The messages taken by some worker and not yet acknowledged (this run's Redis prefix)."""
    client = app.extensions["tasktracker"].redis
    values = client.hvals(broker_transport_options(settings)["unacked_key"])
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def wait_until_blocked(
    app: Flask, run_id: str, waiting: Callable[[], set[int]], besides: set[int] | None = None
) -> set[int]:
    """Until the run is running and a session (other than ``besides``) waits for the snapshot
    lock; the waiting sessions."""

    def blocked() -> set[int]:
        run = run_row(app, run_id)
        if run is None or run.status != JobStatus.RUNNING.value:
            return set()
        sessions = waiting()
        return sessions if sessions - (besides or set()) else set()

    found: set[int] = wait_for(blocked, 60, "the run to wait for the snapshot lock")
    return found


@contextmanager
def a_run_held_midway(
    app: Flask, settings: Settings, tasks: Tasks, admin: TestUser, worker: WorkerProcess
) -> Iterator[tuple[str, Callable[[], set[int]], set[int]]]:
    """ACTIVE_TASKS active tasks, and a snapshot of DAY run by ``worker`` held inside its run:
    it waits for the date's lock, which this test holds until the block ends. Yields the run's
    id, the function listing the lock's waiting sessions, and the run's own session."""
    for i in range(ACTIVE_TASKS):
        tasks.add(admin.id, f"task {i}")
    with snapshot_date_locked(settings, DAY) as waiting:
        run_id = request_snapshot(app, admin, worker.queue, log_date=DAY).id
        yield run_id, waiting, wait_until_blocked(app, run_id, waiting)


def assert_ran_once(
    app: Flask, settings: Settings, tasks: Tasks, run_id: str, worker: WorkerProcess
) -> None:
    run = wait_until_succeeded(app, run_id, worker)
    assert (run.created, run.existing, run.error) == (ACTIVE_TASKS, 0, None)
    assert run_count(app) == 1
    assert len(tasks.logs(DAY)) == ACTIVE_TASKS
    assert tasks.duplicate_logs() == 0
    # Acknowledged: nothing is left to be delivered again.
    wait_for(
        lambda: not any(run_id in message for message in unacked(app, settings)),
        10,
        "the message to be acknowledged",
    )
    text = scrape(worker).body.decode()
    assert sample(text, "tasktracker_job_runs_total", job="snapshot", outcome="succeeded") == 1
    assert sample(text, "tasktracker_job_runs_total", job="snapshot", outcome="failed") is None


@pytest.mark.worker
@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_a_killed_workers_job_is_redelivered_to_another_worker_and_runs_once(
    app: Flask,
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],  # noqa: F811
    tasks: Tasks,
    admin: TestUser,
) -> None:
    first = start_worker(concurrency=1, metrics=False)
    with a_run_held_midway(app, settings, tasks, admin, first) as (run_id, _, _):
        first.kill()
        assert first.process.returncode == -signal.SIGKILL
        wait_for(
            lambda: not processes(group=first.process.pid), 10, "the pool processes to die too"
        )
    # The dead worker's message waits, unacknowledged, for the visibility timeout.
    assert [m for m in unacked(app, settings) if run_id in m]
    run = run_row(app, run_id)
    assert run is not None
    assert run.status == JobStatus.RUNNING.value
    assert tasks.logs(DAY) == []  # its transaction died with it

    second = start_worker(
        concurrency=1,
        env={"TASKTRACKER_CELERY_VISIBILITY_TIMEOUT": str(SHORT_VISIBILITY_TIMEOUT)},
    )
    assert_ran_once(app, settings, tasks, run_id, second)


@pytest.mark.worker
@pytest.mark.postgres_only
@pytest.mark.timeout(180)
def test_a_job_whose_pool_process_is_killed_is_requeued_at_once_and_runs_once(
    app: Flask,
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],  # noqa: F811
    tasks: Tasks,
    admin: TestUser,
) -> None:
    # The default visibility timeout (6 h): only the worker's own requeue can bring it back.
    worker = start_worker(concurrency=1)
    with a_run_held_midway(app, settings, tasks, admin, worker) as (run_id, waiting, first_attempt):
        (child,) = processes(parent=worker.process.pid)
        os.kill(child, signal.SIGKILL)
        # A new pool process takes the requeued job and waits for the lock in a session of its
        # own (the killed one's session may wait on until it gets the lock and finds its
        # client gone).
        wait_until_blocked(app, run_id, waiting, besides=first_attempt)
        assert child not in processes(parent=worker.process.pid)
    assert worker.alive()
    assert_ran_once(app, settings, tasks, run_id, worker)
    assert "WorkerLostError" in worker.logs()


# -- configuration -------------------------------------------------------------------------


def test_the_visibility_timeout_is_a_setting_and_the_unacked_keys_are_this_installs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = Settings(redis_prefix="tt:")
    options = broker_transport_options(default)
    assert options["visibility_timeout"] == DEFAULT_CELERY_VISIBILITY_TIMEOUT == 6 * 3600
    assert (options["unacked_key"], options["unacked_index_key"]) == (
        "tt:unacked",
        "tt:unacked_index",
    )
    assert options["unacked_mutex_key"] == "tt:unacked_mutex"
    # Kombu's own pace for the default: a scan every 10 x 10 s.
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (10, 10)
    config = celery_config(default)
    assert config["result_backend_transport_options"] == {
        "visibility_timeout": DEFAULT_CELERY_VISIBILITY_TIMEOUT
    }

    short = broker_transport_options(Settings(celery_visibility_timeout=2))
    assert short["visibility_timeout"] == 2
    assert (short["unacked_restore_interval"], short["unacked_restore_throttle"]) == (1, 1)

    monkeypatch.setenv("JWT_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("TASKTRACKER_CELERY_VISIBILITY_TIMEOUT", "90")
    assert Settings.from_env().celery_visibility_timeout == 90
    monkeypatch.delenv("TASKTRACKER_CELERY_VISIBILITY_TIMEOUT")
    assert Settings.from_env().celery_visibility_timeout == DEFAULT_CELERY_VISIBILITY_TIMEOUT
