"""SQLAlchemy 2 typed models: the whole schema of SPEC section 3."""

from .audit import AuditEvent, ImportJob, SnapshotRun
from .base import Base, db
from .enums import ImportMode, ImportStatus, JobStatus, Role, TaskPriority, TaskStatus
from .task import PRIORITY_TYPE, SEARCH_DOCUMENT_SQL, STATUS_TYPE, Task, TaskLog
from .types import utcnow
from .user import RefreshToken, RevokedToken, User

__all__ = [
    "PRIORITY_TYPE",
    "SEARCH_DOCUMENT_SQL",
    "STATUS_TYPE",
    "AuditEvent",
    "Base",
    "ImportJob",
    "ImportMode",
    "ImportStatus",
    "JobStatus",
    "RefreshToken",
    "RevokedToken",
    "Role",
    "SnapshotRun",
    "Task",
    "TaskLog",
    "TaskPriority",
    "TaskStatus",
    "User",
    "db",
    "utcnow",
]
