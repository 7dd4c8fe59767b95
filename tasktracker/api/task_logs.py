"""Task logs: /api/v1/task-logs, /api/v1/tasks/{id}/logs, and the seed's GET /tasks,
GET /task/<logger_id> and POST /log-tasks.

Date-filtered pages are served from the shared cache as the exact bytes of an earlier answer;
see :func:`cached_when_dated`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any, TypeVar, cast
from uuid import UUID

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView

from ..auth.flask import auth_required, current_actor
from ..auth.policy import Permission
from ..jobs.snapshot_jobs import enqueue_requested_run
from ..models import SnapshotRun, TaskLog
from ..repositories.task_logs import LogFilters
from ..schemas.common import pages_for
from ..schemas.task_logs import (
    LogQueryArgs,
    SeedLogQueryArgs,
    SeedTaskLogPageSchema,
    SnapshotRequestSchema,
    SnapshotRunSchema,
    TaskLogPageSchema,
    TaskLogsArgs,
    TaskLogSchema,
)
from ..services import log_cache
from ..services import snapshot as snapshot_service
from ..services import task_logs as log_service
from .base import ApiBlueprint
from .deps import container

F = TypeVar("F", bound=Callable[..., Any])

# Path converters bounded by the columns' types, so an id no column can hold is a 404 rather
# than a database error.
LOG_ID = "bigid"  # task_logs.id is a BIGINT (api.base.BigIdConverter)
TASK_ID = "id"  # tasks.id is an INTEGER (api.base.IdConverter)

blp = ApiBlueprint(
    "task-logs",
    __name__,
    url_prefix="/api/v1",
    description="Daily task logs (snapshots of every active task) and snapshot runs",
)
seed = ApiBlueprint("seed-task-logs", __name__, description="The seed's original routes")

CACHE_HEADER = {
    "X-Cache": {
        "description": "HIT or MISS: whether a date-filtered page came from the cache",
        "schema": {"type": "string", "enum": ["HIT", "MISS"]},
    }
}


def cached_when_dated(route: str, schema: type[ma.Schema]) -> Callable[[F], F]:
    """Serve a ``date``-filtered page from the shared cache, and fill the cache on a miss.

    Goes between ``auth_required`` and ``arguments``: a hit answers the stored JSON bytes
    without parsing, querying or serialising, in one cache round trip with the log-cache
    version (read before the database, so a write during a miss leaves the page under a
    stale version). The key is the route, what the caller may see, and the whole query:
    every parameter ``schema`` knows (the parser ignores the others, so they cannot change
    the page and must not multiply cache entries). Only 200 answers are stored, so a query
    that does not validate never reaches the cache.
    """
    known = frozenset(field.data_key or name for name, field in schema().fields.items())

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if "date" not in request.args:
                return view(*args, **kwargs)
            c = container()
            scope = log_service.visibility(current_actor())
            query = [(k, v) for k, v in request.args.items(multi=True) if k in known]
            page = log_cache.read_page(c.cache, log_cache.page_key(route, scope, query))
            if page.body is not None:
                hit = current_app.response_class(page.body, mimetype="application/json")
                hit.headers["X-Cache"] = "HIT"
                return hit
            response = cast(Response, view(*args, **kwargs))
            if response.status_code == 200:
                log_cache.store_page(
                    c.cache, page, response.get_data(), c.settings.cache_ttl_seconds
                )
            response.headers["X-Cache"] = "MISS"
            return response

        return cast(F, wrapper)

    return decorator


def _page(logs: list[TaskLog], total: int, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "total": total,
        "page": args["page"],
        "per_page": args["per_page"],
        "pages": pages_for(total, args["per_page"]),
        "items": logs,
    }


def _list(filters: LogFilters, args: dict[str, Any]) -> dict[str, Any]:
    logs, total = log_service.list_logs(
        container().uow(), current_actor(), filters, args["page"], args["per_page"]
    )
    return _page(logs, total, args)


def _request_run(log_date: date | None) -> tuple[SnapshotRun, int, dict[str, str]]:
    c = container()
    run = snapshot_service.request_run(
        c.uow(),
        current_actor(),
        tz=c.settings.tz,
        enqueue=enqueue_requested_run,
        log_date=log_date,
    )
    return run, 202, {"Location": f"/api/v1/task-logs/runs/{run.id}"}


# -- /api/v1 -------------------------------------------------------------------------------------


@blp.route("/task-logs")
class TaskLogs(MethodView):
    @auth_required()
    @cached_when_dated("v1-task-logs", LogQueryArgs)
    @blp.arguments(LogQueryArgs, location="query")
    @blp.response(200, TaskLogPageSchema, headers=CACHE_HEADER)
    @blp.errors(401, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List task logs, newest date first; filter by date or range, task, status, priority"""
        filters = LogFilters(
            on=args.get("date"),
            date_from=args.get("date_from"),
            date_to=args.get("date_to"),
            task_id=args.get("task"),
            statuses=tuple(args.get("status") or ()),
            priorities=tuple(args.get("priority") or ()),
        )
        return {**_list(filters, args), "next_cursor": None}


