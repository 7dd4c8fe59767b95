"""Test helpers for the task-log tests: tasks made through the ORM, snapshots through the service.

Tasks are written directly (not through the tasks API), the way the tasks service would:
commit, then tell the log cache that tasks changed.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from tasktracker.models import Task, TaskLog, TaskPriority, TaskStatus, utcnow
from tasktracker.services import log_cache
from tasktracker.services import snapshot as snapshot_service
from tasktracker.services.snapshot import SnapshotResult


class Tasks:
    """Make and change tasks in the app's database."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @property
    def container(self) -> Any:
        return self.app.extensions["tasktracker"]

    def add(
        self,
        created_by: int,
        name: str = "A task",
        *,
        status: TaskStatus | str = TaskStatus.TODO,
        priority: TaskPriority | str = TaskPriority.MEDIUM,
        assignee_id: int | None = None,
        description: str | None = "details",
        deleted: bool = False,
    ) -> int:
        with self.app.app_context(), self.container.uow() as uow:
            task = Task(
                task_name=name,
                description=description,
                status=TaskStatus(status),
                priority=TaskPriority(priority),
                assignee_id=assignee_id,
                created_by_id=created_by,
                deleted_at=utcnow() if deleted else None,
            )
            uow.session.add(task)
            uow.commit()
            task_id = task.id
        log_cache.tasks_changed(self.container.cache)
        return task_id

    def update(self, task_id: int, **changes: Any) -> None:
        with self.app.app_context(), self.container.uow() as uow:
            task = uow.session.get(Task, task_id)
            assert task is not None
            for name, value in changes.items():
                setattr(task, name, value)
            uow.commit()
        log_cache.tasks_changed(self.container.cache)

    def delete(self, task_id: int) -> None:
        self.update(task_id, deleted_at=utcnow())

    def bulk(self, created_by: int, count: int) -> None:
        """Many active tasks in one statement (for concurrency and size tests)."""
        with self.app.app_context(), self.container.uow() as uow:
            uow.session.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :c) "
                    "INSERT INTO tasks (task_name, status, priority, created_by_id, version, "
                    "created_at, updated_at) "
                    "SELECT 'bulk ' || i, i % 2, i % 3, :u, 1, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM n"
                ),
                {"c": count, "u": created_by},
            )
            uow.commit()

    def logs(self, log_date: date | None = None) -> list[TaskLog]:
        """Every log (of one date), by task id."""
        with self.app.app_context(), self.container.uow() as uow:
            query = select(TaskLog).order_by(TaskLog.task_id, TaskLog.log_date)
            if log_date is not None:
                query = query.where(TaskLog.log_date == log_date)
            return list(uow.session.scalars(query).all())

    def duplicate_logs(self) -> int:
        """(task, date) pairs logged more than once: must always be 0."""
        with self.app.app_context(), self.container.uow() as uow:
            groups = (
                select(TaskLog.task_id)
                .group_by(TaskLog.task_id, TaskLog.log_date)
                .having(func.count() > 1)
                .subquery()
            )
            return int(uow.session.scalar(select(func.count()).select_from(groups)) or 0)

    def snapshot(self, log_date: date | None = None, run_id: str | None = None) -> SnapshotResult:
        """Run the snapshot service as the scheduled job would."""
        with self.app.app_context():
            c = self.container
            return snapshot_service.run_snapshot(
                c.uow(),
                c.cache,
                run_id=run_id or str(uuid.uuid4()),
                tz=c.settings.tz,
                log_date=log_date,
            )


@pytest.fixture(name="tasks")
def tasks_fixture(app: Flask) -> Tasks:
    """Make and change tasks, run snapshots (import ``tasks_fixture`` to use ``tasks``)."""
    return Tasks(app)


def assert_error(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """The SPEC envelope with this status, naming each of ``fields`` in its details."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) >= {"code", "message", "details"}
    for field in fields:
        assert field in (body["error"]["details"] or {}), body
    return body
