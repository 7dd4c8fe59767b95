"""Tasks: get, add, lock, and the set-based list query (filters, sort, pages, keyset cursors).

Reads are Core statements over ``tasks`` joined to its two users, so one statement gives a
whole page with the assignee's and creator's names, without ORM identity-map work per row.
Writes go through the ORM so the model's version column guards every UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session, joinedload

from ..models import AuditEvent, Task, TaskPriority, TaskStatus, User
from ..models.task import SEARCH_CONFIG, SEARCH_DOCUMENT_SQL

tasks = Task.__table__
assignees = User.__table__.alias("assignee")
creators = User.__table__.alias("creator")
actors = User.__table__.alias("actor")


@dataclass(frozen=True, slots=True)
class UserRef:
    id: int
    username: str


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task as the API shows it: its columns plus the names of its two users."""

    id: int
    task_name: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    due_date: date | None
    assignee: UserRef | None
    created_by: UserRef
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    occurred_at: datetime
    actor: UserRef | None
    action: str
    changes: dict[str, Any] | None
    request_id: str | None


class Deleted(StrEnum):
    EXCLUDE = "exclude"
    INCLUDE = "include"
    ONLY = "only"


@dataclass(frozen=True)
class TaskFilters:
    """Which tasks a list or an export shows. Empty tuples and None mean "any"."""

    statuses: tuple[TaskStatus, ...] = ()
    priorities: tuple[TaskPriority, ...] = ()
    assignee_id: int | None = None
    created_by_id: int | None = None
    due_from: date | None = None
    due_to: date | None = None
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    search: str | None = None
    deleted: Deleted = Deleted.EXCLUDE


class SortKey(NamedTuple):
    field: str
    descending: bool = False


SORT_COLUMNS: dict[str, Any] = {
    name: tasks.c[name]
    for name in ("id", "task_name", "status", "priority", "due_date", "created_at", "updated_at")
}
# NULLs sort as if larger than every value (PostgreSQL's default, made explicit so SQLite
# agrees): last ascending, first descending. The keyset comparisons below follow that rule.
NULLABLE_SORT = frozenset(name for name, column in SORT_COLUMNS.items() if column.nullable)

# In the order ``_to_row`` unpacks them.
_VIEW_COLUMNS = (
    tasks.c.id,
    tasks.c.task_name,
    tasks.c.description,
    tasks.c.status,
    tasks.c.priority,
    tasks.c.due_date,
    tasks.c.assignee_id,
    assignees.c.username.label("assignee_username"),
    tasks.c.created_by_id,
    creators.c.username.label("creator_username"),
    tasks.c.created_at,
    tasks.c.updated_at,
    tasks.c.deleted_at,
    tasks.c.version,
)


# Built once: building a statement (and its cache key) costs as much as running a small one.
# Core reads run on the session's connection, past the ORM's execute machinery.
_VIEW: Select[Any] = select(*_VIEW_COLUMNS).select_from(
    tasks.outerjoin(assignees, assignees.c.id == tasks.c.assignee_id).join(
        creators, creators.c.id == tasks.c.created_by_id
    )
)
_ONE_ROW = _VIEW.where(tasks.c.id == bindparam("task_id"))


def _to_row(r: Any) -> TaskRow:
    """A ``_VIEW`` row as a TaskRow (unpacked by position: a Row's attributes are lookups)."""
    (
        task_id,
        task_name,
        description,
        status,
        priority,
        due_date,
        assignee_id,
        assignee_username,
        created_by_id,
        creator_username,
        created_at,
        updated_at,
        deleted_at,
        version,
    ) = r
    return TaskRow(
        task_id,
        task_name,
        description,
        status,
        priority,
        due_date,
        None if assignee_id is None else UserRef(assignee_id, assignee_username),
        UserRef(created_by_id, creator_username),
        created_at,
        updated_at,
        deleted_at,
        version,
    )


def _order_by(sort: Sequence[SortKey]) -> list[Any]:
    order = []
    for key in sort:
        column = SORT_COLUMNS[key.field]
        term = column.desc() if key.descending else column.asc()
        if key.field in NULLABLE_SORT:
            term = term.nulls_first() if key.descending else term.nulls_last()
        order.append(term)
    return order


def _equal(field: str, value: Any) -> ColumnElement[bool]:
    column = SORT_COLUMNS[field]
    return column.is_(None) if value is None else column == value


def _beyond(key: SortKey, value: Any) -> ColumnElement[bool] | None:
    """Rows strictly after ``value`` in this key's order (None: no row can be after it)."""
    column = SORT_COLUMNS[key.field]
    nullable = key.field in NULLABLE_SORT
    if value is None:
        # NULL is the last value ascending (nothing after it) and the first descending.
        return column.is_not(None) if key.descending else None
    if key.descending:
        return column < value  # NULLs are before every value descending; `<` excludes them
    return or_(column > value, column.is_(None)) if nullable else column > value


