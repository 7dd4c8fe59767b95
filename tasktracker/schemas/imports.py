"""Import schemas: the upload (multipart form and query options) and the import report."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload
from werkzeug.datastructures import FileStorage

from ..api.base import BaseSchema
from ..models import ImportJob, ImportMode

_MODE = {
    "description": "atomic (default): any bad row and nothing is imported. "
    "partial: the valid rows are imported, the bad ones reported.",
}
_DRY_RUN = {"description": "Validate only; nothing is written (default false)."}
_FORCE = {
    "description": "Import even if a file with the same content was imported before "
    "(default false)."
}


class ImportOptionsArgs(BaseSchema):
    """mode, dry_run and force: as query parameters or as form fields (same meaning)."""

    mode = ma.fields.Enum(ImportMode, by_value=True, metadata=_MODE)
    dry_run = ma.fields.Boolean(metadata=_DRY_RUN)
    force = ma.fields.Boolean(metadata=_FORCE)


class FileUpload(Upload):
    """A file part of the form; a plain text field of the same name is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Must be a file (a form part with a filename).")
        return value


class ImportUploadForm(ImportOptionsArgs):
    """The multipart/form-data body: the CSV file and, optionally, the options."""

    file = FileUpload(
        required=True,
        metadata={
            "description": "UTF-8 CSV (BOM allowed). Header (any order and case): task_name, "
            "priority (required), description, status, created_at, assigned_user, due_date."
        },
    )


class RowErrorSchema(ma.Schema):
    line = ma.fields.Integer(
        required=True, metadata={"description": "File line the row starts on (header = 1)."}
    )
    column = ma.fields.String(
        allow_none=True, metadata={"description": "null when the row as a whole is unreadable."}
    )
    message = ma.fields.String(required=True)


class ProgressSchema(ma.Schema):
    processed_rows = ma.fields.Integer(required=True)
    total_rows = ma.fields.Integer(
        required=True,
        metadata={"description": "Estimated from the line count until the import finishes."},
    )
    percent = ma.fields.Float(required=True)


class ImportReportSchema(ma.Schema):
    """An import and its report. In a 422 (atomic mode, bad rows) the same object is
    error.details."""

    class Meta:
        ordered = True

    id = ma.fields.Integer(required=True)
    status = ma.fields.String(
        required=True, metadata={"enum": ["queued", "running", "succeeded", "failed"]}
    )
    mode = ma.fields.String(required=True, metadata={"enum": [m.value for m in ImportMode]})
    dry_run = ma.fields.Boolean(required=True)
    total_rows = ma.fields.Integer(required=True, metadata={"description": "Data rows read."})
    imported = ma.fields.Integer(required=True, metadata={"description": "Tasks created."})
    failed = ma.fields.Integer(required=True, metadata={"description": "Rows with errors."})
    valid = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "Rows without errors (null until the import finishes)."},
    )
    errors = ma.fields.List(
        ma.fields.Nested(RowErrorSchema),
        required=True,
        metadata={"description": "The first 1,000 reasons, ordered by line, whole rows only."},
    )
    errors_truncated = ma.fields.Boolean(
        required=True, metadata={"description": "More rows failed than are listed."}
    )
    processed_rows = ma.fields.Integer(required=True)
    progress = ma.fields.Nested(ProgressSchema, required=True)
    message = ma.fields.String(allow_none=True)
    file_name = ma.fields.String(allow_none=True)
    sha256 = ma.fields.String(required=True)
    size_bytes = ma.fields.Integer(required=True)
    created_by_id = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)

    @ma.pre_dump
    def _report(self, job: ImportJob, **kwargs: Any) -> dict[str, Any]:
        finished = job.status in ("succeeded", "failed")
        errors = job.errors or []
        total = job.total_rows
        if finished:
            percent = 100.0
        else:
            percent = round(100 * min(job.processed_rows, total) / total, 1) if total else 0.0
        return {
            **{name: getattr(job, name) for name in _JOB_FIELDS},
            "errors": errors,
            "valid": total - job.failed if finished else None,
            "errors_truncated": job.failed > len({error["line"] for error in errors}),
            "progress": {
                "processed_rows": job.processed_rows,
                "total_rows": total,
                "percent": percent,
            },
        }


_JOB_FIELDS = (
    "id",
    "status",
    "mode",
    "dry_run",
    "total_rows",
    "imported",
    "failed",
    "processed_rows",
    "message",
    "file_name",
    "sha256",
    "size_bytes",
    "created_by_id",
    "created_at",
    "started_at",
    "finished_at",
)
