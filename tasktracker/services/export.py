"""CSV export of tasks: the list's filters, streamed in constant memory, re-importable.

The columns are the seed's import format, so an export is a valid import file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import tzinfo
from typing import Any

from ..auth.policy import Actor
from ..repositories.tasks import TaskRow
from ..unit_of_work import UnitOfWork
from .csv_rows import COLUMNS, neutralise
from .tasks import ListQuery, build_query

BATCH_SIZE = 1000


def _cells(row: TaskRow, tz: tzinfo) -> list[str]:
    return [
        neutralise(row.task_name),
        neutralise(row.description or ""),
        row.status.value,
        row.priority.value,
        row.created_at.astimezone(tz).date().isoformat(),
        neutralise(row.assignee.username) if row.assignee else "",
        row.due_date.isoformat() if row.due_date else "",
    ]


def export_tasks(
    uow: UnitOfWork,
    actor: Actor,
    params: Mapping[str, Any],
    *,
    tz: tzinfo,
    batch_size: int = BATCH_SIZE,
) -> Iterator[str]:
    """Check the request now (403/422 before any byte is sent), then stream CSV text."""
    query = build_query(actor, params, tz)
    return _generate(uow, query, tz, batch_size)


def _generate(uow: UnitOfWork, query: ListQuery, tz: tzinfo, batch_size: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def drain() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield drain()
    with uow:
        for batch in uow.tasks.stream(query.filters, query.sort, batch_size=batch_size):
            writer.writerows(_cells(row, tz) for row in batch)
            yield drain()
