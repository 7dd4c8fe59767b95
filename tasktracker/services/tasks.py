"""Tasks: create, read, list, update, soft delete, restore, history.

Every function takes plain values and a unit of work, asks ``auth.policy`` who may do what,
and raises domain errors. Every committed write is audited and marks the cached task-log
pages stale (``log_cache.tasks_changed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import Enum
from typing import Any

from sqlalchemy.orm.exc import StaleDataError

from ..auth.policy import Actor, Permission, can, require, require_task_update
from ..cache import Cache
from ..errors import Conflict, InvalidInput, NotFound, StaleVersion
from ..models import Task, TaskPriority, TaskStatus, User, utcnow
from ..repositories.tasks import (
    SORT_COLUMNS,
    Deleted,
    HistoryRow,
    SortKey,
    TaskFilters,
    TaskRow,
    UserRef,
)
from ..unit_of_work import UnitOfWork
from . import log_cache
from .cursors import CursorCodec

ENTITY = "task"
SORT_FIELDS = tuple(SORT_COLUMNS)
DEFAULT_SORT = "-created_at,id"
# The fields a write may name, in the order they appear in an audit event.
EDITABLE = ("task_name", "description", "status", "priority", "due_date")
ME = "me"


# -- preconditions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class IfMatch:
    """An If-Match header: the versions the writer last saw (or ``*``: any version)."""

    versions: frozenset[int] = frozenset()
    any: bool = False

    def matches(self, version: int) -> bool:
        return self.any or version in self.versions


def _check_precondition(task: Task, if_match: IfMatch | None) -> None:
    if if_match is not None and not if_match.matches(task.version):
        raise StaleVersion(
            f"Task {task.id} has changed since you read it (now version {task.version}).",
            {"version": task.version},
        )


def _flush(uow: UnitOfWork, task_id: int, if_match: IfMatch | None) -> None:
    """Write the change; a writer that raced past the row lock (SQLite has none) loses here."""
    try:
        uow.flush()
    except StaleDataError as exc:
        message = f"Task {task_id} was changed by someone else; read it again and retry."
        if if_match is not None:
            raise StaleVersion(message) from exc
        raise Conflict(message) from exc


# -- reading ----------------------------------------------------------------------------------
def _visible(actor: Actor, deleted_at: datetime | None) -> bool:
    return deleted_at is None or can(actor, Permission.SEE_DELETED)


def _not_found(task_id: int) -> NotFound:
    return NotFound(f"Task {task_id} does not exist.")


def get_task(uow: UnitOfWork, actor: Actor, task_id: int) -> TaskRow:
    """One task; a deleted one only for admins."""
    require(actor, Permission.READ)
    with uow.reading():
        row = uow.tasks.row(task_id)
    if row is None or not _visible(actor, row.deleted_at):
        raise _not_found(task_id)
    return row


@dataclass(frozen=True)
class TaskPage:
    items: list[TaskRow]
    total: int
    page: int | None
    per_page: int
    pages: int
    next_cursor: str | None


@dataclass(frozen=True)
class ListQuery:
    """A validated list or export request: filters, sort, and which rows."""

    filters: TaskFilters
    sort: tuple[SortKey, ...]


def parse_sort(text: str | None) -> tuple[SortKey, ...]:
    """``-priority,due_date`` -> sort keys, ending with id so the order is total."""
    keys: list[SortKey] = []
    seen: set[str] = set()
    for part in (text or DEFAULT_SORT).split(","):
        name = part.removeprefix("-")
        if name not in SORT_COLUMNS:
            raise InvalidInput(
                "The sort names a field that cannot be sorted by.",
                {"sort": [f"Unknown sort field {name!r}; use: {', '.join(SORT_FIELDS)}."]},
            )
        if name in seen:
            continue  # as in SQL, a repeated key can never decide anything: the first wins
        seen.add(name)
        keys.append(SortKey(name, part.startswith("-")))
        if name == "id":
            break  # id is unique: keys after it could never decide anything
    if "id" not in seen:
        keys.append(SortKey("id"))
    return tuple(keys)


def _user_id(value: int | str | None, actor: Actor) -> int | None:
    return actor.id if value == ME else (None if value is None else int(value))


def build_query(actor: Actor, params: Mapping[str, Any], tz: tzinfo) -> ListQuery:
    """Turn list/export parameters into filters and a sort; only admins see deleted tasks."""
    require(actor, Permission.READ)
    deleted = Deleted(params.get("deleted") or Deleted.EXCLUDE)
    if deleted != Deleted.EXCLUDE:
        require(actor, Permission.SEE_DELETED)
    created_from, created_to = params.get("created_from"), params.get("created_to")
    search = (params.get("q") or "").strip() or None
    filters = TaskFilters(
        statuses=tuple(params.get("status") or ()),
        priorities=tuple(params.get("priority") or ()),
        assignee_id=_user_id(params.get("assignee"), actor),
        created_by_id=_user_id(params.get("created_by"), actor),
        due_from=params.get("due_from"),
        due_to=params.get("due_to"),
        # created_* are calendar days in the installation's time zone, both ends included.
        created_from=_day_start(created_from, tz),
        created_before=_day_start(created_to, tz, next_day=True),
        search=search,
        deleted=deleted,
    )
    return ListQuery(filters, parse_sort(params.get("sort")))


def _start_of(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def _day_start(day: date | None, tz: tzinfo, *, next_day: bool = False) -> datetime | None:
    """Midnight of the day (or of the next) as a UTC bound; None when there is no bound,
    also at the ends of the calendar (year 1 or 9999), where every task is inside anyway."""
    if day is None:
        return None
    try:
        return _start_of(day + timedelta(days=1) if next_day else day, tz).astimezone(UTC)
    except OverflowError:
        return None


def list_tasks(
    uow: UnitOfWork,
    actor: Actor,
    params: Mapping[str, Any],
    *,
    codec: CursorCodec,
    tz: tzinfo,
) -> TaskPage:
    """A page of tasks: by ``page`` or after ``cursor``; two queries whatever the page size."""
    query = build_query(actor, params, tz)
    per_page: int = params["per_page"]
    sort_text = ",".join(("-" if k.descending else "") + k.field for k in query.sort)
    after = None
    page: int | None = params.get("page", 1)
    if params.get("cursor"):
        after = _cursor_values(codec.decode(params["cursor"]), query.sort, sort_text)
        page = None
    with uow.reading():
        total = uow.tasks.count(query.filters)
        offset = 0 if page is None else (page - 1) * per_page
        # One row more than the page tells whether another page follows.
        rows = uow.tasks.page(
            query.filters, query.sort, limit=per_page + 1, offset=offset, after=after
        )
    next_cursor = None
    if len(rows) > per_page:
        rows = rows[:per_page]
        last = rows[-1]
        keys = [_encode_value(getattr(last, key.field)) for key in query.sort]
        next_cursor = codec.encode({"s": sort_text, "k": keys})
    pages = (total + per_page - 1) // per_page
    return TaskPage(rows, total, page, per_page, pages, next_cursor)


def _encode_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


_DECODERS: dict[str, Any] = {
    "id": int,
    "task_name": str,
    "status": TaskStatus,
    "priority": TaskPriority,
    "due_date": date.fromisoformat,
    "created_at": datetime.fromisoformat,
    "updated_at": datetime.fromisoformat,
}


def _cursor_values(payload: dict[str, Any], sort: Sequence[SortKey], sort_text: str) -> list[Any]:
    if payload.get("s") != sort_text:
        raise InvalidInput(
            "The cursor was issued for a different sort.",
            {"cursor": [f"This cursor continues sort={payload.get('s')!r}, not {sort_text!r}."]},
        )
    keys = payload.get("k")
    try:
        if not isinstance(keys, list) or len(keys) != len(sort):
            raise ValueError("wrong number of keys")
        return [
            None if value is None else _DECODERS[key.field](value)
            for key, value in zip(sort, keys, strict=True)
        ]
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInput("The cursor is not valid.", {"cursor": ["Not a valid cursor."]}) from exc


@dataclass(frozen=True)
class HistoryPage:
    items: list[HistoryRow]
    total: int
    page: int
    per_page: int
    pages: int


def task_history(
    uow: UnitOfWork, actor: Actor, task_id: int, page: int, per_page: int
) -> HistoryPage:
    """The audit events of one visible task, oldest first."""
    require(actor, Permission.READ)
    with uow.reading():
        row = uow.tasks.row(task_id)
        if row is None or not _visible(actor, row.deleted_at):
            raise _not_found(task_id)
        items, total = uow.tasks.history(task_id, page, per_page)
    return HistoryPage(items, total, page, per_page, (total + per_page - 1) // per_page)


# -- writing ----------------------------------------------------------------------------------
def _audit_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def _ref(user: User | None) -> UserRef | None:
    return None if user is None else UserRef(user.id, user.username)


def _row(task: Task, created_by: UserRef, assignee: UserRef | None) -> TaskRow:
    return TaskRow(
        task.id,
        task.task_name,
        task.description,
        task.status,
        task.priority,
        task.due_date,
        assignee,
        created_by,
        task.created_at,
        task.updated_at,
        task.deleted_at,
        task.version,
    )


def _loaded_row(task: Task) -> TaskRow:
    """The row of a task read with ``get_for_update`` (its users are loaded)."""
    creator = _ref(task.created_by)
    assert creator is not None
    return _row(task, creator, _ref(task.assignee))


def _resolve_assignee(uow: UnitOfWork, fields: Mapping[str, Any]) -> tuple[bool, User | None]:
    """(whether the body names an assignee, and who). The seed's ``assigned_user`` names a
    username, v1's ``assignee_id`` an id; either must be an existing, active user."""
    if "assigned_user" in fields:
        field, value = "assigned_user", fields["assigned_user"]
        user = None if value is None else uow.users.by_username(value)
    elif "assignee_id" in fields:
        field, value = "assignee_id", fields["assignee_id"]
        user = None if value is None else uow.users.get(value)
    else:
        return False, None
    if value is None:
        return True, None
    if user is None or not user.is_active:
        raise InvalidInput(
            "The assignee must be an existing, active user.",
            {field: [f"No active user {value!r}."]},
        )
    return True, user


