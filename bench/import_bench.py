"""CSV import (SPEC 10): a seed-format file through ``POST /api/v1/imports`` beside
PostgreSQL's own ``COPY`` of the same file into a bare table with the same columns.

For each size: a bench database (migrated, users only), the file (``bench.datagen``), then

1. COPY: ``COPY bare FROM STDIN (FORMAT csv, HEADER)`` of the file, streamed by psycopg;
2. the product: gunicorn (``gunicorn.conf.py``) and one Celery worker on the bench database
   and Redis; the file is POSTed as multipart/form-data (202: it goes to the worker), then
   ``GET /api/v1/imports/{id}`` is polled until the import has finished;
3. the floor: the same rows, already in the bare table, put into ``tasks`` by one bare
   ``INSERT ... SELECT`` (what any import into that table pays: its indexes and foreign keys);
4. COPY again (the mean of the two brackets the import, as the machine's load drifts).

The import's time runs from the first byte sent to the poll that sees it finished. Its phases
(read + COPY to staging, set-based checks, the INSERT into tasks, commit) come from the
worker's "import finished" log line. Peak RSS is each process's VmHWM.

    python -m bench.import_bench                # 100k and 1m, about 5-8 minutes
    python -m bench.import_bench --sizes 1m
    python -m bench.import_bench --smoke        # 10k: the harness works (seconds)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from . import datagen
from .common import (
    REPO_ROOT,
    SIZES,
    app_env,
    bench_db_name,
    clear_redis,
    command_line,
    create_database,
    database_url,
    drop_database,
    gunicorn,
    load_average,
    log_dir,
    login,
    machine,
    migrate,
    parse_sizes,
    request,
    results_dir,
    save_result,
    warn_if_noisy,
)

FIGURE = "import"
TARGET = 3.0  # SPEC section 10: within 3x of PostgreSQL's own COPY of the same file
DEADLINE_SECONDS = 600  # the whole run, every size
WORKER_START_SECONDS = 60
DOC = REPO_ROOT / "docs" / "benchmarks.md"
HEADING = "## CSV import"
START, END = "<!-- bench:import:start -->", "<!-- bench:import:end -->"
BARE_TABLE = "bench_copy_bare"
COLUMNS = "task_name, description, status, priority, created_at, assigned_user, due_date"
CHUNK = 1 << 20

WORKER = """
import sys
from tasktracker.jobs.worker import celery_app

# Keep the product's JSON log lines (with their extras): the bench reads the phase timings.
celery_app.conf.worker_hijack_root_logger = False
celery_app.worker_main(["worker", "--pool=solo", "--concurrency=1", "-Q", sys.argv[1],
                        "--loglevel=INFO", "--without-gossip", "--without-mingle"])
"""


# -- setup ---------------------------------------------------------------------------------
def prepare_database(size: str) -> str:
    """A migrated database with the users the file names (no tasks: the import fills it)."""
    name = bench_db_name(size, "_import")
    create_database(name)
    migrate(name)
    with psycopg.connect(database_url(name)) as conn:
        conn.execute(
            datagen.USERS_SQL,
            {
                "admin": datagen.ADMIN,
                "user": datagen.USER,
                "viewer": datagen.VIEWER,
                "hash": datagen._password_hash(),
                "users": datagen.user_count(SIZES[size]),
            },
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"
        )
        conn.execute(f"CREATE TABLE {BARE_TABLE} ({COLUMNS.replace(',', ' text,')} text)")
        conn.commit()
    with psycopg.connect(database_url(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return name


def csv_file(size: str) -> Path:
    path = results_dir() / f"import-{size}.csv"
    if not path.exists():
        datagen.write_csv(path, SIZES[size])
    return path


# -- 1. PostgreSQL's COPY --------------------------------------------------------------------
def copy_seconds(db_name: str, path: Path) -> float:
    """COPY the file into the bare table (emptied first), as a client streams it."""
    with psycopg.connect(database_url(db_name)) as conn:
        conn.execute(f"TRUNCATE {BARE_TABLE}")
        conn.commit()
        conn.execute("CHECKPOINT")
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY {BARE_TABLE} FROM STDIN (FORMAT csv, HEADER)") as copy,
            path.open("rb") as source,
        ):
            while chunk := source.read(CHUNK):
                copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute(f"TRUNCATE {BARE_TABLE}")
        conn.commit()
    return round(seconds, 3)


# The same rows straight into the real tasks table by one statement (its primary key, eight
# secondary indexes including the full-text GIN index, two foreign keys): what any import
# into tasks costs at least, whatever reads and checks the file.
FLOOR_SQL = f"""
INSERT INTO tasks (task_name, description, status, priority, due_date, assignee_id,
                   created_by_id, created_at, updated_at, version)
