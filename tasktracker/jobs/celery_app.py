"""The Celery app, configured from Settings and bound to the Flask app context.

Embedded mode runs every task inline (``task_always_eager``); with REDIS_URL set, Redis is the
broker and the result backend.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask

from ..config import Settings
from ..context import request_id_var

# Longer than the longest retry delay and the longest job, so a slow job is not redelivered
# while still running; set alike for broker and result backend.
VISIBILITY_TIMEOUT = 6 * 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    snapshot = settings.snapshot_time
    transport = {"visibility_timeout": VISIBILITY_TIMEOUT}
    return {
        "broker_url": settings.redis_url or "memory://",
        "result_backend": settings.redis_url,
        "task_always_eager": settings.celery_eager,
        "task_eager_propagates": True,
        "task_store_eager_result": False,
        # Job state lives in the database (snapshot_runs, import_jobs), so no task needs its
        # result stored; ignoring results also keeps a publish from touching the result
        # backend, which with Redis down failed with a RuntimeError instead of a clean 503.
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.celery_queue,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 7 * 24 * 3600,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "timezone": settings.timezone,
        "enable_utc": True,
        "beat_schedule": {
            "daily-snapshot": {
                "task": "tasktracker.snapshot_daily",
                "schedule": crontab(hour=snapshot.hour, minute=snapshot.minute),
                "options": {"expires": 12 * 3600},
            }
        },
    }


def init_celery(app: Flask) -> Celery[Any]:
    """Create the Celery app whose tasks run inside this Flask app's context."""
    settings: Settings = app.config["TASKTRACKER_SETTINGS"]

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            request_id = (self.request.headers or {}).get("request_id") if self.request else None
            token = request_id_var.set(request_id or self.request.id)
            try:
                with app.app_context():
                    return self.run(*args, **kwargs)
            finally:
                request_id_var.reset(token)

    celery_app: Celery[Any] = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    from . import tasks  # noqa: F401  (registers the shared tasks)

    return celery_app