def _creation_time(day: date | None, tz: tzinfo) -> datetime | None:
    """The seed's ``created_at`` day as a timestamp (None: now). Never in the future."""
    if day is None:
        return None
    today = datetime.now(tz).date()
    if day > today:
        raise InvalidInput(
            "A task cannot be created in the future.", {"created_at": ["Must not be after today."]}
        )
    return None if day == today else _start_of(day, tz)


def create_task(
    uow: UnitOfWork, actor: Actor, fields: Mapping[str, Any], cache: Cache, *, tz: tzinfo
) -> TaskRow:
    """Create a task owned by the actor; ``created_on`` (the seed's created_at) backdates it."""
    require(actor, Permission.CREATE_TASK)
    now = utcnow()
    created_at = _creation_time(fields.get("created_on"), tz) or now
    with uow:
        _, assignee = _resolve_assignee(uow, fields)
        task = uow.tasks.add(
            Task(
                task_name=fields["task_name"],
                description=fields.get("description"),
                status=fields.get("status") or TaskStatus.TODO,
                priority=fields.get("priority") or TaskPriority.MEDIUM,
                due_date=fields.get("due_date"),
                assignee_id=assignee.id if assignee else None,
                created_by_id=actor.id,
                created_at=created_at,
                updated_at=now,
            )
        )
        uow.flush()
        initial = {name: getattr(task, name) for name in EDITABLE}
        initial["assignee_id"] = task.assignee_id
        uow.audit.record(
            actor_id=actor.id,
            action="create",
            entity=ENTITY,
            entity_id=task.id,
            changes={k: [None, _audit_value(v)] for k, v in initial.items() if v is not None},
        )
        uow.commit()
    log_cache.tasks_changed(cache)
    return _row(task, UserRef(actor.id, actor.username), _ref(assignee))


