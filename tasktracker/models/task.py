"""Tasks (the seed's TaskManager) and their daily snapshots (the seed's TaskLogger)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base
from .enums import TaskPriority, TaskStatus
from .types import OrdinalEnum, UTCDateTime, created_column, updated_column
from .user import User

STATUS_TYPE = OrdinalEnum(TaskStatus)
PRIORITY_TYPE = OrdinalEnum(TaskPriority)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TaskStatus] = mapped_column(STATUS_TYPE, default=TaskStatus.TODO, index=True)
    priority: Mapped[TaskPriority] = mapped_column(
        PRIORITY_TYPE, default=TaskPriority.MEDIUM, index=True
    )
    due_date: Mapped[date | None] = mapped_column(Date, index=True)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="raise")
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id], lazy="raise")

    # SQLAlchemy adds "AND version = :old" to every UPDATE and raises StaleDataError when no
    # row matched, so two concurrent writers can never silently overwrite each other.
    __mapper_args__ = {"version_id_col": version}

    @property
    def is_active(self) -> bool:
        """Active = not deleted and not done (what the daily snapshot records)."""
        return self.deleted_at is None and self.status != TaskStatus.DONE


# The default listing order (-created_at, id) and its keyset cursor.
Index("ix_tasks_created_at_id", Task.created_at.desc(), Task.id)

# Full-text search over name and description. On PostgreSQL a GIN index on exactly this
# expression exists (created in the migration, PostgreSQL only); the list query must use the
# same text for the planner to use it. SQLite falls back to LIKE.
SEARCH_CONFIG = "english"
SEARCH_DOCUMENT_SQL = (
    f"to_tsvector('{SEARCH_CONFIG}'::regconfig, "
    "coalesce(tasks.task_name, '') || ' ' || coalesce(tasks.description, ''))"
)


class TaskLog(Base):
    """One task's state on one day, written only by the daily snapshot."""

    __tablename__ = "task_logs"
    __table_args__ = (UniqueConstraint("task_id", "log_date"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    log_date: Mapped[date] = mapped_column(Date)
    status: Mapped[TaskStatus] = mapped_column(STATUS_TYPE)
    priority: Mapped[TaskPriority] = mapped_column(PRIORITY_TYPE)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = created_column()

    task: Mapped[Task] = relationship(lazy="raise")


# Log pages are ordered by log_date descending, then id: this index serves both the order and
# the date filter.
Index("ix_task_logs_log_date_id", TaskLog.log_date.desc(), TaskLog.id)
