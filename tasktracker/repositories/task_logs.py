"""Task logs: the set-based daily snapshot, snapshot runs, the log queries and the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Date, Select, Table, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, contains_eager

from ..models import JobStatus, SnapshotRun, Task, TaskLog, TaskPriority, TaskStatus
from ..models.types import UTCDateTime

# Namespace of the PostgreSQL advisory lock that serialises snapshots of one date (the second
# argument is the date's ordinal). Any int4 constant works; this one spells "TLOG".
SNAPSHOT_LOCK_CLASS = 0x544C4F47


@dataclass(frozen=True)
class LogFilters:
    """What a log listing is restricted to (empty means no restriction)."""

    on: date | None = None
    date_from: date | None = None
    date_to: date | None = None
    task_id: int | None = None
    statuses: tuple[TaskStatus, ...] = ()
    priorities: tuple[TaskPriority, ...] = ()
    include_deleted: bool = False


def _active_tasks() -> tuple[Any, ...]:
    """The SPEC's "active": not deleted and not done."""
    return (Task.deleted_at.is_(None), Task.status != TaskStatus.DONE)


class TaskLogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- the snapshot -------------------------------------------------------------------------
    def lock_snapshot_date(self, log_date: date) -> None:
        """Serialise snapshots of one date until this transaction ends (PostgreSQL).

        Two concurrent ``INSERT ... ON CONFLICT`` statements over the same keys can deadlock
        when they meet the rows in different orders; taking this lock first makes the second
        run wait and then find every log already written. SQLite's single writer already
        serialises them.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
                {"cls": SNAPSHOT_LOCK_CLASS, "obj": log_date.toordinal()},
            )

    def snapshot(self, log_date: date, now: datetime) -> int:
        """Log every active task that has no log for ``log_date``, in one statement.

        ``INSERT INTO task_logs ... SELECT ... FROM tasks WHERE active ON CONFLICT
        (task_id, log_date) DO NOTHING``; returns how many logs it wrote.
        """
        rows = select(
            Task.id,
            literal(log_date, Date()),
            Task.status,
            Task.priority,
            Task.assignee_id,
            literal(now, UTCDateTime()),
        ).where(*_active_tasks())
        columns = ["task_id", "log_date", "status", "priority", "assignee_id", "created_at"]
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # The Core table rather than the ORM entity: a plain statement, no ORM bulk handling.
        # SQLAlchemy reads an INSERT's rowcount only when asked to preserve it.
        statement = (
            insert(cast(Table, TaskLog.__table__))
            .from_select(columns, rows, include_defaults=False)
            .on_conflict_do_nothing(index_elements=["task_id", "log_date"])
            .execution_options(preserve_rowcount=True)
        )
        result = self.session.execute(statement)
        return max(int(cast(CursorResult[Any], result).rowcount), 0)

    def count_active_tasks(self) -> int:
        """How many tasks the snapshot covers (active ones)."""
        query = select(func.count()).select_from(Task).where(*_active_tasks())
        return int(self.session.scalar(query) or 0)

    # -- snapshot runs ------------------------------------------------------------------------
    def ensure_run(
        self, run_id: str, log_date: date, trigger: str, requested_by_id: int | None
    ) -> SnapshotRun:
        """The run with this id, created (queued) if it does not exist yet.

        Insert-or-nothing rather than get-then-add, so a redelivered job racing its first
        delivery cannot fail on the primary key.
        """
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(
            insert(SnapshotRun)
            .values(
                id=run_id,
                log_date=log_date,
                status=JobStatus.QUEUED.value,
                trigger=trigger,
                requested_by_id=requested_by_id,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        run = self.get_run(run_id, for_update=True)
        assert run is not None  # inserted or already there, in this transaction
        return run

    def add_run(self, run: SnapshotRun) -> SnapshotRun:
        self.session.add(run)
        return run

    def get_run(self, run_id: str, *, for_update: bool = False) -> SnapshotRun | None:
        query = select(SnapshotRun).where(SnapshotRun.id == run_id)
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def last_snapshot_date(self) -> date | None:
        """The log date of the newest completed snapshot run."""
        return self.session.scalar(
            select(func.max(SnapshotRun.log_date)).where(
                SnapshotRun.status == JobStatus.SUCCEEDED.value
            )
        )

    # -- reading logs -------------------------------------------------------------------------
    def page(self, filters: LogFilters, page: int, per_page: int) -> tuple[list[TaskLog], int]:
        """One page of logs (newest date first, then id) with their tasks, and the total."""
        query = (
            select(TaskLog)
            .join(TaskLog.task)
            .options(contains_eager(TaskLog.task))
            .order_by(TaskLog.log_date.desc(), TaskLog.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        logs = list(self.session.scalars(_filtered(query, filters)).all())
        if len(logs) < per_page and (logs or page == 1):
            # This is the last page, so the total is known without counting.
            return logs, (page - 1) * per_page + len(logs)
        count = select(func.count()).select_from(TaskLog)
        if not filters.include_deleted:
            count = count.join(Task, Task.id == TaskLog.task_id)
        total = int(self.session.scalar(_filtered(count, filters)) or 0)
        return logs, total

    def get(self, log_id: int, *, include_deleted: bool) -> TaskLog | None:
        """One log with its task (None if missing, or its task is deleted and hidden)."""
        query = (
            select(TaskLog)
            .join(TaskLog.task)
            .options(contains_eager(TaskLog.task))
            .where(TaskLog.id == log_id)
        )
        if not include_deleted:
            query = query.where(Task.deleted_at.is_(None))
        return self.session.scalars(query).first()

    def task_visible(self, task_id: int, *, include_deleted: bool) -> bool:
        """Whether the task exists (and, unless ``include_deleted``, is not deleted)."""
        query = select(Task.id).where(Task.id == task_id)
        if not include_deleted:
            query = query.where(Task.deleted_at.is_(None))
        return self.session.scalar(query) is not None

    def daily_counts(
        self, date_from: date, date_to: date
    ) -> list[tuple[date, TaskStatus, TaskPriority, int]]:
        """Logs per (day, status, priority) between two dates, inclusive: one GROUP BY."""
        query = (
            select(TaskLog.log_date, TaskLog.status, TaskLog.priority, func.count())
            .where(TaskLog.log_date.between(date_from, date_to))
            .group_by(TaskLog.log_date, TaskLog.status, TaskLog.priority)
        )
        return [(row[0], row[1], row[2], int(row[3])) for row in self.session.execute(query)]


def _filtered(query: Select[Any], filters: LogFilters) -> Select[Any]:
    """Apply the filters to a query that already selects from task_logs (joined to tasks
    whenever deleted tasks are hidden)."""
    conditions: list[Any] = []
    if filters.on is not None:
        conditions.append(TaskLog.log_date == filters.on)
    if filters.date_from is not None:
        conditions.append(TaskLog.log_date >= filters.date_from)
    if filters.date_to is not None:
        conditions.append(TaskLog.log_date <= filters.date_to)
    if filters.task_id is not None:
        conditions.append(TaskLog.task_id == filters.task_id)
    if filters.statuses:
        conditions.append(TaskLog.status.in_(filters.statuses))
    if filters.priorities:
        conditions.append(TaskLog.priority.in_(filters.priorities))
    if not filters.include_deleted:
        conditions.append(Task.deleted_at.is_(None))
    return query.where(*conditions)
