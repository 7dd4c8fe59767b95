"""Request ids, structured JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from celery.signals import before_task_publish
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .context import request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Defence in depth for the logs: no code here logs a secret on purpose, but a library, an
# exception text or a careless ``extra`` might. Values under these keys, Bearer credentials
# and anything shaped like a JWT are replaced before a line is written.
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"passw(or)?d|secret|token|authorization|cookie|api[_-]?key", re.I)
_SECRET_TEXT = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"  # an Authorization header's credentials
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT (header starts {")
)

HTTP_REQUESTS = Counter(
    "tasktracker_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tasktracker_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_RUNS = Counter("tasktracker_job_runs_total", "Background job runs", ["job", "outcome"])
JOB_DURATION = Histogram("tasktracker_job_duration_seconds", "Background job duration", ["job"])
IMPORT_ROWS = Counter("tasktracker_import_rows_total", "CSV rows imported or refused", ["outcome"])
SNAPSHOT_ROWS = Counter("tasktracker_snapshot_logs_total", "Task logs written by snapshots")
LAST_SNAPSHOT = Gauge(
    "tasktracker_last_snapshot_timestamp_seconds",
    "Unix time of the log date (midnight UTC) of the last completed snapshot",
    multiprocess_mode="max",
)


def current_request_id() -> str | None:
    """The request id of the running request or job (None outside both)."""
    return request_id_var.get()


def job_headers() -> dict[str, str]:
    """Celery message headers that carry this request's id into the job it enqueues.

    Pass them as ``task.apply_async(..., headers=job_headers())``; the worker's task base class
    puts the id back into the logging context, so the job's log lines and audit events share
    the request's id. Messages published without them still get the id (the
    ``before_task_publish`` hook of ``init_request_tracking``), but only passing them covers
    the eager (embedded) mode, where nothing is published.
    """
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}


def _add_request_id_header(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault("request_id", request_id)


def redact(text: str) -> str:
    """``text`` with Bearer credentials and JWT-shaped strings replaced."""
    return _SECRET_TEXT.sub(REDACTED, text)


def _scrub(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(str(k), v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extras.

    Secrets never reach the output: extras under secret-sounding keys are dropped to
    ``[redacted]`` and tokens in the message or traceback text are masked.
    """

    RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self.RESERVED and not key.startswith("_") and key != "request_id":
                payload[key] = _scrub(key, value)
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


def configure_logging(level: str) -> None:
    """Route the root logger to stderr as JSON lines (idempotent)."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.handlers = [handler]
    root.setLevel(level)
    # SQLAlchemy logs statements at INFO and result rows (password hashes, token ids) at
    # DEBUG: never let a debug log level turn them on.
    logging.getLogger("sqlalchemy").setLevel(max(root.level, logging.WARNING))


access_log = logging.getLogger("tasktracker.access")


def init_request_tracking(app: Flask) -> None:
    """Take or make a request id, echo it, time the request, count it, log one access line.

    The access line holds no header, query string or body: only what is needed to follow a
    request (method, route, path, status, duration, request id, user id, client address).
    """
    # Every job published while handling a request carries the request's id.
    before_task_publish.connect(_add_request_id_header, dispatch_uid="tasktracker-request-id")

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_id_token = request_id_var.set(g.request_id)
        g.request_started = time.perf_counter()

    @app.teardown_request
    def _forget(_: BaseException | None) -> None:
        # Worker threads are reused: a line logged later outside any request must not carry
        # this request's id.
        token = g.pop("request_id_token", None)
        if token is None:
            return
        try:
            request_id_var.reset(token)
        except ValueError:  # torn down in another context (e.g. a streamed response)
            request_id_var.set(None)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        access_log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "user_id": g.get("user_id"),
                "client": request.remote_addr,
            },
        )
        return response


def metrics_response() -> Response:
    """Prometheus exposition; aggregates all gunicorn workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, content_type=CONTENT_TYPE_LATEST)  # it names its charset itself
