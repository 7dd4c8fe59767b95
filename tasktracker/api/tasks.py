"""Tasks: /api/v1/tasks (CRUD, list, export, restore, history) and the seed's /task routes.

Every single-task answer carries ``ETag: "<version>"``; writes take an optional If-Match and
answer 412 when it names an older version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Response, jsonify, request, stream_with_context
from flask.views import MethodView

from ..auth.flask import auth_required, current_actor
from ..auth.policy import Permission
from ..repositories.tasks import TaskRow
from ..schemas.common import PageArgs
from ..schemas.tasks import (
    SeedTaskCreateSchema,
    SeedTaskSchema,
    TaskCreateSchema,
    TaskFilterArgs,
    TaskHistorySchema,
    TaskPageSchema,
    TaskQueryArgs,
    TaskSchema,
    TaskUpdateSchema,
    task_json,
    task_page_json,
)
from ..services import export as export_service
from ..services import tasks as task_service
from ..services.cursors import cursor_codec
from ..services.tasks import IfMatch
from .base import ApiBlueprint
from .deps import container

blp = ApiBlueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Tasks")
seed = ApiBlueprint("seed-tasks", __name__, description="The seed's original routes")

# Ids are 32-bit; a longer number is simply no task (404), never a database error.
TASK_ID = "<id:task_id>"  # 1 .. 2**31-1 (see api.base.IdConverter); beyond it, a 404
ETAG_HEADER = {
    "ETag": {"description": 'The task\'s version, e.g. "3"', "schema": {"type": "string"}}
}
CREATED_HEADERS = {
    **ETAG_HEADER,
    "Location": {"description": "The new task's URL", "schema": {"type": "string"}},
}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": 'The ETag you last read, e.g. "3"; a stale one is 412 and changes nothing.',
}
IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "The ETag you hold; unchanged is 304 without a body.",
}


def _etag(row: TaskRow) -> dict[str, str]:
    return {"ETag": f'"{row.version}"'}


def _task(row: TaskRow, status: int = 200, message: str | None = None, **headers: str) -> Any:
    """The task's JSON (built without marshmallow: see ``schemas.tasks.task_json``) + ETag."""
    body = task_json(row)
    if message is not None:
        body["message"] = message  # the seed's routes answered with a message
    return jsonify(body), status, {**_etag(row), **headers}


def _if_match() -> IfMatch | None:
    """The If-Match header as versions (strong comparison: weak tags never match)."""
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match
    if tags.star_tag:
        return IfMatch(any=True)
    return IfMatch(frozenset(int(t) for t in tags.as_set() if t and t.isascii() and t.isdigit()))


def _task_url(row: TaskRow) -> str:
    return f"/api/v1/tasks/{row.id}"


def _create(data: dict[str, Any]) -> TaskRow:
    c = container()
    return task_service.create_task(c.uow(), current_actor(), data, c.cache, tz=c.settings.tz)


def _update(task_id: int, data: dict[str, Any], *, replace: bool) -> TaskRow:
    c = container()
    return task_service.update_task(
        c.uow(), current_actor(), task_id, data, c.cache, if_match=_if_match(), replace=replace
    )


def _delete(task_id: int) -> TaskRow:
    c = container()
    return task_service.delete_task(
        c.uow(), current_actor(), task_id, c.cache, if_match=_if_match()
    )


