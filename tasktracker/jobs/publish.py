"""Queueing a job from a request: fast failure, the request id carried along, a clean 503."""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app
from kombu.exceptions import OperationalError as BrokerUnavailable

from ..errors import ServiceUnavailable
from ..observability import job_headers

# Publishing gives up quickly: an admin waiting for a 202 gets a 503 within a second rather
# than a request that hangs while the broker is down.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


def publish(task_name: str, args: list[Any], *, what: str, task_id: str | None = None) -> None:
    """Queue ``task_name`` (eager mode: run it now).

    Raises ServiceUnavailable (503) when the broker cannot take the message, so a caller is
    never told "accepted" about a job that will never run.
    """
    # This Flask app's Celery app, not Celery's process-wide default.
    task = current_app.extensions["celery"].tasks[task_name]
    try:
        task.apply_async(
            args=args,
            task_id=task_id,
            headers=job_headers(),
            retry_policy=PUBLISH_RETRY_POLICY,
            # The caller reads the job's state from the database; asking for a result would
            # touch the result backend first, and with Redis down fail as a RuntimeError.
            ignore_result=True,
        )
    except (BrokerUnavailable, redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            f"The job queue is unavailable, so the {what} was not started; try again later."
        ) from exc
