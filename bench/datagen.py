"""Bench data: users, tasks and task logs at 10k / 100k / 1M rows, and CSV files of the seed.

Rows are made by PostgreSQL itself (``generate_series``), into the schema the product's own
migrations create: a million tasks load in well under a minute. The secondary indexes are
dropped for the load and rebuilt from their own definitions after it (the usual bulk-load
order: one sorted build instead of a million scattered inserts), then the tables are
vacuumed and analysed so the planner and index-only scans see what production would.

    python -m bench.datagen db --size 100k            # create + fill tasktracker_bench_100k
    python -m bench.datagen csv --size 1m --out tasks-1m.csv
    python -m bench.datagen drop --size 100k

Every task is active (not done, not deleted), so "N tasks" is also "N active tasks" for the
snapshot. Logs: one per task and day for the newest fifth of the tasks on five past dates,
N logs in all. The CSV files name the same users (``user_<i>``) that ``db`` creates.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from .common import (
    SIZES,
    admin_connection,
    bench_db_name,
    create_database,
    database_url,
    drop_database,
    migrate,
)

# The bench's logins. Every user has this password (one argon2id hash, made once).
PASSWORD = "bench-password-1"
ADMIN = "bench_admin"
USER = "bench_user"
VIEWER = "bench_viewer"
FIXED_USERS = ((ADMIN, "admin"), (USER, "user"), (VIEWER, "viewer"))
# Task-log dates (the cached page asks for the last one); snapshots go to later dates.
LOG_DAYS = 5
FIRST_LOG_DATE = date(2026, 1, 1)
LAST_LOG_DATE = date(2026, 1, LOG_DAYS)
# 50 words; each task's name carries one, its description four. A search for one word
# matches about one task in twelve; SEARCH_TERM is the word the HTTP bench searches for.
WORDS = (  # noqa: SIM905 - fifty words read better as prose than as fifty strings
    "invoice report backup deploy review budget client server design audit "
    "release migrate schema cache login export import network printer laptop "
    "meeting roadmap hiring payroll contract vendor license security patch upgrade "
    "monitor alert dashboard metric ticket refund order shipment stock warehouse "
    "campaign newsletter website mobile android iphone tablet battery screen keyboard"
).split()
SEARCH_TERM = "payroll"


def user_count(rows: int) -> int:
    """Users that own and are assigned the tasks: one per hundred tasks, at least 20."""
    return max(20, rows // 100)


def _password_hash() -> str:
    from tasktracker.auth.passwords import hash_password

    return hash_password(PASSWORD)


# -- the database ----------------------------------------------------------------------------
USERS_SQL = """
INSERT INTO users (id, username, email, password_hash, role, is_active, created_at, updated_at)
SELECT g,
       CASE g WHEN 1 THEN %(admin)s WHEN 2 THEN %(user)s WHEN 3 THEN %(viewer)s
              ELSE 'user_' || g END,
       CASE g WHEN 1 THEN %(admin)s WHEN 2 THEN %(user)s WHEN 3 THEN %(viewer)s
              ELSE 'user_' || g END || '@bench.example.com',
       %(hash)s,
       CASE g WHEN 1 THEN 'admin' WHEN 3 THEN 'viewer' ELSE 'user' END,
       true, now(), now()
FROM generate_series(1, %(users)s) AS g
"""

# Status: 60% todo (0), 40% in_progress (1), never done: every task is active. Priority
# evenly low/medium/high. One task in ten unassigned. Ten seconds between creations, so the
# default order (-created_at, id) is the reverse of the ids.
TASKS_SQL = """
INSERT INTO tasks (id, task_name, description, status, priority, due_date, assignee_id,
                   created_by_id, created_at, updated_at, deleted_at, version)
SELECT g,
       'Task ' || g || ' ' || w[1 + g %% 50],
       initcap(w[1 + (g * 7) %% 50]) || ' the ' || w[1 + (g * 13) %% 50] || ' before the '
         || w[1 + (g * 17) %% 50] || ' ' || w[1 + (g * 29) %% 50] || ' review',
       CASE WHEN g %% 5 < 3 THEN 0 ELSE 1 END,
       g %% 3,
       date '2026-01-01' + (g %% 120),
       CASE WHEN g %% 10 = 0 THEN NULL ELSE 1 + g %% %(users)s END,
       1 + (g * 7) %% %(users)s,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '10 seconds',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '10 seconds',
       NULL,
       1
FROM generate_series(1, %(rows)s) AS g, (SELECT %(words)s::text[] AS w) AS vocabulary
"""

LOGS_SQL = """
INSERT INTO task_logs (task_id, log_date, status, priority, assignee_id, created_at)
SELECT t.id, d.day, t.status, t.priority, t.assignee_id, d.day + time '00:05'
FROM tasks AS t
CROSS JOIN (SELECT %(first)s::date + i AS day FROM generate_series(0, %(days)s - 1) AS i) AS d
WHERE t.id > %(rows)s - %(per_day)s
ORDER BY d.day, t.id
"""

SECONDARY_INDEXES_SQL = """
SELECT i.indexname, i.indexdef
FROM pg_indexes AS i
WHERE i.schemaname = 'public'
  AND i.tablename IN ('users', 'tasks', 'task_logs')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)
