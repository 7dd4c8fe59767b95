"""Tasks: get, add, and the set-based list query (filters, sort, pages, cursors)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import Task


class TaskRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, task: Task) -> Task:
        self.session.add(task)
        return task

    def get(self, task_id: int) -> Task | None:
        return self.session.get(Task, task_id)
