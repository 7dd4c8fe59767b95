"""The CSV import job: imports one stored upload (services.imports.run_import does the work).

``acks_late``: a worker killed mid-import leaves the message to be redelivered. The import
runs in one transaction, which died with the worker's connection, so the redelivered job
starts over from the stored file; a job that already finished is left as it is. No automatic
retries: a file that failed once fails the same way again.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Task, shared_task
from flask import current_app
from kombu.exceptions import OperationalError as BrokerUnavailable

from ..bootstrap import Container
from ..context import request_id_var
from ..errors import DomainError, ServiceUnavailable
from ..observability import JOB_DURATION, JOB_RUNS
from ..services import imports as import_service

IMPORT_CSV = "tasktracker.import_csv"
JOB = "import_csv"

# Publishing gives up quickly: the admin waiting for a 202 gets a 503 within a second rather
# than a hanging upload while the broker is down.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


def _container() -> Container:
    return current_app.extensions["tasktracker"]


# ignore_result: the outcome lives on the import job; no result-store round trip is needed
# (and none can fail the publishing of the job).
@shared_task(
    name=IMPORT_CSV, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def import_csv(self: Task[Any, Any], job_id: int, force: bool = False) -> dict[str, Any]:
    """Import the stored file of import ``job_id``."""
    c = _container()
    started = time.perf_counter()
    outcome = "failed"
    try:
        job = import_service.run_import(c.uow(), job_id, force, c.settings, c.cache)
        outcome = job.status
        return {"id": job.id, "status": job.status, "imported": job.imported}
    except DomainError as exc:
        # Recorded on the job (e.g. a duplicate found at run time); nothing to retry.
        return {"id": job_id, "status": "failed", "error": exc.message}
    finally:
        JOB_RUNS.labels(JOB, outcome).inc()
        JOB_DURATION.labels(JOB).observe(time.perf_counter() - started)


def enqueue_import(job_id: int, force: bool) -> None:
    """Queue the import job (eager mode: run it now). Raises ServiceUnavailable (503) when the
    broker cannot take the message."""
    # This Flask app's Celery app, not Celery's process-wide default.
    task = current_app.extensions["celery"].tasks[IMPORT_CSV]
    try:
        task.apply_async(
            args=[job_id, force],
            headers={"request_id": request_id_var.get()},
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except (BrokerUnavailable, redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            "The job queue is unavailable, so the import was not started; try again later."
        ) from exc