"""


def populate(db_name: str, rows: int) -> dict[str, Any]:
    """Fill a migrated, empty database with ``rows`` tasks, ``rows`` logs and their users."""
    users = user_count(rows)
    per_day = rows // LOG_DAYS
    started = time.perf_counter()
    with psycopg.connect(database_url(db_name)) as conn:
        # The rows are consistent by construction: skip the per-row foreign-key triggers.
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(SECONDARY_INDEXES_SQL).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            USERS_SQL,
            {
                "admin": ADMIN,
                "user": USER,
                "viewer": VIEWER,
                "hash": _password_hash(),
                "users": users,
            },
        )
        conn.execute(TASKS_SQL, {"rows": rows, "users": users, "words": list(WORDS)})
        conn.execute(
            LOGS_SQL, {"first": FIRST_LOG_DATE, "days": LOG_DAYS, "rows": rows, "per_day": per_day}
        )
        for table in ("users", "tasks", "task_logs"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        for _, definition in indexes:
            conn.execute(definition)
        conn.commit()
    with psycopg.connect(database_url(db_name), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) users, tasks, task_logs")
    seconds = round(time.perf_counter() - started, 2)
    print(
        f"[datagen] {db_name}: {rows:,} tasks, {per_day * LOG_DAYS:,} logs, {users:,} users "
        f"in {seconds}s"
    )
    return {"rows": rows, "logs": per_day * LOG_DAYS, "users": users, "seconds": seconds}


def create_bench_database(size: str, suffix: str = "") -> str:
    """Create, migrate and fill the bench database of one size; returns its name."""
    name = bench_db_name(size, suffix)
    create_database(name)
    try:
        migrate(name)
        populate(name, SIZES[size])
    except BaseException:
        drop_database(name)
        raise
    return name


@contextmanager
def bench_database(size: str, suffix: str = "") -> Iterator[str]:
    """A filled bench database for the block, dropped when it ends (whatever happened)."""
    name = create_bench_database(size, suffix)
    try:
        yield name
    finally:
        drop_database(name)


# -- CSV files in the seed's format ----------------------------------------------------------
# The seed's columns. Status mixes the seed's booleans and names, dates mix the two accepted
# formats, descriptions carry commas and quotes (quoted fields): what real files contain.
CSV_SQL = """
COPY (
  SELECT 'Imported ' || g || ' ' || w[1 + g %% 50] AS task_name,
         'Check the ' || w[1 + (g * 7) %% 50] || ', then "' || w[1 + (g * 13) %% 50]
           || '" before the ' || w[1 + (g * 17) %% 50] || ' review' AS description,
         CASE g %% 4 WHEN 0 THEN 'false' WHEN 1 THEN 'in_progress' ELSE 'true' END AS status,
         (ARRAY['low', 'medium', 'high'])[1 + g %% 3] AS priority,
         CASE WHEN g %% 7 = 0
              THEN to_char(date '2025-06-01' + (g %% 200), 'FMMM/FMDD/YYYY')
              ELSE to_char(date '2025-06-01' + (g %% 200), 'YYYY-MM-DD') END AS created_at,
         CASE WHEN g %% 10 = 0 THEN NULL ELSE 'user_' || (4 + g %% (%(users)s - 3)) END
           AS assigned_user,
         CASE WHEN g %% 3 = 0 THEN NULL
              ELSE to_char(date '2026-03-01' + (g %% 90), 'YYYY-MM-DD') END AS due_date
  FROM generate_series(1, %(rows)s) AS g, (SELECT %(words)s::text[] AS w) AS vocabulary
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def write_csv(path: Path, rows: int, users: int | None = None) -> Path:
    """A seed-format CSV of ``rows`` tasks naming users ``user_4 .. user_<users>``
    (default: the users ``populate`` makes for the same row count)."""
    users = users or user_count(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with admin_connection() as conn, path.open("wb") as out:
        cursor = conn.cursor()
        with cursor.copy(CSV_SQL, {"rows": rows, "users": users, "words": list(WORDS)}) as copy:
            for chunk in copy:
                out.write(chunk)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="create, migrate and fill a bench database")
    db.add_argument("--size", choices=SIZES, required=True)
    csv = sub.add_parser("csv", help="write a CSV file of the seed's format")
    csv.add_argument("--size", choices=SIZES, required=True)
    csv.add_argument("--out", type=Path, required=True)
    drop = sub.add_parser("drop", help="drop a bench database")
    drop.add_argument("--size", choices=SIZES, required=True)
    args = parser.parse_args()
    if args.command == "db":
        print(create_bench_database(args.size))
    elif args.command == "csv":
        print(write_csv(args.out, SIZES[args.size]))
    else:
        drop_database(bench_db_name(args.size))


if __name__ == "__main__":
    main()
