"""The daily snapshot jobs: beat's scheduled run and the run an admin asks for.

Both only call the snapshot service. Database errors (a restarted server, a lost connection,
a deadlock or serialization failure) are retried with exponential backoff and jitter; the
longest delay stays far below the broker's visibility timeout, so a waiting retry is never
redelivered as a duplicate. ``acks_late``: a worker killed mid-run leaves the message to be
redelivered, and the snapshot's idempotence makes the second delivery safe.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from celery import Task, shared_task
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..api.deps import container
from ..services import snapshot as snapshot_service
from .publish import publish

DAILY = "tasktracker.snapshot_daily"
REQUESTED = "tasktracker.snapshot_run"

MAX_RETRIES = 5
RETRY_BACKOFF_SECONDS = 10  # 10, 20, 40, 80, 160 s (before jitter)
RETRY_BACKOFF_MAX_SECONDS = 600  # far below config.DEFAULT_CELERY_VISIBILITY_TIMEOUT

RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": (DBAPIError, PoolTimeout),
    # Broken data or a violated constraint fails the same way every time: no retry.
    "dont_autoretry_for": (IntegrityError, DataError),
    "retry_backoff": RETRY_BACKOFF_SECONDS,
    "retry_backoff_max": RETRY_BACKOFF_MAX_SECONDS,
    "retry_jitter": True,
    "max_retries": MAX_RETRIES,
    "acks_late": True,
    # Keep the run's counts in the result backend too (operators and tests read them from
    # the AsyncResult); the database's snapshot_runs row stays the record.
    "ignore_result": False,
    "reject_on_worker_lost": True,
}


@shared_task(name=DAILY, bind=True, **RETRY_OPTIONS)
def snapshot_daily(self: Task[Any, Any], log_date: str | None = None) -> dict[str, Any]:
    """Beat's daily snapshot: today in TASKTRACKER_TIMEZONE, or the ISO date given."""
    c = container()
    return snapshot_service.run_snapshot(
        c.uow(),
        c.cache,
        # The job id is the run id, so a retry or a redelivery continues the same run.
        run_id=self.request.id or str(uuid.uuid4()),
        tz=c.settings.tz,
        log_date=date.fromisoformat(log_date) if log_date else None,
        trigger=snapshot_service.TRIGGER_SCHEDULE,
    ).as_dict()


@shared_task(name=REQUESTED, bind=True, **RETRY_OPTIONS)
def snapshot_run(self: Task[Any, Any], run_id: str) -> dict[str, Any]:
    """A snapshot an admin asked for; the run (and its date) was recorded when it was asked."""
    c = container()
    return snapshot_service.run_snapshot(
        c.uow(),
        c.cache,
        run_id=run_id,
        tz=c.settings.tz,
        trigger=snapshot_service.TRIGGER_MANUAL,
    ).as_dict()


def enqueue_requested_run(run_id: str) -> None:
    """Queue a requested run under its run id (eager mode: run it now); 503 when the broker
    is down."""
    publish(REQUESTED, [run_id], what="snapshot", task_id=run_id)
