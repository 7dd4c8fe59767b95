"""Task-log schemas: list and report parameters, logs, snapshot runs and reports out."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from webargs.fields import DelimitedList

from ..api.base import BaseSchema
from ..models import JobStatus, TaskPriority, TaskStatus
from .common import PageArgs, PageMeta
from .tasks import EnumName  # the same case-insensitive values as the task list's filters

# -- parameters in -------------------------------------------------------------------------------


class SeedLogQueryArgs(PageArgs):
    """The seed's GET /tasks: pages of logs, optionally of one date."""

    date = ma.fields.Date(metadata={"description": "Only the logs of this date (cached)."})


class LogQueryArgs(PageArgs):
    date = ma.fields.Date(metadata={"description": "Only the logs of this date (cached)."})
    date_from = ma.fields.Date(
        data_key="from", metadata={"description": "Logs on or after this date."}
    )
    date_to = ma.fields.Date(
        data_key="to", metadata={"description": "Logs on or before this date."}
    )
    task = ma.fields.Integer(
        strict=False,
        validate=ma.validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "Only the logs of this task id."},
    )
    status = DelimitedList(
        EnumName(TaskStatus),
        metadata={"description": "Comma-separated statuses (as logged that day)."},
    )
    priority = DelimitedList(
        EnumName(TaskPriority),
        metadata={"description": "Comma-separated priorities (as logged that day)."},
    )

    @ma.validates_schema
    def _dates(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("date") and (data.get("date_from") or data.get("date_to")):
            raise ma.ValidationError({"date": ["Give either 'date' or 'from'/'to', not both."]})
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ma.ValidationError({"from": ["Must be on or before 'to'."]})


class TaskLogsArgs(PageArgs):
    """One task's logs: a date range and pages."""

    date_from = ma.fields.Date(
        data_key="from", metadata={"description": "Logs on or after this date."}
    )
    date_to = ma.fields.Date(
        data_key="to", metadata={"description": "Logs on or before this date."}
    )

    @ma.validates_schema
    def _dates(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ma.ValidationError({"from": ["Must be on or before 'to'."]})


class SnapshotRequestSchema(BaseSchema):
    date = ma.fields.Date(
        metadata={"description": "The date to snapshot (default: today in the configured zone)."}
    )


class ReportArgs(BaseSchema):
    date_from = ma.fields.Date(
        data_key="from", metadata={"description": "First day (default: 29 days before 'to')."}
    )
    date_to = ma.fields.Date(
        data_key="to", metadata={"description": "Last day, inclusive (default: today)."}
    )


# -- bodies out ----------------------------------------------------------------------------------


class LogTaskSchema(ma.Schema):
    """The task as it is now."""

    id = ma.fields.Integer(required=True)
    task_name = ma.fields.String(required=True)
    description = ma.fields.String(required=True, allow_none=True)
    priority = ma.fields.Enum(TaskPriority, by_value=True, required=True)
    status = ma.fields.Enum(TaskStatus, by_value=True, required=True)
    deleted_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class TaskLogSchema(ma.Schema):
    """One task's state on one day; ``task`` is the task as it is now."""

    id = ma.fields.Integer(required=True)
    task_id = ma.fields.Integer(required=True)
    log_date = ma.fields.Date(required=True)
    status = ma.fields.Enum(TaskStatus, by_value=True, required=True)
    priority = ma.fields.Enum(TaskPriority, by_value=True, required=True)
    assignee_id = ma.fields.Integer(required=True, allow_none=True)
    task = ma.fields.Nested(LogTaskSchema, required=True)


class TaskLogPageSchema(PageMeta):
    items = ma.fields.List(ma.fields.Nested(TaskLogSchema), required=True)
    next_cursor = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Always null: log pages use page/per_page."},
    )


class SeedTaskLogPageSchema(PageMeta):
    tasks = ma.fields.List(ma.fields.Nested(TaskLogSchema), required=True)


class SnapshotRunSchema(ma.Schema):
    """A snapshot run, readable by its job id while it is queued, running and after."""

    id = ma.fields.String(required=True)
    job_id = ma.fields.Function(
        lambda run: run.id,
        required=True,
        metadata={"type": "string", "description": "The same as id: the Celery job's id."},
    )
    status = ma.fields.String(
        required=True, validate=ma.validate.OneOf([s.value for s in JobStatus])
    )
    log_date = ma.fields.Date(required=True)
    trigger = ma.fields.String(required=True, validate=ma.validate.OneOf(["schedule", "manual"]))
    created = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "Logs this run wrote."}
    )
    existing = ma.fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Active tasks that already had a log for the date."},
    )
    error = ma.fields.String(required=True, allow_none=True)
    requested_by_id = ma.fields.Integer(required=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
    started_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    finished_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class CountsByStatus(ma.Schema):
    todo = ma.fields.Integer(required=True)
    in_progress = ma.fields.Integer(required=True)
    done = ma.fields.Integer(required=True)


class CountsByPriority(ma.Schema):
    low = ma.fields.Integer(required=True)
    medium = ma.fields.Integer(required=True)
    high = ma.fields.Integer(required=True)


class DayCountsSchema(ma.Schema):
    date = ma.fields.Date(required=True)
    total = ma.fields.Integer(required=True)
    by_status = ma.fields.Nested(CountsByStatus, required=True)
    by_priority = ma.fields.Nested(CountsByPriority, required=True)


class DailyReportSchema(ma.Schema):
    date_from = ma.fields.Date(required=True, data_key="from")
    date_to = ma.fields.Date(required=True, data_key="to")
    days = ma.fields.List(ma.fields.Nested(DayCountsSchema), required=True)
