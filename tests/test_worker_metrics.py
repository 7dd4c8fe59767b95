"""The Celery worker's Prometheus endpoint (TASKTRACKER_WORKER_METRICS_PORT).

Real worker processes (prefork pool, two children) on this run's database and Redis, each on a
queue of its own (so the session's in-process worker never takes their jobs): jobs run in the
children, and the main process serves their sum on /metrics. The helpers here (``start_worker``,
``scrape``, ``request_snapshot``) are shared with test_worker_redelivery.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from tasktracker.auth.policy import Actor
from tasktracker.cli import worker_environment
from tasktracker.config import ConfigError, Settings
from tasktracker.jobs.metrics import CREATED_DIR_VAR, MULTIPROC_DIR_VAR
from tasktracker.jobs.snapshot_jobs import REQUESTED
from tasktracker.models import JobStatus, Role, SnapshotRun
from tasktracker.services import snapshot as snapshot_service

from .conftest import TEST_SECRET, TestUser
from .live_server import (
    REPO_ROOT,
    HttpResponse,
    clean_environment,
    free_port,
    http_request,
    wait_for,
)
from .task_log_factories import Tasks, tasks_fixture  # noqa: F401  (the tasks fixture)

STARTUP_TIMEOUT = 60.0
JOB_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_TASKTRACKER_SCRIPT = Path(sys.executable).with_name("tasktracker")


@dataclass
class WorkerProcess:
    """A worker started by :func:`start_worker`; its process group is ours to kill."""

    process: subprocess.Popen[bytes]
    hostname: str
    queue: str
    log_path: Path
    metrics_port: int | None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL of the main process and its pool children at once (a machine dying)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole group if anything lingers."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        self.kill()


def worker_command(launcher: str) -> list[str]:
    """``tasktracker worker`` (the console script, as README says) or plain ``celery``."""
    if launcher == "celery":
        return [sys.executable, "-m", "celery", "-A", "tasktracker.jobs.worker", "worker"]
    if _TASKTRACKER_SCRIPT.exists():
        return [str(_TASKTRACKER_SCRIPT), "worker"]
    return [sys.executable, "-m", "tasktracker.cli", "worker"]


def worker_env(settings: Settings, data_dir: Path, queue: str, extra: Mapping[str, str]) -> dict:
    env = clean_environment()
    env.update(
        TASKTRACKER_ENV="testing",
        TASKTRACKER_DATA_DIR=str(data_dir),
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        TASKTRACKER_REDIS_PREFIX=settings.redis_prefix,
        TASKTRACKER_CELERY_QUEUE=queue,
        JWT_SECRET_KEY=TEST_SECRET,
        TASKTRACKER_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def start_worker(
    app: Flask, settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes (prefork pool) on a queue of this test's; all are stopped
    (their process groups killed) at the end, whatever happens."""
    started: list[WorkerProcess] = []
    queue = f"{settings.celery_queue}-{uuid.uuid4().hex[:8]}"

    def start(
        *,
        launcher: str = "tasktracker",
        concurrency: int = 2,
        metrics: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        name = f"w{len(started) + 1}-{uuid.uuid4().hex[:8]}"
        hostname = f"{name}@localhost"
        port = free_port() if metrics else None
        extra = dict(env or {})
        if port is not None:
            extra["TASKTRACKER_WORKER_METRICS_PORT"] = str(port)
        data_dir = tmp_path / name
        data_dir.mkdir()
        command = [
            *worker_command(launcher),
            *("--pool", "prefork", "--concurrency", str(concurrency)),
            *("--loglevel", "INFO", "--hostname", hostname, "-Q", queue),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ]
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=worker_env(settings, data_dir, queue, extra),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(process, hostname, queue, log_path, port)
        started.append(worker)
        control = app.extensions["celery"].control
        wait_for(
            lambda: not worker.alive() or control.ping(destination=[hostname], timeout=0.5),
            timeout=STARTUP_TIMEOUT,
            what=f"worker {hostname} to answer a ping",
        )
        assert worker.alive(), worker.logs()[-4000:]
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def request_snapshot(
    app: Flask, admin: TestUser, queue: str, log_date: date | None = None
) -> SnapshotRun:
    """Ask for a snapshot as the API does (the run recorded, then queued), on ``queue``."""
    task = app.extensions["celery"].tasks[REQUESTED]

    def enqueue(run_id: str) -> None:
        task.apply_async(args=[run_id], task_id=run_id, queue=queue, ignore_result=True)

    with app.app_context():
        c = app.extensions["tasktracker"]
        return snapshot_service.request_run(
            c.uow(),
            Actor(admin.id, admin.username, Role.ADMIN),
            tz=c.settings.tz,
            enqueue=enqueue,
            log_date=log_date,
        )


def run_row(app: Flask, run_id: str) -> SnapshotRun | None:
    with app.app_context(), app.extensions["tasktracker"].uow() as uow:
        return uow.task_logs.get_run(run_id)


def wait_until_succeeded(app: Flask, run_id: str, worker: WorkerProcess) -> SnapshotRun:
    def succeeded() -> SnapshotRun | None:
        assert worker.alive(), worker.logs()[-4000:]
        run = run_row(app, run_id)
        return run if run is not None and run.status == JobStatus.SUCCEEDED.value else None

    run: SnapshotRun = wait_for(succeeded, JOB_TIMEOUT, f"snapshot run {run_id} to succeed")
    return run


def scrape(worker: WorkerProcess, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return http_request(worker.metrics_url, "GET", "/metrics", headers=headers, timeout=5)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition ``text`` (None when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return None


def multiproc_dir_of(worker: WorkerProcess) -> Path:
    """The directory the worker's metrics live in (it logs it when the endpoint starts)."""
    match = re.search(r"prometheus multiprocess dir: ([^)\s]+)\)", worker.logs())
    assert match, worker.logs()[-4000:]
    return Path(match.group(1))


# -- the endpoint of a real worker ---------------------------------------------------------

TOKEN = "worker-scrape-token-0123456789"


@pytest.mark.worker
@pytest.mark.postgres_only
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "launcher", ["tasktracker", "celery"], ids=["tasktracker-worker", "celery-with-multiproc-dir"]
)
def test_a_prefork_worker_serves_the_job_metrics_of_all_its_children(
    launcher: str,
    app: Flask,
    start_worker: Callable[..., WorkerProcess],
    tasks: Tasks,
    admin: TestUser,
    tmp_path: Path,
) -> None:
    env: dict[str, str] = {}
    headers: dict[str, str] = {}
    own_dir = tmp_path / "operator-metrics"
    if launcher == "celery":
        # Run directly, celery needs the directory set (and made) by the operator. And a
        # metrics token protects this endpoint as it does the API's.
        own_dir.mkdir()
        env = {MULTIPROC_DIR_VAR: str(own_dir), "TASKTRACKER_METRICS_TOKEN": TOKEN}
        headers = {"Authorization": f"Bearer {TOKEN}"}
    for name in ("a", "b", "c"):
        tasks.add(admin.id, name)
    worker = start_worker(launcher=launcher, concurrency=2, env=env)
    directory = multiproc_dir_of(worker)
    if launcher == "celery":
        assert directory == own_dir
        assert scrape(worker).status == 401
        assert scrape(worker, {"Authorization": "Bearer wrong"}).status == 401

    # Three runs queued at once, so both children may take one; the main process takes none.
    runs = [request_snapshot(app, admin, worker.queue) for _ in range(3)]
    finished = [wait_until_succeeded(app, run.id, worker) for run in runs]
    assert sum(run.created or 0 for run in finished) == 3

    response = scrape(worker, headers)
    assert response.status == 200, response.body[:500]
    assert (response.header("content-type") or "").startswith("text/plain")
    text = response.body.decode()
    job = {"job": snapshot_service.JOB}
    assert sample(text, "tasktracker_job_runs_total", **job, outcome="succeeded") == 3
    assert sample(text, "tasktracker_job_duration_seconds_count", **job) == 3
    assert (sample(text, "tasktracker_job_duration_seconds_sum", **job) or 0) > 0
    assert sample(text, "tasktracker_snapshot_logs_total") == 3
    midnight = datetime.combine(finished[0].log_date, datetime.min.time(), UTC).timestamp()
    assert sample(text, "tasktracker_last_snapshot_timestamp_seconds") == midnight
    # Recorded by the pool's children (not the main process, which serves them).
    writers = {int(path.stem.rsplit("_", 1)[1]) for path in directory.glob("counter_*.db")}
    assert writers - {worker.process.pid}, writers

    worker.stop()
    assert worker.process.returncode == 0, worker.logs()[-4000:]
    # The temporary directory `tasktracker worker` made is gone; an operator's stays.
    assert directory.exists() == (launcher == "celery")


def test_the_metrics_port_and_host_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)
    for name in ("TASKTRACKER_WORKER_METRICS_PORT", "TASKTRACKER_WORKER_METRICS_HOST"):
        monkeypatch.delenv(name, raising=False)
    default = Settings.from_env()
    assert (default.worker_metrics_port, default.worker_metrics_host) == (None, "127.0.0.1")

    monkeypatch.setenv("TASKTRACKER_WORKER_METRICS_PORT", "9808")
    monkeypatch.setenv("TASKTRACKER_WORKER_METRICS_HOST", "192.0.2.10")
    chosen = Settings.from_env()
    assert (chosen.worker_metrics_port, chosen.worker_metrics_host) == (9808, "192.0.2.10")

    for bad in ("0", "65536", "metrics"):
        monkeypatch.setenv("TASKTRACKER_WORKER_METRICS_PORT", bad)
        with pytest.raises(ConfigError, match="TASKTRACKER_WORKER_METRICS_PORT"):
            Settings.from_env()


def test_tasktracker_worker_prepares_the_multiprocess_directory(tmp_path: Path) -> None:
    settings = Settings(worker_metrics_port=9808)

    # No directory given: a fresh one, which the worker removes when it exits.
    env: dict[str, str] = {}
    worker_environment(settings, env)
    made = Path(env[MULTIPROC_DIR_VAR])
    try:
        assert made.is_dir()
        assert list(made.iterdir()) == []
        assert env[CREATED_DIR_VAR] == str(made)
    finally:
        made.rmdir()

    # The operator's directory: made if missing, stale files of an earlier run cleared.
    given = tmp_path / "metrics"
    env = {MULTIPROC_DIR_VAR: str(given)}
    worker_environment(settings, env)
    assert given.is_dir()
    (given / "counter_123.db").write_bytes(b"left over")
    (given / "keep.txt").write_text("not a metrics file")
    worker_environment(settings, env)
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    assert env == {MULTIPROC_DIR_VAR: str(given)}  # never marked for removal

    # No port, no directory: the worker runs as plain celery would.
    env = {}
    worker_environment(Settings(), env)
    assert env == {}
