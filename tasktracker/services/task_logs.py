"""Reading task logs: pages with filters, one log, one task's logs.

A log's status, priority and assignee are the snapshot of its day; its task is the task as it
is now. Logs of a deleted task are history that only admins (who may see deleted tasks) read.
"""

from __future__ import annotations

from dataclasses import replace

from ..auth.policy import Actor, Permission, can, require
from ..errors import NotFound
from ..models import TaskLog
from ..repositories.task_logs import LogFilters
from ..unit_of_work import UnitOfWork

SCOPE_ALL = "all"
SCOPE_LIVE = "live"

__all__ = ["LogFilters", "get_log", "list_logs", "list_task_logs", "visibility"]


def visibility(actor: Actor) -> str:
    """What part of the logs the actor may see: a cached page is only shared within one."""
    return SCOPE_ALL if can(actor, Permission.SEE_DELETED) else SCOPE_LIVE


def list_logs(
    uow: UnitOfWork, actor: Actor, filters: LogFilters, page: int, per_page: int
) -> tuple[list[TaskLog], int]:
    """One page of logs, newest date first then by id, and the total that match."""
    require(actor, Permission.READ)
    filters = replace(filters, include_deleted=visibility(actor) == SCOPE_ALL)
    with uow.reading():
        return uow.task_logs.page(filters, page, per_page)


def get_log(uow: UnitOfWork, actor: Actor, log_id: int) -> TaskLog:
    """One log with its task's current details."""
    require(actor, Permission.READ)
    with uow.reading():
        log = uow.task_logs.get(log_id, include_deleted=visibility(actor) == SCOPE_ALL)
        if log is None:
            raise NotFound(f"Task log {log_id} does not exist.")
        return log


def list_task_logs(
    uow: UnitOfWork, actor: Actor, task_id: int, filters: LogFilters, page: int, per_page: int
) -> tuple[list[TaskLog], int]:
    """One task's logs, newest first; 404 if the task does not exist (or is hidden)."""
    require(actor, Permission.READ)
    include_deleted = visibility(actor) == SCOPE_ALL
    filters = replace(filters, task_id=task_id, include_deleted=include_deleted)
    with uow.reading():
        if not uow.task_logs.task_visible(task_id, include_deleted=include_deleted):
            raise NotFound(f"Task {task_id} does not exist.")
        return uow.task_logs.page(filters, page, per_page)