def keyset_after(sort: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """The rows after the row whose sort-key values are ``values``, for any mix of directions.

    (k1 after v1) OR (k1 = v1 AND k2 after v2) OR ... The last key is unique (id), so every
    row is either before or after the cursor row: a walk sees each row exactly once.
    """
    arms = []
    for i, key in enumerate(sort):
        step = _beyond(key, values[i])
        if step is None:
            continue
        prefix = [_equal(k.field, v) for k, v in zip(sort[:i], values[:i], strict=True)]
        arms.append(and_(*prefix, step))
    condition = or_(*arms) if arms else false()
    first, value = sort[0], values[0]
    if value is not None and first.field not in NULLABLE_SORT:
        # A redundant bound on the first key alone: the planner can start an index range
        # scan there, so a page deep in a big table costs as little as the first.
        column = SORT_COLUMNS[first.field]
        condition = and_(column <= value if first.descending else column >= value, condition)
    return condition


class TaskRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- writes (ORM) -----------------------------------------------------------------------
    def add(self, task: Task) -> Task:
        self.session.add(task)
        return task

    def get(self, task_id: int) -> Task | None:
        return self.session.get(Task, task_id)

    def get_for_update(self, task_id: int) -> Task | None:
        """The task with its users, its row locked until the transaction ends.

        Writers of one task queue here, so each one reads the version the previous one wrote
        (SQLite has no row locks; there the version column catches the race instead).
        """
        return self.session.scalars(
            select(Task)
            .options(joinedload(Task.assignee), joinedload(Task.created_by))
            .where(Task.id == task_id)
            .with_for_update(of=Task)
        ).first()

    # -- reads (Core) -----------------------------------------------------------------------
    def row(self, task_id: int) -> TaskRow | None:
        found = self.session.connection().execute(_ONE_ROW, {"task_id": task_id}).first()
        return None if found is None else _to_row(found)

    def count(self, filters: TaskFilters) -> int:
        query = select(func.count()).select_from(tasks).where(*self._conditions(filters))
        return self.session.connection().scalar(query) or 0

    def page(
        self,
        filters: TaskFilters,
        sort: Sequence[SortKey],
        *,
        limit: int,
        offset: int = 0,
        after: Sequence[Any] | None = None,
    ) -> list[TaskRow]:
        """One page in ``sort`` order: by offset, or after a cursor row's key values."""
        query = _VIEW.where(*self._conditions(filters))
        if after is not None:
            query = query.where(keyset_after(sort, after))
        query = query.order_by(*_order_by(sort)).limit(limit)
        if offset:
            query = query.offset(offset)
        return [_to_row(r) for r in self.session.connection().execute(query)]

    def stream(
        self, filters: TaskFilters, sort: Sequence[SortKey], *, batch_size: int
    ) -> Iterator[list[TaskRow]]:
        """Every matching task in batches, in constant memory (a server-side cursor on
        PostgreSQL): for exports of any size."""
        query = (
            _VIEW.where(*self._conditions(filters))
            .order_by(*_order_by(sort))
            .execution_options(yield_per=batch_size)
        )
        for part in self.session.execute(query).partitions():
            yield [_to_row(r) for r in part]

    def history(self, task_id: int, page: int, per_page: int) -> tuple[list[HistoryRow], int]:
        """The task's audit events, oldest first, with each actor's name."""
        events = AuditEvent.__table__
        where = (events.c.entity == "task", events.c.entity_id == str(task_id))
        total = self.session.scalar(select(func.count()).select_from(events).where(*where)) or 0
        query = (
            select(events, actors.c.username.label("actor_username"))
            .select_from(events.outerjoin(actors, actors.c.id == events.c.actor_id))
            .where(*where)
            .order_by(events.c.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        rows = [
            HistoryRow(
                r.id,
                r.occurred_at,
                None if r.actor_id is None else UserRef(r.actor_id, r.actor_username),
                r.action,
                r.changes,
                r.request_id,
            )
            for r in self.session.execute(query)
        ]
        return rows, total

    # -- filters ----------------------------------------------------------------------------
    def _conditions(self, f: TaskFilters) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if f.deleted == Deleted.EXCLUDE:
            where.append(tasks.c.deleted_at.is_(None))
        elif f.deleted == Deleted.ONLY:
            where.append(tasks.c.deleted_at.is_not(None))
        if f.statuses:
            where.append(tasks.c.status.in_(f.statuses))
        if f.priorities:
            where.append(tasks.c.priority.in_(f.priorities))
        if f.assignee_id is not None:
            where.append(tasks.c.assignee_id == f.assignee_id)
        if f.created_by_id is not None:
            where.append(tasks.c.created_by_id == f.created_by_id)
        if f.due_from is not None:
            where.append(tasks.c.due_date >= f.due_from)
        if f.due_to is not None:
            where.append(tasks.c.due_date <= f.due_to)
        if f.created_from is not None:
            where.append(tasks.c.created_at >= f.created_from)
        if f.created_before is not None:
            where.append(tasks.c.created_at < f.created_before)
        if f.search:
            where.append(self._search(f.search))
        return where

    def _search(self, text: str) -> ColumnElement[bool]:
        if self.session.get_bind().dialect.name == "postgresql":
            # Exactly the indexed expression, so the planner uses the GIN index.
            document: ColumnElement[Any] = literal_column(SEARCH_DOCUMENT_SQL)
            query = func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIG}'::regconfig"), text)
            return document.op("@@")(query)
        # SQLite: every word must appear in the name or the description, any case.
        terms = []
        for word in text.split():
            pattern = "%" + _escape_like(word) + "%"
            terms.append(
                or_(
                    tasks.c.task_name.ilike(pattern, escape="\\"),
                    tasks.c.description.ilike(pattern, escape="\\"),
                )
            )
        return and_(*terms)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
