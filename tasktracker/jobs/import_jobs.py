"""The CSV import job: imports one stored upload (services.imports.run_import does the work).

``acks_late``: a worker killed mid-import leaves the message to be redelivered. The import
runs in one transaction, which died with the worker's connection, so the redelivered job
starts over from the stored file; a job that already finished is left as it is. No automatic
retries: a file that failed once fails the same way again.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task, shared_task

from ..api.deps import container
from ..errors import DomainError
from ..observability import JOB_DURATION, JOB_RUNS
from ..services import imports as import_service
from .publish import publish

IMPORT_CSV = "tasktracker.import_csv"
SWEEP = "tasktracker.import_sweep"
JOB = "import_csv"


# ignore_result: the outcome lives on the import job; no result-store round trip is needed
# (and none can fail the publishing of the job).
@shared_task(
    name=IMPORT_CSV, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def import_csv(self: Task[Any, Any], job_id: int, force: bool = False) -> dict[str, Any]:
    """Import the stored file of import ``job_id``."""
    c = container()
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
    """Queue the import job (eager mode: run it now); 503 when the broker is down."""
    publish(IMPORT_CSV, [job_id, force], what="import")


@shared_task(name=SWEEP, ignore_result=True)
def import_sweep() -> dict[str, int]:
    """Beat's hourly clean-up: fail abandoned imports, delete upload files nothing uses."""
    c = container()
    swept = import_service.sweep_abandoned(c.uow(), c.settings)
    return {"failed_jobs": swept.failed_jobs, "deleted_files": swept.deleted_files}
