"""Helpers shared by the task tests: create tasks over HTTP or in bulk, check error envelopes."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from tasktracker.models import Task, TaskPriority, TaskStatus, db


def assert_error(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """The response is the error envelope with ``status``, naming ``fields`` in details."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error", "request_id"}
    assert set(body["error"]) >= {"code", "message", "details"}
    for field in fields:
        assert field in (body["error"]["details"] or {}), body
    return body


def create(client: FlaskClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """Create a task through POST /api/v1/tasks and return its JSON."""
    body = {"task_name": "A task", **fields}
    response = client.post("/api/v1/tasks", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bulk_tasks(
    app: Flask, created_by_id: int, count: int, *, seed: int = 7, **fixed: Any
) -> list[int]:
    """Insert ``count`` varied tasks in one statement (ties and NULLs on purpose)."""
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        # Only a few distinct timestamps and due dates: sorting must break ties by id.
        created = base + timedelta(hours=rng.randrange(0, 50))
        rows.append(
            {
                "task_name": f"task {rng.randrange(0, 300):03d}",
                "description": f"bulk row {i}",
                "status": rng.choice(list(TaskStatus)),
                "priority": rng.choice(list(TaskPriority)),
                "due_date": None if rng.random() < 0.3 else date(2024, 6, 1 + rng.randrange(20)),
                "created_by_id": created_by_id,
                "created_at": created,
                "updated_at": created + timedelta(minutes=rng.randrange(0, 3)),
                "version": 1,
                **fixed,
            }
        )
    with app.app_context():
        result = db.session.execute(insert(Task).returning(Task.id), rows)
        ids = [r[0] for r in result]
        db.session.commit()
    return ids