def _load_for_write(uow: UnitOfWork, actor: Actor, task_id: int) -> Task:
    task = uow.tasks.get_for_update(task_id)
    if task is None or not _visible(actor, task.deleted_at):
        raise _not_found(task_id)
    return task


def update_task(
    uow: UnitOfWork,
    actor: Actor,
    task_id: int,
    fields: Mapping[str, Any],
    cache: Cache,
    *,
    if_match: IfMatch | None = None,
    replace: bool = False,
) -> TaskRow:
    """Change the fields named (``replace``: PUT, an unnamed assignee is cleared).

    Admins change any task, users those they created or are assigned. A stale If-Match is
    412 and changes nothing; an update that changes no value writes nothing.
    """
    require(actor, Permission.UPDATE_TASK)
    with uow:
        task = _load_for_write(uow, actor, task_id)
        require_task_update(actor, task.created_by_id, task.assignee_id)
        _check_precondition(task, if_match)
        if task.deleted_at is not None:
            raise Conflict(f"Task {task_id} is deleted; restore it before changing it.")
        named, assignee = _resolve_assignee(uow, fields)
        changes: dict[str, list[Any]] = {}
        for name in EDITABLE:
            if name in fields and getattr(task, name) != fields[name]:
                changes[name] = [_audit_value(getattr(task, name)), _audit_value(fields[name])]
                setattr(task, name, fields[name])
        new_assignee_id = assignee.id if assignee else None
        if (named or replace) and task.assignee_id != new_assignee_id:
            changes["assignee_id"] = [task.assignee_id, new_assignee_id]
            task.assignee = assignee
        if changes:
            _save_change(uow, actor, task, "update", changes, if_match)
        row = _loaded_row(task)
    if changes:
        log_cache.tasks_changed(cache)
    return row


