"""The Celery worker's Prometheus endpoint.

Jobs record their metrics (``observability.JOB_RUNS`` and the rest) in the process that runs
them: with the prefork pool, a child process nobody can scrape. With
TASKTRACKER_WORKER_METRICS_PORT set, the worker's main process serves ``/metrics`` on
TASKTRACKER_WORKER_METRICS_HOST:PORT, adding up every child in prometheus_client's
multiprocess mode (each process writes its values to files in PROMETHEUS_MULTIPROC_DIR).

prometheus_client chooses between in-memory and file-backed values when it is first imported,
which ``celery -A tasktracker.jobs.worker`` does before any code of ours runs: the variable must
be in the environment before the worker starts. ``tasktracker worker`` (cli.py) sets it to a
fresh temporary directory and then runs ``celery ... worker``; an operator who runs celery
directly sets it to an empty directory of the worker's own.

The server starts on ``worker_init``, which only a worker's main process sends: never the API,
beat or a ``celery inspect``. With the solo or threads pool the jobs run in the main process,
so without multiprocess mode its own registry is served.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from ..config import Settings

log = logging.getLogger(__name__)

MULTIPROC_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"
# Set by ``tasktracker worker`` to the temporary directory it made, so the worker removes it on
# exit (not a setting: an operator's own directory is never removed).
CREATED_DIR_VAR = "TASKTRACKER_WORKER_METRICS_CREATED_DIR"

_server: ThreadingWSGIServer | None = None

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, when this process really is in that mode."""
    path = os.environ.get(MULTIPROC_DIR_VAR)
    if not path:
        return None
    if values.ValueClass is values.MutexValue:
        # The variable appeared after prometheus_client was imported (e.g. from .env): this
        # process and its children keep their values in memory.
        return None
    return path


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def metrics_app(token: str | None) -> WSGIApp:
    """The exposition of all pool processes (or of this one), behind the metrics token."""
    directory = multiprocess_dir()
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    exposition = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token:
            given = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
                )
                return [b"A valid metrics token is required.\n"]
        return exposition(environ, start_response)

    return app


def start_metrics_server(host: str, port: int, app: WSGIApp) -> ThreadingWSGIServer:
    """Serve ``app`` on host:port from a daemon thread (IPv4 or IPv6 by the host given)."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(str(address[0]), port, app, Server, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, name="worker-metrics", kwargs={"poll_interval": 0.5}
    )
    thread.daemon = True
    thread.start()
    return server


def install_worker_metrics(settings: Settings) -> None:
    """Connect the worker signals (from ``jobs/worker.py``, the worker's entrypoint)."""

    def on_worker_init(sender: Any = None, **_: Any) -> None:
        _start(settings, sender)

    worker_init.connect(on_worker_init, weak=False, dispatch_uid="tasktracker-worker-metrics")
    worker_process_init.connect(
        _forget_server_in_child, weak=False, dispatch_uid="tasktracker-worker-metrics-child"
    )
    worker_process_shutdown.connect(
        _mark_child_dead, weak=False, dispatch_uid="tasktracker-worker-metrics-dead"
    )
    worker_shutdown.connect(
        _stop_server, weak=False, dispatch_uid="tasktracker-worker-metrics-stop"
    )


def _start(settings: Settings, worker: Any) -> None:
    global _server
    port = settings.worker_metrics_port
    if port is None or _server is not None:
        return
    directory = multiprocess_dir()
    if directory is None and _uses_child_processes(worker):
        log.warning(
            "worker metrics: %s is not set (before the worker started), so the metrics of the "
            "pool's child processes cannot be collected; start the worker with `tasktracker "
            "worker`, or set %s to an empty directory",
            MULTIPROC_DIR_VAR,
            MULTIPROC_DIR_VAR,
        )
    created = os.environ.get(CREATED_DIR_VAR)
    if created and created == directory:
        atexit.register(_remove_dir, created, os.getpid())
    app = metrics_app(settings.metrics_token)
    try:
        _server = start_metrics_server(settings.worker_metrics_host, port, app)
    except OSError as exc:
        # The jobs matter more than their metrics: the worker runs on without the endpoint.
        log.error(
            "worker metrics: cannot listen on %s:%d (%s); this worker serves no metrics",
            settings.worker_metrics_host,
            port,
            exc,
        )
        return
    log.info(
        "worker metrics on http://%s:%d/metrics (prometheus multiprocess dir: %s)",
        settings.worker_metrics_host,
        port,
        directory,
    )


def _uses_child_processes(worker: Any) -> bool:
    pool = getattr(worker, "pool_cls", None)
    if pool is None:
        pool = getattr(getattr(worker, "app", None), "conf", {}).get("worker_pool", "prefork")
    name = pool if isinstance(pool, str) else f"{pool.__module__}.{pool.__qualname__}"
    return "prefork" in name or "processes" in name


def _forget_server_in_child(**_: Any) -> None:
    """A forked pool process holds a copy of the listening socket: close it there, so the port
    is free as soon as the main process is gone."""
    global _server
    if _server is not None:
        _server.socket.close()
        _server = None


def _mark_child_dead(pid: int | None = None, **_: Any) -> None:
    """A pool process is exiting: its live gauges leave the totals (its counters stay)."""
    directory = multiprocess_dir()
    if directory and pid:
        multiprocess.mark_process_dead(pid, directory)


def _stop_server(**_: Any) -> None:
    global _server
    if _server is not None:
        _server.shutdown()
        _server.server_close()
        _server = None


def _remove_dir(path: str, owner_pid: int) -> None:
    # Not in a pool process (they inherit atexit handlers), and not when the worker restarts
    # itself (SIGHUP re-executes it from an earlier atexit handler, so this one never runs).
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)
