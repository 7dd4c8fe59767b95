"""The limits the API is measured against: bare Flask endpoints under the same gunicorn.

    gunicorn -c gunicorn.conf.py bench.bare_app:app     (DATABASE_URL names a bench database)

- ``GET /bare/json``: a small JSON dict; nothing but Flask and gunicorn (the framework limit).
- ``GET /bare/tasks``: the statements ``GET /api/v1/tasks`` sends (the count and the page of
  21 rows, joined to both users, default order), with ``status``, ``priority`` and ``q`` as
  the product's filter and search, through psycopg, rows to JSON by hand (the data limit).
- ``GET /bare/tasks/<id>``: the statement ``GET /api/v1/tasks/{id}`` sends.
- ``POST /bare/tasks``: the two INSERTs ``POST /api/v1/tasks`` sends (task, audit event).

No authentication, validation, rate limit, logging or serialisation framework: whatever the
product spends beyond these is its own overhead. Each thread keeps one connection (the
product's pool does the same in effect), and psycopg prepares repeated statements, as it does
under SQLAlchemy.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from flask import Flask, Response, jsonify, request

STATUSES = ("todo", "in_progress", "done")
PRIORITIES = ("low", "medium", "high")
PER_PAGE = 20
# The creator of POSTed tasks (the product takes it from the token; bench_user is id 2).
CREATOR_ID = int(os.environ.get("BENCH_BARE_USER_ID", "2"))

SEARCH = (
    "to_tsvector('english'::regconfig, coalesce(tasks.task_name, '') || ' ' || "
    "coalesce(tasks.description, '')) @@ websearch_to_tsquery('english'::regconfig, %s)"
)
VIEW = (
    "SELECT tasks.id, tasks.task_name, tasks.description, tasks.status, tasks.priority, "
    "tasks.due_date, tasks.assignee_id, assignee.username, tasks.created_by_id, "
    "creator.username, tasks.created_at, tasks.updated_at, tasks.deleted_at, tasks.version "
    "FROM tasks LEFT OUTER JOIN users AS assignee ON assignee.id = tasks.assignee_id "
    "JOIN users AS creator ON creator.id = tasks.created_by_id "
)
INSERT_TASK = (
    "INSERT INTO tasks (task_name, description, status, priority, due_date, assignee_id, "
    "created_by_id, created_at, updated_at, deleted_at, version) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 1) RETURNING tasks.id"
)
INSERT_AUDIT = (
    "INSERT INTO audit_events (occurred_at, actor_id, action, entity, entity_id, changes, "
    "request_id) VALUES (%s, %s, 'create', 'task', %s, %s::jsonb, %s) RETURNING id"
)

app = Flask(__name__)
_local = threading.local()


def _connection() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["DATABASE_URL"].replace("+psycopg", ""))
        _local.conn = conn
    return conn


def close_connection() -> None:
    """Close this thread's connection (when the app is used in-process, e.g. by a test client)."""
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is not None:
        conn.close()
        _local.conn = None


def _query(sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
    conn = _connection()
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.rollback()  # a read: end the transaction, as the product's unit of work does
        return rows
    except BaseException:
        conn.close()
        raise


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _task(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": r[0],
        "task_name": r[1],
        "description": r[2],
        "status": STATUSES[r[3]],
        "priority": PRIORITIES[r[4]],
        "due_date": _iso(r[5]),
        "assignee": None if r[6] is None else {"id": r[6], "username": r[7]},
        "created_by": {"id": r[8], "username": r[9]},
        "created_at": _iso(r[10]),
        "updated_at": _iso(r[11]),
        "deleted_at": _iso(r[12]),
        "version": r[13],
    }


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@app.get("/bare/json")
def bare_json() -> Response:
    """The framework's limit: a small dict as JSON."""
    return jsonify(status="ok", service="bare", version=1)


@app.get("/bare/tasks")
def bare_tasks() -> Response:
    """The count and one page of 21 rows (default order), as the product's list sends them."""
    where: list[str] = ["tasks.deleted_at IS NULL"]
    params: list[Any] = []
    for name, names in (("status", STATUSES), ("priority", PRIORITIES)):
        if request.args.get(name):
            codes = [names.index(v) for v in request.args[name].split(",")]
            where.append(f"tasks.{name} IN ({', '.join(['%s'] * len(codes))})")
            params.extend(codes)
    if request.args.get("q"):
        where.append(f"({SEARCH})")
        params.append(request.args["q"])
    condition = " AND ".join(where)
    conn = _connection()
    try:
        with conn.transaction():
            total = conn.execute(f"SELECT count(*) FROM tasks WHERE {condition}", params)
            count = total.fetchone()[0]  # type: ignore[index]
            rows = conn.execute(
                f"{VIEW} WHERE {condition} ORDER BY tasks.created_at DESC, tasks.id ASC LIMIT %s",
                [*params, PER_PAGE + 1],
            ).fetchall()
    except BaseException:
        conn.close()
        raise
    items = [_task(r) for r in rows[:PER_PAGE]]
    return jsonify(
        items=items,
        total=count,
        page=1,
        per_page=PER_PAGE,
        pages=(count + PER_PAGE - 1) // PER_PAGE,
        next_cursor="more" if len(rows) > PER_PAGE else None,
    )


@app.get("/bare/tasks/<int:task_id>")
def bare_task(task_id: int) -> Any:
    """One task, as the product reads it."""
    rows = _query(f"{VIEW} WHERE tasks.id = %s", (task_id,))
    if not rows:
        return jsonify(error="not found"), 404
    return jsonify(_task(rows[0]))


@app.post("/bare/tasks")
def bare_create() -> Any:
    """The product's two INSERTs in one transaction, the new task as JSON."""
    body = request.get_json()
    now = datetime.now(UTC)
    status = STATUSES.index(body.get("status", "todo"))
    priority = PRIORITIES.index(body.get("priority", "medium"))
    conn = _connection()
    try:
        with conn.transaction():
            task_id = conn.execute(
                INSERT_TASK,
                (
                    body["task_name"],
                    body.get("description"),
                    status,
                    priority,
                    body.get("due_date"),
                    body.get("assignee_id"),
                    CREATOR_ID,
                    now,
                    now,
                ),
            ).fetchone()[0]  # type: ignore[index]
            changes = {"task_name": [None, body["task_name"]], "priority": [None, priority]}
            conn.execute(
                INSERT_AUDIT,
                (now, CREATOR_ID, str(task_id), json.dumps(changes), uuid.uuid4().hex),
            )
    except BaseException:
        conn.close()
        raise
    row = (
        task_id,
        body["task_name"],
        body.get("description"),
        status,
        priority,
        None,
        None,
        None,
        CREATOR_ID,
        "bench_user",
        now,
        now,
        None,
        1,
    )
    return jsonify(_task(row)), 201, {"Location": f"/bare/tasks/{task_id}"}
