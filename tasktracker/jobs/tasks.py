"""Celery tasks: entrypoints as thin as views. Each one calls a service and nothing else.

Importing this module registers every task with the Celery app.
"""

from __future__ import annotations

from . import import_jobs, snapshot_jobs

__all__ = ["import_jobs", "snapshot_jobs"]