@blp.route("")
class Tasks(MethodView):
    @auth_required(Permission.READ)
    @blp.arguments(TaskQueryArgs, location="query", unknown=ma.RAISE)
    @blp.response(200, TaskPageSchema)
    @blp.errors(401, 403, 422, 429)
    def get(self, args: dict[str, Any]) -> Response:
        """List tasks: filters, sort, and pages by number or by cursor"""
        c = container()
        codec = cursor_codec(c.settings.jwt_secret_key, "tasks")
        page = task_service.list_tasks(
            c.uow(), current_actor(), args, codec=codec, tz=c.settings.tz
        )
        return jsonify(task_page_json(page))

    @auth_required(Permission.CREATE_TASK)
    @blp.arguments(TaskCreateSchema)
    @blp.response(201, TaskSchema, headers=CREATED_HEADERS)
    @blp.errors(400, 401, 403, 415, 422, 429)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a task"""
        row = _create(data)
        return _task(row, 201, Location=_task_url(row))


@blp.route("/export.csv")
class TaskExport(MethodView):
    @auth_required(Permission.READ)
    @blp.arguments(TaskFilterArgs, location="query", unknown=ma.RAISE)
    @blp.response(
        200,
        {"type": "string"},
        content_type="text/csv",
        description="CSV in the import format: " + ", ".join(export_service.COLUMNS),
    )
    @blp.errors(401, 403, 422, 429)
    def get(self, args: dict[str, Any]) -> Response:
        """Export the tasks the filters select as CSV (streamed)"""
        c = container()
        chunks = export_service.export_tasks(c.uow(), current_actor(), args, tz=c.settings.tz)
        name = f"tasks-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
        return Response(
            stream_with_context(chunks),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


@blp.route(f"/{TASK_ID}")
class TaskById(MethodView):
    @auth_required(Permission.READ)
    @blp.doc(parameters=[IF_NONE_MATCH])
    @blp.response(200, TaskSchema, headers=ETAG_HEADER)
    @blp.alt_response(304, description="Not modified (If-None-Match)", headers=ETAG_HEADER)
    @blp.errors(401, 404, 429)
    def get(self, task_id: int) -> Any:
        """One task (deleted ones for admins only)"""
        c = container()
        row = task_service.get_task(c.uow(), current_actor(), task_id)
        if request.if_none_match.contains(str(row.version)):
            return Response(status=304, headers=_etag(row))
        return _task(row)

    @auth_required(Permission.UPDATE_TASK)
    @blp.doc(parameters=[IF_MATCH])
    @blp.arguments(TaskCreateSchema)
    @blp.response(200, TaskSchema, headers=ETAG_HEADER)
    @blp.errors(400, 401, 403, 404, 409, 412, 415, 422, 429)
    def put(self, data: dict[str, Any], task_id: int) -> Any:
        """Replace a task (fields left out take their defaults)"""
        return _task(_update(task_id, data, replace=True))

    @auth_required(Permission.UPDATE_TASK)
    @blp.doc(parameters=[IF_MATCH])
    @blp.arguments(TaskUpdateSchema)
    @blp.response(200, TaskSchema, headers=ETAG_HEADER)
    @blp.errors(400, 401, 403, 404, 409, 412, 415, 422, 429)
    def patch(self, data: dict[str, Any], task_id: int) -> Any:
        """Change the fields named"""
        return _task(_update(task_id, data, replace=False))

    @auth_required(Permission.DELETE_TASK)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(204, headers=ETAG_HEADER)
    @blp.errors(401, 403, 404, 409, 412, 429)
    def delete(self, task_id: int) -> Any:
        """Soft-delete a task (admin)"""
        row = _delete(task_id)
        return None, 204, _etag(row)


@blp.route(f"/{TASK_ID}/restore")
class TaskRestore(MethodView):
    @auth_required(Permission.RESTORE_TASK)
    @blp.doc(parameters=[IF_MATCH])
    @blp.response(200, TaskSchema, headers=ETAG_HEADER)
    @blp.errors(401, 403, 404, 409, 412, 429)
    def post(self, task_id: int) -> Any:
        """Bring back a soft-deleted task (admin)"""
        c = container()
        row = task_service.restore_task(
            c.uow(), current_actor(), task_id, c.cache, if_match=_if_match()
        )
        return _task(row)


@blp.route(f"/{TASK_ID}/history")
class TaskHistory(MethodView):
    @auth_required(Permission.READ)
    @blp.arguments(PageArgs, location="query", unknown=ma.RAISE)
    @blp.response(200, TaskHistorySchema)
    @blp.errors(401, 404, 422, 429)
    def get(self, args: dict[str, int], task_id: int) -> task_service.HistoryPage:
        """The task's audit events (create, each change with old and new values, delete,
        restore), oldest first"""
        return task_service.task_history(
            container().uow(), current_actor(), task_id, args["page"], args["per_page"]
        )


# -- the seed's routes: its field names, the same services ------------------------------------
@seed.route("/task")
class SeedTask(MethodView):
    @auth_required(Permission.CREATE_TASK)
    @seed.arguments(SeedTaskCreateSchema)
    @seed.response(201, SeedTaskSchema, headers=CREATED_HEADERS)
    @seed.errors(400, 401, 403, 415, 422, 429)
    def post(self, data: dict[str, Any]) -> Any:
        """The seed's create-task route: 201 with the new task and its id"""
        row = _create(data)
        return _task(row, 201, "Task created", Location=_task_url(row))


@seed.route(f"/task/{TASK_ID}")
class SeedTaskById(MethodView):
    @auth_required(Permission.UPDATE_TASK)
    @seed.doc(parameters=[IF_MATCH])
    @seed.arguments(TaskUpdateSchema)
    @seed.response(200, SeedTaskSchema, headers=ETAG_HEADER)
    @seed.errors(400, 401, 403, 404, 409, 412, 415, 422, 429)
    def put(self, data: dict[str, Any], task_id: int) -> Any:
        """The seed's update route: changes only the fields named (like PATCH)"""
        return _task(_update(task_id, data, replace=False), message="Task updated")

    @auth_required(Permission.DELETE_TASK)
    @seed.doc(parameters=[IF_MATCH])
    @seed.response(200, SeedTaskSchema, headers=ETAG_HEADER)
    @seed.errors(401, 403, 404, 409, 412, 429)
    def delete(self, task_id: int) -> Any:
        """The seed's delete route: a soft delete (admin)"""
        return _task(_delete(task_id), message="Task soft-deleted")


BLUEPRINTS = [blp, seed]
