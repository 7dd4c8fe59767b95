"""Task schemas: bodies in (v1 and the seed's names), list/export parameters, tasks out."""

from __future__ import annotations

import re
from datetime import date
from enum import Enum
from typing import Any

import marshmallow as ma
from webargs.fields import DelimitedList

from ..api.base import BaseSchema
from ..models import TaskPriority, TaskStatus
from ..repositories.tasks import Deleted, TaskRow
from ..repositories.tasks import UserRef as RowUserRef
from ..services.tasks import DEFAULT_SORT, ME, SORT_FIELDS, TaskPage
from .common import PageArgs, PageMeta, UserRef

MAX_NAME = 255
MAX_DESCRIPTION = 10_000
MAX_SEARCH = 500
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers
# The earliest creation day the seed's created_at may name: every time zone can express its
# midnight, and no real task is older.
EARLIEST_DAY = date(1900, 1, 1)
_USER_ID = re.compile(r"[0-9]{1,9}")  # ids are 32-bit: a longer number names nobody


def _names(enum_cls: type[Enum]) -> list[str]:
    return [str(member.value) for member in enum_cls]


def _any_case(enum_cls: type[Enum]) -> dict[str, Any]:
    """OpenAPI for an enum name in any case (JSON Schema's regex has no ignore-case flag)."""
    names = _names(enum_cls)
    alternatives = (
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name) for name in names
    )
    return {
        "type": "string",
        "pattern": f"^(?:{'|'.join(alternatives)})$",
        "example": names[-1],
        "description": f"One of {', '.join(names)} (any case).",
    }


class EnumName(ma.fields.Field[Enum]):
    """An enum member by its name, in any case ("High" is high)."""

    default_error_messages = {"invalid": "Must be one of: {choices}."}

    def __init__(
        self, enum_cls: type[Enum], *, metadata: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if metadata is None:
            metadata = _any_case(enum_cls)
        super().__init__(metadata=metadata, **kwargs)
        self.enum_cls = enum_cls
        self._members = {str(member.value).lower(): member for member in enum_cls}

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else self.enum_cls(value).value

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Enum:
        member = self._members.get(value.lower()) if isinstance(value, str) else None
        if member is None:
            raise self.make_error("invalid", choices=", ".join(_names(self.enum_cls)))
        return member


class StatusField(EnumName):
    """A status name, or the seed's boolean: true is an active task (todo), false is done."""

    default_error_messages = {"invalid": "Must be true, false or one of: todo, in_progress, done."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            TaskStatus,
            metadata={
                "oneOf": [_any_case(TaskStatus), {"type": "boolean"}],
                "description": "A status name (any case), or a boolean: true = todo, false = done.",
            },
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Enum:
        if isinstance(value, bool):
            return TaskStatus.TODO if value else TaskStatus.DONE
        return super()._deserialize(value, attr, data, **kwargs)


class UserIdOrMe(ma.fields.Field[int | str]):
    """A user id, or ``me`` for the caller."""

    default_error_messages = {"invalid": "Must be a user id or 'me'."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            metadata={"type": "string", "pattern": f"^(?:me|{_USER_ID.pattern})$", "example": "me"},
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | str:
        if value == ME:
            return ME
        if isinstance(value, str) and _USER_ID.fullmatch(value):
            return int(value)
        raise self.make_error("invalid")


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("Must not be blank.")


def _task_name(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=[ma.validate.Length(min=1, max=MAX_NAME), _not_blank],
        metadata={"example": "Write the quarterly report"},
        **kwargs,
    )


def _description(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        allow_none=True, validate=ma.validate.Length(max=MAX_DESCRIPTION), **kwargs
    )


def _assignee_id() -> ma.fields.Integer:
    return ma.fields.Integer(
        allow_none=True,
        strict=True,
        validate=ma.validate.Range(min=1, max=MAX_ID),
        metadata={"description": "The assignee's user id (null: nobody)."},
    )


def _assigned_user() -> ma.fields.String:
    return ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(min=1, max=254),
        metadata={"description": "The seed's name for the assignee: a username (null: nobody)."},
    )


_SORT_FIELD = "-?(" + "|".join(SORT_FIELDS) + ")"
SORT_PATTERN = f"^{_SORT_FIELD}(,{_SORT_FIELD})*$"

# The assignee is named once; said in the document too, so a client knows before sending.
ONE_ASSIGNEE: dict[str, Any] = {"not": {"required": ["assignee_id", "assigned_user"]}}


class _OneAssignee(BaseSchema):
    """The assignee is named once: by ``assignee_id`` or by the seed's ``assigned_user``."""

    class Meta(BaseSchema.Meta):
        json_schema = ONE_ASSIGNEE

    @ma.validates_schema
    def _one_assignee(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "assignee_id" in data and "assigned_user" in data:
            raise ma.ValidationError(
                "Name the assignee by assignee_id or assigned_user, not both.", "assigned_user"
            )


class TaskCreateSchema(_OneAssignee):
    """A whole task: the body of POST and of PUT (which replaces every field)."""

    task_name = _task_name(required=True)
    description = _description(load_default=None)
    status = StatusField(load_default=TaskStatus.TODO)
    priority = EnumName(TaskPriority, load_default=TaskPriority.MEDIUM)
    due_date = ma.fields.Date(allow_none=True, load_default=None)
    assignee_id = _assignee_id()
    assigned_user = _assigned_user()


class SeedTaskCreateSchema(TaskCreateSchema):
    """The seed's POST /task body: also ``created_at``, the task's creation day."""

    created_at = ma.fields.Date(
        attribute="created_on",
        allow_none=True,
        validate=ma.validate.Range(min=EARLIEST_DAY),
        metadata={"description": "The day the task was created (default today)."},
    )


class TaskUpdateSchema(_OneAssignee):
    """PATCH (and the seed's PUT): only the fields named change."""

    class Meta(_OneAssignee.Meta):
        json_schema = {"minProperties": 1, **ONE_ASSIGNEE}  # see _not_empty

    task_name = _task_name()
    description = _description()
    status = StatusField()
    priority = EnumName(TaskPriority)
    due_date = ma.fields.Date(allow_none=True)
    assignee_id = _assignee_id()
    assigned_user = _assigned_user()

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Name at least one field to change.")


class TaskFilterArgs(BaseSchema):
    """The filters and sort shared by the list and the CSV export."""

    status = DelimitedList(
        EnumName(TaskStatus), metadata={"description": "Comma-separated statuses."}
    )
    priority = DelimitedList(
        EnumName(TaskPriority), metadata={"description": "Comma-separated priorities."}
    )
    assignee = UserIdOrMe()
    created_by = UserIdOrMe()
    due_from = ma.fields.Date(metadata={"description": "Due on or after this day."})
    due_to = ma.fields.Date(metadata={"description": "Due on or before this day."})
    created_from = ma.fields.Date(metadata={"description": "Created on or after this day."})
    created_to = ma.fields.Date(metadata={"description": "Created on or before this day."})
    q = ma.fields.String(
        validate=ma.validate.Length(max=MAX_SEARCH),
        metadata={"description": "Words to find in the name or description."},
    )
    deleted = ma.fields.Enum(
        Deleted,
        by_value=True,
        load_default=Deleted.EXCLUDE,
        metadata={"description": "Deleted tasks: exclude, include or only them (admins)."},
    )
    sort = ma.fields.String(
        load_default=DEFAULT_SORT,
        # The allow-list, said in the document too (a repeated field is allowed; the first
        # occurrence decides, as in SQL).
        validate=[ma.validate.Length(min=1, max=200), ma.validate.Regexp(SORT_PATTERN)],
        metadata={
            "description": "Comma-separated fields, '-' for descending, from: "
            + ", ".join(SORT_FIELDS)
            + ". Priority and status sort in their order (low < medium < high).",
            "example": "-priority,due_date",
        },
    )

    @ma.validates_schema
    def _ranges(self, data: dict[str, Any], **kwargs: Any) -> None:
        for low, high in (("due_from", "due_to"), ("created_from", "created_to")):
            start: date | None = data.get(low)
            end: date | None = data.get(high)
            if start and end and end < start:
                raise ma.ValidationError(f"Must not be before {low}.", high)


class TaskQueryArgs(TaskFilterArgs, PageArgs):
    cursor = ma.fields.String(
        validate=ma.validate.Length(min=1, max=2000),
        metadata={"description": "next_cursor of the previous page (then page is ignored)."},
    )


class TaskSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    task_name = ma.fields.String(required=True)
    description = ma.fields.String(required=True, allow_none=True)
    status = ma.fields.Enum(TaskStatus, by_value=True, required=True)
    priority = ma.fields.Enum(TaskPriority, by_value=True, required=True)
    due_date = ma.fields.Date(required=True, allow_none=True)
    assignee = ma.fields.Nested(UserRef, required=True, allow_none=True)
    created_by = ma.fields.Nested(UserRef, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)
    deleted_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    version = ma.fields.Integer(required=True, metadata={"description": "Also the ETag."})


class SeedTaskSchema(TaskSchema):
    """The seed's answer: the task plus a message."""

    message = ma.fields.String(required=True)


class TaskPageSchema(PageMeta):
    items = ma.fields.List(ma.fields.Nested(TaskSchema), required=True)
    page = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "null when paging by cursor"}
    )
    next_cursor = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as cursor for the rows after this page; null at the end."},
    )


class AuditEventSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    occurred_at = ma.fields.AwareDateTime(required=True)
    actor = ma.fields.Nested(UserRef, required=True, allow_none=True)
    action = ma.fields.String(required=True, metadata={"example": "update"})
    changes = ma.fields.Dict(
        required=True,
        allow_none=True,
        metadata={"description": "Each changed field: [old, new]."},
    )
    request_id = ma.fields.String(required=True, allow_none=True)


class TaskHistorySchema(PageMeta):
    items = ma.fields.List(ma.fields.Nested(AuditEventSchema), required=True)


# -- fast serialisation ---------------------------------------------------------------------------
# The task list and the single-task read are the hottest routes (SPEC section 10 measures them
# against a bare psycopg endpoint). marshmallow's per-field machinery costs several times the
# whole query for a 20-row page, so task answers are built by these functions; the schemas
# above still document them, and a test checks both give the same JSON for the same rows.
def _ref_json(ref: RowUserRef | None) -> dict[str, Any] | None:
    return None if ref is None else {"id": ref.id, "username": ref.username}


def task_json(row: TaskRow) -> dict[str, Any]:
    """``TaskSchema().dump(row)``, fast."""
    return {
        "id": row.id,
        "task_name": row.task_name,
        "description": row.description,
        "status": row.status.value,
        "priority": row.priority.value,
        "due_date": None if row.due_date is None else row.due_date.isoformat(),
        "assignee": _ref_json(row.assignee),
        "created_by": _ref_json(row.created_by),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "deleted_at": None if row.deleted_at is None else row.deleted_at.isoformat(),
        "version": row.version,
    }


def task_page_json(page: TaskPage) -> dict[str, Any]:
    """``TaskPageSchema().dump(page)``, fast."""
    return {
        "items": [task_json(row) for row in page.items],
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
        "pages": page.pages,
        "next_cursor": page.next_cursor,
    }
