"""Column types shared by the models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Dialect, SmallInteger, func
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.Enum)


class OrdinalEnum(TypeDecorator[E], Generic[E]):
    """Stores an enum as the SMALLINT of its position in declaration order.

    Sorting by the column then follows the domain order (low < medium < high,
    todo < in_progress < done) on every database, and a btree index serves that sort.
    """

    impl = SmallInteger
    cache_ok = True

    def __init__(self, enum_cls: type[E]) -> None:
        super().__init__()
        self.enum_cls = enum_cls
        self._members: list[E] = list(enum_cls)
        self._codes: dict[E, int] = {member: i for i, member in enumerate(self._members)}

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, enum.Enum):
            return value
        return self._codes[self.enum_cls(value)]

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self._members[value]

    def code(self, value: E | str) -> int:
        """The stored integer for a member (for hand-written set-based SQL)."""
        return self._codes[self.enum_cls(value)]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back in UTC (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware (the one clock the models use)."""
    return datetime.now(UTC)


def created_column() -> Mapped[datetime]:
    """A creation timestamp: set by Python for ORM inserts, by the database for bulk SQL."""
    return mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


def updated_column() -> Mapped[datetime]:
    """A last-change timestamp, bumped by every ORM update."""
    return mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now())
