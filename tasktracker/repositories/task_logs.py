"""Task logs: the set-based daily snapshot and the log queries."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import JobStatus, SnapshotRun


class TaskLogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def last_snapshot_date(self) -> date | None:
        """The log date of the newest completed snapshot run."""
        return self.session.scalar(
            select(func.max(SnapshotRun.log_date)).where(
                SnapshotRun.status == JobStatus.SUCCEEDED.value
            )
        )
