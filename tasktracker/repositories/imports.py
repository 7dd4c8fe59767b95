"""Import jobs and the set-based CSV import."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import ImportJob


class ImportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, job: ImportJob) -> ImportJob:
        self.session.add(job)
        return job

    def get(self, job_id: int) -> ImportJob | None:
        return self.session.get(ImportJob, job_id)
