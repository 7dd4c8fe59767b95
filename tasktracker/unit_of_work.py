"""The unit of work: owns one transaction and hands out the repositories that use it.

Leaving the ``with`` block rolls back whatever was not committed; only an explicit
``commit()`` saves. Repositories never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session

from .repositories.audit import AuditRepository
from .repositories.imports import ImportRepository
from .repositories.task_logs import TaskLogRepository
from .repositories.tasks import TaskRepository
from .repositories.tokens import TokenRepository
from .repositories.users import UserRepository


class UnitOfWork:
    """One transaction over a SQLAlchemy session."""

    users: UserRepository
    tokens: TokenRepository
    tasks: TaskRepository
    task_logs: TaskLogRepository
    audit: AuditRepository
    imports: ImportRepository

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def __enter__(self) -> Self:
        self.session = self._session_factory()
        self.users = UserRepository(self.session)
        self.tokens = TokenRepository(self.session)
        self.tasks = TaskRepository(self.session)
        self.task_logs = TaskLogRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.imports = ImportRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Anything not committed inside the block is thrown away, error or not. close() rolls
        # back and detaches the loaded objects without expiring them, so a caller can still
        # serialise what the service returned.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def flush(self) -> None:
        self.session.flush()
