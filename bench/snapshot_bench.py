"""The daily snapshot beside one bare ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.

For each bench size (every task active): the product's snapshot service
(``tasktracker.services.snapshot.run_snapshot``: run bookkeeping, the date lock, the
set-based insert, the count, the cache bump) logs every task for a fresh date; the limit is
the one statement that does the same into a copy of the log table (same columns, defaults,
indexes, unique key and foreign keys, same rows to start with). Both start from a checkpoint,
alternate which goes first, and repeat ``--reps`` times; the median is kept.

    python -m bench.snapshot_bench --sizes 10k,100k --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from . import datagen
from .common import (
    clear_redis,
    database_url,
    load_average,
    parse_sizes,
    product_app,
    ratio,
    save_result,
    warn_if_noisy,
)

FIGURE = "snapshot"
TARGET = 1.5  # SPEC section 10: within 1.5x of the bare INSERT ... SELECT
COPY_TABLE = "bench_task_logs_copy"
# Dates no generated log uses: each repetition snapshots a new one.
FIRST_DATE = date(2030, 1, 1)

MAKE_COPY = f"""
DROP TABLE IF EXISTS {COPY_TABLE};
CREATE TABLE {COPY_TABLE} (LIKE task_logs INCLUDING ALL);
ALTER TABLE {COPY_TABLE}
  ADD FOREIGN KEY (task_id) REFERENCES tasks (id) ON DELETE CASCADE,
  ADD FOREIGN KEY (assignee_id) REFERENCES users (id) ON DELETE SET NULL;
INSERT INTO {COPY_TABLE} SELECT * FROM task_logs;
"""
# The same statement the product's repository builds (status 2 = done).
BARE_INSERT = f"""
INSERT INTO {COPY_TABLE} (task_id, log_date, status, priority, assignee_id, created_at)
SELECT tasks.id, %(day)s, tasks.status, tasks.priority, tasks.assignee_id, %(now)s
FROM tasks
WHERE tasks.deleted_at IS NULL AND tasks.status != 2
ON CONFLICT (task_id, log_date) DO NOTHING
"""


def _checkpoint(db_name: str) -> None:
    """Start each timed run with no dirty pages left by the previous one."""
    with psycopg.connect(database_url(db_name), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _bare(db_name: str, day: date) -> tuple[float, int]:
    with psycopg.connect(database_url(db_name)) as conn:
        started = time.perf_counter()
        cursor = conn.execute(BARE_INSERT, {"day": day, "now": datetime.now(UTC)})
        conn.commit()
        return time.perf_counter() - started, cursor.rowcount


def bench_size(size: str, db_name: str, *, reps: int) -> dict[str, Any]:
    load_before = warn_if_noisy(f"snapshot {size}")
    with psycopg.connect(database_url(db_name), autocommit=True) as conn:
        conn.execute(MAKE_COPY)
        conn.execute(f"VACUUM (ANALYZE) {COPY_TABLE}, task_logs")
        active = conn.execute(
            "SELECT count(*) FROM tasks WHERE deleted_at IS NULL AND status != 2"
        ).fetchone()[0]  # type: ignore[index]

    # The product in this process, configured exactly as its worker would be.
    from tasktracker.services.snapshot import run_snapshot

    stack = ExitStack()

    product: list[float] = []
    bare: list[float] = []
    try:
        app = stack.enter_context(product_app(db_name))
        container = app.extensions["tasktracker"]
        for rep in range(reps):
            day = FIRST_DATE + timedelta(days=rep)
            order = ("product", "bare") if rep % 2 == 0 else ("bare", "product")
            for side in order:
                _checkpoint(db_name)
                if side == "bare":
                    seconds, rows = _bare(db_name, day)
                    bare.append(seconds)
                else:
                    with app.app_context():
                        started = time.perf_counter()
                        result = run_snapshot(
                            container.uow(),
                            container.cache,
                            run_id=str(uuid.uuid4()),
                            tz=UTC,
                            log_date=day,
                        )
                        seconds = time.perf_counter() - started
                    rows = result.created
                    product.append(seconds)
                if rows != active:
                    raise RuntimeError(f"{side} logged {rows} tasks, expected {active}")
                print(f"[snapshot {size}] rep {rep + 1} {side:7} {seconds:8.3f} s ({rows:,} logs)")
    finally:
        stack.close()
        clear_redis()
        with psycopg.connect(database_url(db_name), autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
    product_s = statistics.median(product)
    bare_s = statistics.median(bare)
    share = ratio(product_s, bare_s)
    return {
        "active_tasks": active,
        "reps": reps,
        "product_s": round(product_s, 4),
        "bare_s": round(bare_s, 4),
        "product_runs": [round(x, 4) for x in product],
        "bare_runs": [round(x, 4) for x in bare],
        "ratio": share,
        "target": TARGET,
        "pass": share is not None and share <= TARGET,
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--db", help="an existing, filled bench database (one size only)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    started = time.monotonic()
    for size in parse_sizes(args.sizes):
        if args.db:
            results[size] = bench_size(size, args.db, reps=args.reps)
            continue
        with datagen.bench_database(size, "_snapshot") as db_name:
            results[size] = bench_size(size, db_name, reps=args.reps)
    save_result(FIGURE, {"sizes": results, "seconds": round(time.monotonic() - started, 1)})


if __name__ == "__main__":
    main()
