"""Reports over the task logs: per day, how many tasks were logged in each status and priority.

The counts are history as the snapshots recorded it: a task deleted later still counts on the
days it was logged, so a burndown chart does not change after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo

from ..auth.policy import Actor, Permission, require
from ..errors import InvalidInput
from ..models import TaskPriority, TaskStatus
from ..unit_of_work import UnitOfWork
from .snapshot import today

MAX_REPORT_DAYS = 366
DEFAULT_REPORT_DAYS = 30


@dataclass
class DayCounts:
    """One day of the report; every status and priority is present, zero when none."""

    date: date
    total: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in TaskStatus})
    by_priority: dict[str, int] = field(default_factory=lambda: {p.value: 0 for p in TaskPriority})


@dataclass(frozen=True)
class DailyReport:
    date_from: date
    date_to: date
    days: list[DayCounts]


def daily_report(
    uow: UnitOfWork,
    actor: Actor,
    *,
    tz: tzinfo,
    date_from: date | None = None,
    date_to: date | None = None,
) -> DailyReport:
    """Counts by status and by priority for every day from ``date_from`` to ``date_to``.

    Defaults: the last 30 days up to today (in ``tz``). At most 366 days per report.
    """
    require(actor, Permission.READ)
    date_to = date_to or (
        date_from + timedelta(days=DEFAULT_REPORT_DAYS - 1) if date_from else today(tz)
    )
    date_from = date_from or date_to - timedelta(days=DEFAULT_REPORT_DAYS - 1)
    if date_from > date_to:
        raise InvalidInput(
            "'from' must be on or before 'to'.", {"from": ["Must be on or before 'to'."]}
        )
    span = (date_to - date_from).days + 1
    if span > MAX_REPORT_DAYS:
        raise InvalidInput(
            f"A report covers at most {MAX_REPORT_DAYS} days.",
            {"to": [f"At most {MAX_REPORT_DAYS} days after 'from' (inclusive); got {span}."]},
        )
    days = {day: DayCounts(day) for day in (date_from + timedelta(days=i) for i in range(span))}
    with uow.reading():
        rows = uow.task_logs.daily_counts(date_from, date_to)
    for log_date, status, priority, count in rows:
        day = days[log_date]
        day.total += count
        day.by_status[status.value] += count
        day.by_priority[priority.value] += count
    return DailyReport(date_from, date_to, list(days.values()))
