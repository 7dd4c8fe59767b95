"""The unit of work: owns one transaction and hands out the repositories that use it.

Leaving the ``with`` block rolls back whatever was not committed; only an explicit
``commit()`` saves. Repositories never commit. ``with uow.reading():`` is the same for work
that only reads, without a transaction around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        self._read_only = False

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

    @contextmanager
    def reading(self) -> Iterator[Self]:
        """A unit that only reads: each statement runs on its own (autocommit).

        A transaction costs a read two extra round trips (BEGIN, then ROLLBACK when the
        connection goes back to the pool), which for a short read is most of its database
        time. Each statement sees its own snapshot, as in the READ COMMITTED transaction it
        replaces; use a plain ``with uow:`` (and a stricter isolation) when they must agree.
        Writing is refused: ``commit()`` and ``flush()`` raise, and nothing is flushed before
        a query.
        """
        with self:
            autoflush = self.session.autoflush
            self.session.autoflush = False
            self._read_only = True
            try:
                self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                yield self
            finally:
                self._read_only = False
                self.session.autoflush = autoflush

    def _refuse_writes(self) -> None:
        if self._read_only:
            raise RuntimeError("This unit of work only reads (uow.reading()).")

    def commit(self) -> None:
        self._refuse_writes()
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def flush(self) -> None:
        self._refuse_writes()
        self.session.flush()