def _save_change(
    uow: UnitOfWork,
    actor: Actor,
    task: Task,
    action: str,
    changes: dict[str, Any],
    if_match: IfMatch | None,
) -> None:
    """Write a changed task (version-checked), its audit event, and commit."""
    _flush(uow, task.id, if_match)
    uow.audit.record(
        actor_id=actor.id, action=action, entity=ENTITY, entity_id=task.id, changes=changes
    )
    uow.commit()


def _set_deleted(
    uow: UnitOfWork,
    actor: Actor,
    task_id: int,
    cache: Cache,
    *,
    deleted: bool,
    if_match: IfMatch | None,
) -> TaskRow:
    action = "delete" if deleted else "restore"
    require(actor, Permission.DELETE_TASK if deleted else Permission.RESTORE_TASK)
    with uow:
        task = _load_for_write(uow, actor, task_id)
        _check_precondition(task, if_match)
        changed = (task.deleted_at is None) == deleted
        if changed:
            old = task.deleted_at
            task.deleted_at = utcnow() if deleted else None
            diff = {"deleted_at": [_audit_value(old), _audit_value(task.deleted_at)]}
            _save_change(uow, actor, task, action, diff, if_match)
        row = _loaded_row(task)
    if changed:
        log_cache.tasks_changed(cache)
    return row


def delete_task(
    uow: UnitOfWork,
    actor: Actor,
    task_id: int,
    cache: Cache,
    *,
    if_match: IfMatch | None = None,
) -> TaskRow:
    """Soft-delete a task (admins). Deleting a deleted task changes nothing."""
    return _set_deleted(uow, actor, task_id, cache, deleted=True, if_match=if_match)


def restore_task(
    uow: UnitOfWork,
    actor: Actor,
    task_id: int,
    cache: Cache,
    *,
    if_match: IfMatch | None = None,
) -> TaskRow:
    """Bring a soft-deleted task back (admins). Restoring a live task changes nothing."""
    return _set_deleted(uow, actor, task_id, cache, deleted=False, if_match=if_match)
