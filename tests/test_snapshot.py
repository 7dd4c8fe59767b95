"""The snapshot service: what it logs, idempotence, concurrent runs, runs, metrics, time zones."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import text

from tasktracker.models import JobStatus, SnapshotRun, TaskPriority, TaskStatus
from tasktracker.services import log_cache
from tasktracker.services import snapshot as snapshot_service

from .conftest import TestUser
from .task_log_factories import Tasks, tasks_fixture  # noqa: F401  (the tasks fixture)

DAY = date(2024, 5, 1)
NEXT_DAY = date(2024, 5, 2)


def run_row(app: Flask, run_id: str) -> SnapshotRun:
    with app.app_context(), app.extensions["tasktracker"].uow() as uow:
        run = uow.task_logs.get_run(run_id)
        assert run is not None
        return run


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- what a snapshot writes ------------------------------------------------------------------


def test_logs_every_active_task_with_its_state_of_the_day(
    app: Flask, tasks: Tasks, admin: TestUser, user: TestUser
) -> None:
    todo = tasks.add(admin.id, "todo", priority="high", assignee_id=user.id)
    doing = tasks.add(admin.id, "doing", status="in_progress", priority="low")
    tasks.add(admin.id, "done", status="done")
    tasks.add(admin.id, "deleted", deleted=True)

    result = tasks.snapshot(DAY)

    assert (result.created, result.existing, result.status) == (2, 0, "succeeded")
    logs = tasks.logs(DAY)
    assert [(log.task_id, log.status, log.priority, log.assignee_id) for log in logs] == [
        (todo, TaskStatus.TODO, TaskPriority.HIGH, user.id),
        (doing, TaskStatus.IN_PROGRESS, TaskPriority.LOW, None),
    ]


def test_a_second_run_for_the_same_date_writes_nothing(
    app: Flask, tasks: Tasks, admin: TestUser
) -> None:
    for i in range(3):
        tasks.add(admin.id, f"t{i}")
    first = tasks.snapshot(DAY)
    second = tasks.snapshot(DAY)
    assert (first.created, first.existing) == (3, 0)
    assert (second.created, second.existing) == (0, 3)
    assert len(tasks.logs(DAY)) == 3
    assert tasks.duplicate_logs() == 0


def test_changes_between_runs_are_logged_as_of_each_day(
    app: Flask, tasks: Tasks, admin: TestUser, user: TestUser, other_user: TestUser
) -> None:
    kept = tasks.add(admin.id, "kept", assignee_id=user.id)
    completed = tasks.add(admin.id, "completed")
    deleted = tasks.add(admin.id, "deleted")
    reassigned = tasks.add(admin.id, "reassigned", assignee_id=user.id)
    tasks.snapshot(DAY)

    tasks.update(completed, status=TaskStatus.DONE)
    tasks.delete(deleted)
    tasks.update(reassigned, assignee_id=other_user.id, priority=TaskPriority.HIGH)
    created = tasks.add(admin.id, "created later")
    result = tasks.snapshot(NEXT_DAY)

    assert (result.created, result.existing) == (3, 0)
    day2 = {log.task_id: log for log in tasks.logs(NEXT_DAY)}
    assert set(day2) == {kept, reassigned, created}
    assert (day2[reassigned].assignee_id, day2[reassigned].priority) == (
        other_user.id,
        TaskPriority.HIGH,
    )
    # The first day's logs are history: untouched by later changes.
    day1 = {log.task_id: log for log in tasks.logs(DAY)}
    assert set(day1) == {kept, completed, deleted, reassigned}
    assert day1[reassigned].assignee_id == user.id
    assert day1[completed].status == TaskStatus.TODO


def test_a_task_logged_earlier_today_counts_as_existing(
    app: Flask, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id, "a")
    tasks.snapshot(DAY)
    tasks.add(admin.id, "b")
    result = tasks.snapshot(DAY)
    assert (result.created, result.existing) == (1, 1)


def test_no_tasks_is_a_successful_empty_run(app: Flask, tasks: Tasks) -> None:
    result = tasks.snapshot(DAY)
    assert (result.created, result.existing, result.status) == (0, 0, "succeeded")


# -- the run record, the log line, metrics, readiness, the cache ------------------------------


def test_the_run_is_recorded_with_its_counts(app: Flask, tasks: Tasks, admin: TestUser) -> None:
    tasks.add(admin.id)
    run_id = str(uuid.uuid4())
    tasks.snapshot(DAY, run_id=run_id)
    run = run_row(app, run_id)
    assert run.status == JobStatus.SUCCEEDED.value
    assert (run.log_date, run.created, run.existing, run.trigger) == (DAY, 1, 0, "schedule")
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at


def test_the_same_run_id_again_is_a_no_op(app: Flask, tasks: Tasks, admin: TestUser) -> None:
    """A redelivered or retried job carries the same id: it reports the first outcome."""
    tasks.add(admin.id)
    run_id = str(uuid.uuid4())
    first = tasks.snapshot(DAY, run_id=run_id)
    again = tasks.snapshot(DAY, run_id=run_id)
    assert again == first
    assert (run_row(app, run_id).created, run_row(app, run_id).existing) == (1, 0)


def test_one_structured_log_line_per_run(
    app: Flask, tasks: Tasks, admin: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    tasks.add(admin.id)
    caplog.set_level(logging.INFO, logger="tasktracker.services.snapshot")
    result = tasks.snapshot(DAY)
    lines = [r for r in caplog.records if r.name == "tasktracker.services.snapshot"]
    assert [r.getMessage() for r in lines] == ["snapshot finished"]
    line: Any = lines[0]
    assert (line.run_id, line.log_date, line.logs_created, line.logs_existing) == (
        result.run_id,
        "2024-05-01",
        1,
        0,
    )
    assert line.duration_ms >= 0


def test_metrics_count_runs_and_rows_and_show_the_last_date(
    app: Flask, client: FlaskClient, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id)
    tasks.add(admin.id)
    runs = metric("tasktracker_job_runs_total", job="snapshot", outcome="succeeded")
    rows = metric("tasktracker_snapshot_logs_total")
    when = date(2999, 1, 2)  # later than any date another test uses: the gauge only rises
    tasks.snapshot(when)
    assert metric("tasktracker_job_runs_total", job="snapshot", outcome="succeeded") == runs + 1
    assert metric("tasktracker_snapshot_logs_total") == rows + 2
    assert (
        metric("tasktracker_last_snapshot_timestamp_seconds")
        == datetime(2999, 1, 2, tzinfo=UTC).timestamp()
    )
    assert "tasktracker_last_snapshot_timestamp_seconds" in client.get("/metrics").text


def test_readyz_shows_the_last_completed_snapshot_date(
    client: FlaskClient, tasks: Tasks, admin: TestUser
) -> None:
    assert client.get("/readyz").get_json()["last_snapshot_date"] is None
    tasks.add(admin.id)
    tasks.snapshot(DAY)
    tasks.snapshot(date(2024, 4, 1))  # a backfill does not move it backwards
    assert client.get("/readyz").get_json()["last_snapshot_date"] == "2024-05-01"


def test_a_run_that_writes_bumps_the_log_cache_version(
    app: Flask, tasks: Tasks, admin: TestUser
) -> None:
    cache = app.extensions["tasktracker"].cache
    tasks.add(admin.id)
    before = log_cache.current_version(cache)
    tasks.snapshot(DAY)
    after_write = log_cache.current_version(cache)
    assert after_write != before
    tasks.snapshot(DAY)  # wrote nothing: cached pages are still right
    assert log_cache.current_version(cache) == after_write


def test_a_database_error_marks_the_run_failed_and_a_retry_succeeds(
    app: Flask, tasks: Tasks, admin: TestUser
) -> None:
    tasks.add(admin.id)
    run_id = str(uuid.uuid4())
    db = app.extensions["tasktracker"]
    failed = metric("tasktracker_job_runs_total", job="snapshot", outcome="failed")
    with app.app_context(), db.uow() as uow:
        uow.session.execute(text("ALTER TABLE task_logs RENAME TO task_logs_away"))
        uow.commit()
    try:
        with pytest.raises(Exception, match="task_logs"):
            tasks.snapshot(DAY, run_id=run_id)
        run = run_row(app, run_id)
        assert run.status == JobStatus.FAILED.value
        assert "task_logs" in (run.error or "")
        assert metric("tasktracker_job_runs_total", job="snapshot", outcome="failed") == failed + 1
    finally:
        with app.app_context(), db.uow() as uow:
            uow.session.execute(text("ALTER TABLE task_logs_away RENAME TO task_logs"))
            uow.commit()
    # The job's retry carries the same id and finishes the run.
    result = tasks.snapshot(DAY, run_id=run_id)
    assert (result.status, result.created) == ("succeeded", 1)
    run = run_row(app, run_id)
    assert (run.status, run.error) == (JobStatus.SUCCEEDED.value, None)


# -- concurrency (PostgreSQL) -----------------------------------------------------------------


@pytest.mark.postgres_only
@pytest.mark.parametrize("same_run_id", [False, True], ids=["two-beats", "redelivered"])
def test_concurrent_runs_write_each_log_exactly_once(
    app: Flask, tasks: Tasks, admin: TestUser, same_run_id: bool
) -> None:
    tasks.bulk(admin.id, 20_000)
    run_ids = [str(uuid.uuid4())] * 2 if same_run_id else [str(uuid.uuid4()), str(uuid.uuid4())]
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = tasks.snapshot(DAY, run_id=run_ids[i])
        except Exception as exc:  # surfaced below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert all(isinstance(r, snapshot_service.SnapshotResult) for r in results), results
    assert len(tasks.logs(DAY)) == 20_000
    assert tasks.duplicate_logs() == 0
    if same_run_id:
        assert results[0] == results[1]
        assert (results[0].created, results[0].existing) == (20_000, 0)
    else:
        assert sorted(r.created for r in results) == [0, 20_000]
        assert all(r.created + r.existing == 20_000 for r in results)


# -- the date: today in TASKTRACKER_TIMEZONE, DST included ------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # New York, spring forward (2024-03-10, 02:00 EST -> 03:00 EDT).
        ("2024-03-10T05:05:00+00:00", date(2024, 3, 10)),  # 00:05 EST
        ("2024-03-10T07:30:00+00:00", date(2024, 3, 10)),  # 03:30 EDT
        ("2024-03-11T03:59:00+00:00", date(2024, 3, 10)),  # 23:59 EDT, already the 11th in UTC
        # New York, fall back (2024-11-03, 02:00 EDT -> 01:00 EST; 01:30 happens twice).
        ("2024-11-03T04:05:00+00:00", date(2024, 11, 3)),  # 00:05 EDT
        ("2024-11-03T05:30:00+00:00", date(2024, 11, 3)),  # 01:30 EDT
        ("2024-11-03T06:30:00+00:00", date(2024, 11, 3)),  # 01:30 EST
        ("2024-11-04T04:59:00+00:00", date(2024, 11, 3)),  # 23:59 EST
    ],
)
def test_the_snapshot_date_is_today_in_the_configured_zone(instant: str, expected: date) -> None:
    from zoneinfo import ZoneInfo

    with time_machine.travel(datetime.fromisoformat(instant), tick=False):
        assert snapshot_service.today(ZoneInfo("America/New_York")) == expected


def test_dst_switch_days_get_exactly_one_snapshot_each(
    app: Flask, tasks: Tasks, admin: TestUser, override_settings: Any
) -> None:
    """Beat may fire at any of these instants (twice in the repeated hour): one log per day."""
    override_settings(timezone="America/New_York")
    task_id = tasks.add(admin.id)
    instants = [
        "2024-03-09T05:05:00+00:00",  # Sat 00:05 EST
        "2024-03-10T05:05:00+00:00",  # Sun 00:05 EST, the spring-forward day (23 hours)
        "2024-03-10T07:05:00+00:00",  # Sun 03:05 EDT, a late second firing on the same day
        "2024-03-11T04:05:00+00:00",  # Mon 00:05 EDT
        "2024-11-03T04:05:00+00:00",  # Sun 00:05 EDT, the fall-back day (25 hours)
        "2024-11-03T05:30:00+00:00",  # 01:30 EDT
        "2024-11-03T06:30:00+00:00",  # 01:30 EST, the same wall time again
        "2024-11-04T05:05:00+00:00",  # Mon 00:05 EST
    ]
    for instant in instants:
        with time_machine.travel(datetime.fromisoformat(instant), tick=False):
            tasks.snapshot()
    logged = [log.log_date for log in tasks.logs() if log.task_id == task_id]
    assert logged == [
        date(2024, 3, 9),
        date(2024, 3, 10),
        date(2024, 3, 11),
        date(2024, 11, 3),
        date(2024, 11, 4),
    ]
    assert tasks.duplicate_logs() == 0


def test_the_beat_schedule_fires_once_per_local_day_across_dst(app: Flask) -> None:
    """Beat's crontab runs in TASKTRACKER_TIMEZONE at TASKTRACKER_SNAPSHOT_TIME."""
    from datetime import time as clock
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from tasktracker.config import Settings
    from tasktracker.jobs.celery_app import celery_config

    config = celery_config(
        Settings(timezone="America/New_York", snapshot_time=clock(0, 5), redis_url=None)
    )
    entry = config["beat_schedule"]["daily-snapshot"]
    assert entry["task"] == "tasktracker.snapshot_daily"
    assert config["timezone"] == "America/New_York"
    schedule = entry["schedule"]
    zone = ZoneInfo("America/New_York")
    # Walk from 2024-03-08 to 2024-03-12 and 2024-11-01 to 2024-11-05 in New York time.
    for start in (datetime(2024, 3, 8, 12, tzinfo=zone), datetime(2024, 11, 1, 12, tzinfo=zone)):
        fired: list[datetime] = []
        last = start
        while last < start + timedelta(days=4):
            nxt = last + schedule.remaining_delta(last, tz=zone)[1]
            nxt = nxt.astimezone(zone)
            fired.append(nxt)
            last = nxt + timedelta(minutes=1)
        days = [f.date() for f in fired if f < start + timedelta(days=4)]
        assert len(days) == len(set(days)) == 4
        assert all((f.hour, f.minute) == (0, 5) for f in fired)