SELECT b.task_name, b.description, 0, 1, b.due_date::date, u.id, 1, now(), now(), 1
FROM {BARE_TABLE} AS b LEFT JOIN users AS u ON u.username = b.assigned_user
"""


def insert_floor_seconds(db_name: str, path: Path) -> float:
    """COPY the file into the bare table, then time FLOOR_SQL into an emptied tasks table."""
    with psycopg.connect(database_url(db_name)) as conn:
        conn.execute(f"TRUNCATE {BARE_TABLE}")
        conn.execute("TRUNCATE tasks CASCADE")
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY {BARE_TABLE} FROM STDIN (FORMAT csv, HEADER)") as copy,
            path.open("rb") as source,
        ):
            while chunk := source.read(CHUNK):
                copy.write(chunk)
        conn.commit()
        conn.execute("CHECKPOINT")
        started = time.perf_counter()
        conn.execute(FLOOR_SQL)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute(f"TRUNCATE {BARE_TABLE}")
        conn.execute("TRUNCATE tasks CASCADE")
        conn.commit()
    return round(seconds, 3)


# -- 2. the product --------------------------------------------------------------------------
@contextmanager
def celery_worker(env: dict[str, str], queue: str, log_path: Path) -> Iterator[int]:
    """One Celery worker (solo pool) on the queue; yields its pid, killed when the block ends."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER, queue],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, log_path)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def _wait_until_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until the worker consumes: a running installation's workers are up before an upload,
    so their start-up is no part of the import's time."""
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited ({process.returncode}); see {log_path}")
        if " ready." in log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker was not ready in {WORKER_START_SECONDS} s; see {log_path}")


