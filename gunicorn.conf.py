"""Gunicorn settings: ``gunicorn -c gunicorn.conf.py tasktracker.wsgi:app``.

Read from the environment: HOST (default 127.0.0.1), PORT (5000), WEB_CONCURRENCY (workers,
default 2 x CPUs + 1, at most 12), GUNICORN_THREADS (4), TASKTRACKER_LOG_LEVEL (INFO) and
PROMETHEUS_MULTIPROC_DIR (default: a fresh temporary directory). Any other gunicorn option
can be set with GUNICORN_CMD_ARGS, e.g. ``GUNICORN_CMD_ARGS="--timeout 120"``.

This file must not import ``tasktracker``: the master would then hold the application's
modules, and workers forked after a reload (SIGHUP) would run the old code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
# Each worker holds its own database pool: more workers than this rarely helps a
# database-bound API and can exhaust PostgreSQL's max_connections. Raise it deliberately.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cpus() + 1, 12))
# Threads overlap the waits on PostgreSQL and Redis (gthread worker when threads > 1).
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
# A worker silent for this long is killed and replaced (gthread workers keep beating while a
# request runs, so this catches a stuck process, not a slow upload).
timeout = 60
# On SIGTERM, requests in flight get this long to finish before the workers are killed.
graceful_timeout = 30
keepalive = 5
# The app is loaded in each worker after the fork: no connection or file is shared by
# accident, and a reload (SIGHUP) picks up new code.
preload_app = False
# The worker heartbeat file lives in memory where possible: a slow or full disk (a
# container's overlay filesystem) must not make gunicorn think a worker hangs. (gunicorn
# creates the file there with mkstemp, so the shared directory is safe.)
_SHM = "/dev/shm"  # noqa: S108
if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK):
    worker_tmp_dir = _SHM
# The application writes one JSON access line per request (with request id and user id).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("TASKTRACKER_LOG_LEVEL", "info").lower()
# The control socket (gunicornc) defaults to one path per user: two servers on one host would
# fight over it. We manage the server with signals instead.
control_socket_disable = True


class JsonLogFormatter(logging.Formatter):
    """Gunicorn's own lines (boot, worker exits, timeouts) as JSON, like the application's."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def _handler(stream: str) -> dict[str, Any]:
    return {"class": "logging.StreamHandler", "formatter": "json", "stream": stream}


logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {
        "console": _handler("ext://sys.stdout"),
        "error_console": _handler("ext://sys.stderr"),
        # A logging config would switch gunicorn's access log back on: send it nowhere.
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["null"], "propagate": False},
    },
}

_created_metrics_dir: str | None = None


def on_starting(server: Any) -> None:
    """Prometheus multiprocess mode: every worker writes its metrics to files in one directory,
    and /metrics in any worker adds them all up.

    The directory must be empty when the server starts (old files would be added to the new
    counts); it is set here, in the master, before any worker imports prometheus_client.
    """
    global _created_metrics_dir
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        _created_metrics_dir = tempfile.mkdtemp(prefix="tasktracker-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_metrics_dir
    server.log.info("prometheus multiprocess dir: %s", os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _created_metrics_dir:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
