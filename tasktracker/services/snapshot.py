"""The daily snapshot: one set-based statement logs every active task for a date.

A run is recorded in ``snapshot_runs`` under its job id (queued -> running -> succeeded or
failed). The snapshot itself is idempotent: the unique (task_id, log_date) key and ``ON
CONFLICT DO NOTHING`` make a repeated, redelivered or concurrent run write nothing twice.
"""

from __future__ import annotations

import calendar
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from ..auth.policy import Actor, Permission, require
from ..cache import Cache
from ..errors import InvalidInput, NotFound, ServiceUnavailable
from ..models import JobStatus, SnapshotRun, utcnow
from ..observability import JOB_DURATION, JOB_RUNS, LAST_SNAPSHOT, SNAPSHOT_ROWS
from ..unit_of_work import UnitOfWork
from . import log_cache

log = logging.getLogger(__name__)

JOB = "snapshot"
TRIGGER_SCHEDULE = "schedule"
TRIGGER_MANUAL = "manual"
# The error text kept on a failed run is for operators; a database error can be long.
MAX_ERROR_CHARS = 2000

_last_snapshot_ts = 0.0


@dataclass(frozen=True)
class SnapshotResult:
    """What one run did: logs written now, and active tasks that were logged already."""

    run_id: str
    log_date: date
    status: str
    created: int
    existing: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (what the Celery task returns to the result backend)."""
        return {**asdict(self), "log_date": self.log_date.isoformat()}


def today(tz: tzinfo) -> date:
    """Today's date in the configured time zone: the date a snapshot taken now is for."""
    return datetime.now(tz).date()


def run_snapshot(
    uow: UnitOfWork,
    cache: Cache,
    *,
    run_id: str,
    tz: tzinfo,
    log_date: date | None = None,
    trigger: str = TRIGGER_SCHEDULE,
    requested_by_id: int | None = None,
) -> SnapshotResult:
    """Take the snapshot for ``log_date`` (default: today in ``tz``) as run ``run_id``.

    Safe to call again with the same run id (a retry or a redelivered message) and alongside
    other runs of the same date: every active task ends up with exactly one log for the date.
    """
    started = time.perf_counter()
    with uow:
        if trigger == TRIGGER_MANUAL:
            # Recorded when it was asked for; a message for a run that does not exist (say,
            # the database was restored from a backup) must not snapshot anything.
            found = uow.task_logs.get_run(run_id, for_update=True)
            if found is None:
                raise NotFound(f"Snapshot run {run_id} does not exist.")
            run = found
        else:
            run = uow.task_logs.ensure_run(run_id, log_date or today(tz), trigger, requested_by_id)
        if run.status == JobStatus.SUCCEEDED.value:
            return _result(run)  # done before (a redelivered job): nothing left to do
        run.status = JobStatus.RUNNING.value
        run.started_at = utcnow()
        run.error = None
        log_date = run.log_date  # a requested run's date was fixed when it was queued
        uow.commit()

    try:
        with uow:
            # Same-date runs queue up here, so their INSERTs never meet half-way.
            uow.task_logs.lock_snapshot_date(log_date)
            locked = uow.task_logs.get_run(run_id, for_update=True)
            if locked is None:
                raise NotFound(f"Snapshot run {run_id} does not exist.")
            run = locked
            if run.status == JobStatus.SUCCEEDED.value:
                return _result(run)  # a duplicate delivery of this run finished first
            created = uow.task_logs.snapshot(log_date, utcnow())
            # Counted in the same transaction, after the insert: active tasks that this run
            # did not log had a log for the date already.
            existing = max(uow.task_logs.count_active_tasks() - created, 0)
            run.status = JobStatus.SUCCEEDED.value
            run.created = created
            run.existing = existing
            run.finished_at = utcnow()
            uow.commit()
    except Exception as exc:
        _record_failure(uow, run_id, exc)
        JOB_RUNS.labels(JOB, "failed").inc()
        JOB_DURATION.labels(JOB).observe(time.perf_counter() - started)
        raise

    if created:
        log_cache.tasks_changed(cache)
    duration = time.perf_counter() - started
    JOB_RUNS.labels(JOB, "succeeded").inc()
    JOB_DURATION.labels(JOB).observe(duration)
    SNAPSHOT_ROWS.inc(created)
    _mark_last_snapshot(log_date)
    log.info(
        "snapshot finished",
        extra={
            "job": JOB,
            "run_id": run_id,
            "trigger": run.trigger,
            "log_date": log_date.isoformat(),
            # "created" is a LogRecord attribute (its time): these names cannot clash.
            "logs_created": created,
            "logs_existing": existing,
            "duration_ms": round(duration * 1000, 2),
        },
    )
    return _result(run)