def upload(base_url: str, token: str, path: Path) -> tuple[int, dict[str, Any]]:
    """POST the file as multipart/form-data, streamed from disk (never read whole)."""
    boundary = "tasktracker-bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk
        yield tail

    port = int(base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_SECONDS)
    try:
        conn.request(
            "POST",
            "/api/v1/imports",
            body=body(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
            },
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MiB."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def phases(worker_log: Path, import_id: int) -> dict[str, float]:
    """The phase timings of the worker's "import finished" line for this import."""
    for line in worker_log.read_text(errors="replace").splitlines():
        with suppress(ValueError):
            record = json.loads(line)
            if record.get("message") == "import finished" and record.get("import_id") == import_id:
                return dict(record.get("seconds") or {})
    return {}


def import_queue() -> str:
    return f"ttbench-import-{os.getpid()}"


def product_import(db_name: str, path: Path, rows: int, deadline: float) -> dict[str, Any]:
    queue = import_queue()
    env = app_env(db_name, TASKTRACKER_CELERY_QUEUE=queue, TASKTRACKER_LOG_LEVEL="INFO")
    worker_log = log_dir() / f"import-worker-{db_name}.log"
    with (
        gunicorn("import-api", "tasktracker.wsgi:app", env, log_dir()) as api,
        celery_worker(env, queue, worker_log) as worker_pid,
    ):
        token = login(api.url, datagen.ADMIN, datagen.PASSWORD)
        started = time.perf_counter()
        status, report = upload(api.url, token, path)
        accepted = time.perf_counter() - started
        if status not in (201, 202):
            raise RuntimeError(f"upload answered {status}: {json.dumps(report)[:500]}")
        while report["status"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the import did not finish in time: {report}")
            time.sleep(0.25)
            code, body = request(
                api.url,
                "GET",
                f"/api/v1/imports/{report['id']}",
                headers={"Authorization": f"Bearer {token}"},
            )
            if code != 200:
                raise RuntimeError(f"GET import answered {code}: {body[:300]!r}")
            report = json.loads(body)
        seconds = time.perf_counter() - started
        api_rss = [peak_rss_mib(pid) for pid in api.pids()]
        worker_rss = peak_rss_mib(worker_pid)
    if report["status"] != "succeeded" or report["imported"] != rows:
        raise RuntimeError(f"the import did not import every row: {report}")
    with psycopg.connect(database_url(db_name)) as conn:
        row = conn.execute("SELECT count(*) FROM tasks").fetchone()
        if not row or row[0] != rows:
            raise RuntimeError(f"{row} tasks after importing {rows} rows")
    return {
        "seconds": round(seconds, 3),
        "accepted_s": round(accepted, 3),
        "status_code": status,
        "job_s": round(
            (
                datetime.fromisoformat(report["finished_at"])
                - datetime.fromisoformat(report["started_at"])
            ).total_seconds(),
            3,
        ),
        "phases_s": phases(worker_log, report["id"]),
        "api_peak_rss_mib": max((r for r in api_rss if r is not None), default=None),
        "worker_peak_rss_mib": worker_rss,
    }


# -- one size ------------------------------------------------------------------------------
def bench_size(size: str, deadline: float) -> dict[str, Any]:
    rows = SIZES[size]
    path = csv_file(size)
    db_name = prepare_database(size)
    try:
        load_before = warn_if_noisy(f"import {size}")
        copy_before = copy_seconds(db_name, path)
        product = product_import(db_name, path, rows, deadline)
        floor = insert_floor_seconds(db_name, path)
        copy_after = copy_seconds(db_name, path)
    finally:
        drop_database(db_name)
        clear_redis(import_queue())
    copy_s = round((copy_before + copy_after) / 2, 3)
    result = {
        "rows": rows,
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "copy_s": copy_s,
        "copy_runs_s": [copy_before, copy_after],
        "copy_rows_per_s": round(rows / copy_s),
        **{f"import_{key}": value for key, value in product.items()},
        "import_rows_per_s": round(rows / product["seconds"]),
        "insert_floor_s": floor,
        "ratio": round(product["seconds"] / copy_s, 2),
        "ratio_to_floor": round(product["seconds"] / floor, 2),
        "target": TARGET,
        "pass": product["seconds"] / copy_s <= TARGET,
        "load_before": load_before,
        "load_after": load_average(),
    }
    print(f"[import] {size}: {json.dumps(result)}")
    return result


# -- the document ----------------------------------------------------------------------------
def _section(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Run {result['finished_at']} on {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB "
        f"RAM, PostgreSQL {m['postgresql']}, Python {m['python']}, commit `{m['commit']}`.",
        f"Command: `{result['command']}`.",
        "",
        "| rows | file | COPY (bare table) | import over HTTP | ratio (target <= 3x) | "
        "INSERT into tasks alone | import / that | API peak RSS | worker peak RSS | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, r in result["sizes"].items():
        lines.append(
            f"| {r['rows']:,} ({size}) | {r['file_mib']} MiB | {r['copy_s']} s "
            f"({r['copy_rows_per_s']:,} rows/s) | {r['import_seconds']} s "
            f"({r['import_rows_per_s']:,} rows/s) | **{r['ratio']}x "
            f"{'PASS' if r['pass'] else 'FAIL'}** | {r['insert_floor_s']} s | "
            f"{r['ratio_to_floor']}x | {r['import_api_peak_rss_mib']} MiB | "
            f"{r['import_worker_peak_rss_mib']} MiB | {r['load_before']} -> {r['load_after']} |"
        )
    lines += [
        "",
        "Where the import's time goes (seconds; from the worker's log line):",
        "",
        "| rows | upload until 202 | read + COPY to staging | set-based checks | "
        "INSERT into tasks | commit | whole job |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"].values():
        p = r["import_phases_s"]
        lines.append(
            f"| {r['rows']:,} | {r['import_accepted_s']} | {p.get('stage', 'n/a')} | "
            f"{p.get('check', 'n/a')} | {p.get('insert', 'n/a')} | {p.get('commit', 'n/a')} | "
            f"{r['import_job_s']} |"
        )
    return "\n".join(lines)


def write_doc(result: dict[str, Any], doc: Path = DOC) -> None:
    """Put the figures between this section's markers; text around them is kept."""
    block = f"{START}\n{_section(result)}\n{END}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif (heading := re.search(rf"^{re.escape(HEADING)}\n", text, re.MULTILINE)) is not None:
        text = text[: heading.end()] + "\n" + block + "\n" + text[heading.end() :]
    else:
        text = text.rstrip() + f"\n\n{HEADING}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    print(f"[import] wrote {doc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1m")
    parser.add_argument("--smoke", action="store_true", help="10k only; no document update")
    parser.add_argument("--no-doc", action="store_true", help="do not update the document")
    args = parser.parse_args(argv)
    sizes = ["10k"] if args.smoke else parse_sizes(args.sizes)
    deadline = time.monotonic() + DEADLINE_SECONDS
    result: dict[str, Any] = {"sizes": {}}
    for size in sizes:
        result["sizes"][size] = bench_size(size, deadline)
    path = save_result(FIGURE, result)
    if not (args.smoke or args.no_doc):
        saved = json.loads(path.read_text())
        write_doc(saved)
    print(command_line(), machine()["commit"], datetime.now(UTC).isoformat(timespec="seconds"))


if __name__ == "__main__":
    main()