@blp.route(f"/task-logs/<{LOG_ID}:log_id>")
class TaskLogById(MethodView):
    @auth_required()
    @blp.response(200, TaskLogSchema)
    @blp.errors(401, 404)
    def get(self, log_id: int) -> TaskLog:
        """One task log, with its task as it is now"""
        return log_service.get_log(container().uow(), current_actor(), log_id)


@blp.route("/task-logs/run")
class SnapshotRunRequest(MethodView):
    @auth_required(Permission.RUN_SNAPSHOT)
    @blp.arguments(SnapshotRequestSchema, required=False)
    @blp.response(202, SnapshotRunSchema)
    @blp.errors(400, 401, 403, 415, 422, 503)
    def post(self, data: dict[str, Any]) -> tuple[SnapshotRun, int, dict[str, str]]:
        """Take the snapshot now (admin): 202 with the job id; already finished in embedded mode"""
        return _request_run(data.get("date"))


@blp.route("/task-logs/runs/<uuid:job_id>")
class SnapshotRunById(MethodView):
    @auth_required()
    @blp.response(200, SnapshotRunSchema)
    @blp.errors(401, 404)
    def get(self, job_id: UUID) -> SnapshotRun:
        """A snapshot run's status and counts, by its job id"""
        return snapshot_service.get_run(container().uow(), current_actor(), str(job_id))


@blp.route(f"/tasks/<{TASK_ID}:task_id>/logs")
class LogsOfTask(MethodView):
    @auth_required()
    @blp.arguments(TaskLogsArgs, location="query")
    @blp.response(200, TaskLogPageSchema)
    @blp.errors(401, 404, 422)
    def get(self, args: dict[str, Any], task_id: int) -> dict[str, Any]:
        """One task's daily logs, newest first"""
        filters = LogFilters(date_from=args.get("date_from"), date_to=args.get("date_to"))
        logs, total = log_service.list_task_logs(
            container().uow(), current_actor(), task_id, filters, args["page"], args["per_page"]
        )
        return {**_page(logs, total, args), "next_cursor": None}


# -- the seed's routes ---------------------------------------------------------------------------


@seed.route("/tasks")
class SeedTaskLogs(MethodView):
    @auth_required()
    @cached_when_dated("seed-tasks", SeedLogQueryArgs)
    @seed.arguments(SeedLogQueryArgs, location="query")
    @seed.response(200, SeedTaskLogPageSchema, headers=CACHE_HEADER)
    @seed.errors(401, 422)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Pages of task logs, newest date first (the seed's route); ?date= pages are cached"""
        body = _list(LogFilters(on=args.get("date")), args)
        body["tasks"] = body.pop("items")
        return body


# The seed calls this id "logger_id": it is a log's id. PUT and DELETE on the same URL (the
# tasks API) name it task_id with an INTEGER bound; OpenAPI allows one templated path, so this
# rule matches theirs (a log id beyond 2**31 - 1 is served by /api/v1/task-logs/{id}).
@seed.route(f"/task/<{TASK_ID}:task_id>")
class SeedTaskLog(MethodView):
    @auth_required()
    @seed.response(200, TaskLogSchema)
    @seed.errors(401, 404)
    def get(self, task_id: int) -> TaskLog:
        """One task log by the log's id (the seed's logger_id), with its task's details"""
        return log_service.get_log(container().uow(), current_actor(), task_id)


@seed.route("/log-tasks")
class SeedLogTasks(MethodView):
    @auth_required(Permission.RUN_SNAPSHOT)
    @seed.arguments(SnapshotRequestSchema, required=False)
    @seed.response(202, SnapshotRunSchema)
    @seed.errors(400, 401, 403, 415, 422, 503)
    def post(self, data: dict[str, Any]) -> tuple[SnapshotRun, int, dict[str, str]]:
        """Take the snapshot now (admin, the seed's route): 202 with the run"""
        return _request_run(data.get("date"))


BLUEPRINTS = [blp, seed]
