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


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Redis transport options: the visibility timeout and where unacknowledged messages wait.

    A message a worker has taken but not acknowledged (``acks_late``) is kept in an "unacked"
    hash; any worker puts it back on its queue once it is older than the visibility timeout
    (the worker that took it was killed). Kombu's default keys are shared by everything on the
    Redis database, so an installation (or a test run) with a short timeout would redeliver
    another one's running jobs: the keys carry TASKTRACKER_REDIS_PREFIX.
    """
    timeout = settings.celery_visibility_timeout
    # How often a worker looks for such messages: every ``interval`` seconds, scanning on
    # every ``throttle``-th look. Kombu's defaults (10 x 10 s) for the default timeout; a
    # short timeout is checked often enough to keep its promise.
    sweep = max(1, min(100, timeout // 4))
    interval = min(10, sweep)
    prefix = settings.redis_prefix
    return {
        "visibility_timeout": timeout,
        "unacked_key": f"{prefix}unacked",
        "unacked_index_key": f"{prefix}unacked_index",
        "unacked_mutex_key": f"{prefix}unacked_mutex",
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": max(1, sweep // interval),
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    snapshot = settings.snapshot_time
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
        "broker_transport_options": broker_transport_options(settings),
        "result_backend_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout
        },
        "broker_connection_retry_on_startup": True,
        "timezone": settings.timezone,
        "enable_utc": True,
        "beat_schedule": {
            "daily-snapshot": {
                "task": "tasktracker.snapshot_daily",
                "schedule": crontab(hour=snapshot.hour, minute=snapshot.minute),
                "options": {"expires": 12 * 3600},
            },
            "import-sweep": {
                "task": "tasktracker.import_sweep",
                "schedule": crontab(minute=35),
                "options": {"expires": 3600},
            },
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