def request_run(
    uow: UnitOfWork,
    actor: Actor,
    *,
    tz: tzinfo,
    enqueue: Callable[[str], None],
    log_date: date | None = None,
) -> SnapshotRun:
    """Queue a snapshot asked for by an admin (today in ``tz`` unless a past date is named).

    The run is recorded before it is queued, so its id can be polled at once. If the job
    cannot be queued, the run is marked failed and ServiceUnavailable is raised: never a
    202 for a job that will not run. In eager mode ``enqueue`` runs the job inline, so the
    returned run is already finished.
    """
    require(actor, Permission.RUN_SNAPSHOT)
    current = today(tz)
    if log_date is not None and log_date > current:
        raise InvalidInput(
            "A snapshot cannot be taken for a future date.",
            {"date": [f"Must not be after today ({current.isoformat()})."]},
        )
    run_id = str(uuid.uuid4())
    with uow:
        uow.task_logs.add_run(
            SnapshotRun(
                id=run_id,
                log_date=log_date or current,
                status=JobStatus.QUEUED.value,
                trigger=TRIGGER_MANUAL,
                requested_by_id=actor.id,
            )
        )
        uow.audit.record(
            actor_id=actor.id,
            action="run",
            entity="snapshot",
            entity_id=run_id,
            changes={"log_date": [None, (log_date or current).isoformat()]},
        )
        uow.commit()
    try:
        enqueue(run_id)
    except ServiceUnavailable as exc:
        _record_failure(uow, run_id, exc)
        raise
    return get_run(uow, actor, run_id)


def get_run(uow: UnitOfWork, actor: Actor, run_id: str) -> SnapshotRun:
    """One snapshot run by its job id (any reader)."""
    require(actor, Permission.READ)
    with uow:
        run = uow.task_logs.get_run(run_id)
        if run is None:
            raise NotFound(f"Snapshot run {run_id} does not exist.")
        return run


def _result(run: SnapshotRun) -> SnapshotResult:
    return SnapshotResult(run.id, run.log_date, run.status, run.created or 0, run.existing or 0)


def _record_failure(uow: UnitOfWork, run_id: str, exc: BaseException) -> None:
    """Mark the run failed (best effort: the database may be what failed). A retry of the
    job sets it running again."""
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    log.warning("snapshot failed", extra={"job": JOB, "run_id": run_id, "error": message})
    try:
        with uow:
            run = uow.task_logs.get_run(run_id, for_update=True)
            if run is not None and run.status != JobStatus.SUCCEEDED.value:
                run.status = JobStatus.FAILED.value
                run.error = message
                run.finished_at = utcnow()
                uow.commit()
    except Exception:
        log.exception("could not record the failed snapshot run", extra={"run_id": run_id})


def _mark_last_snapshot(log_date: date) -> None:
    """Publish the newest snapshot date (midnight UTC) so a missed day shows in /metrics."""
    global _last_snapshot_ts
    ts = float(calendar.timegm(log_date.timetuple()))
    if ts > _last_snapshot_ts:  # a backfill of an older date must not move it backwards
        _last_snapshot_ts = ts
        LAST_SNAPSHOT.set(ts)
