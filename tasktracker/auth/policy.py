"""The permission matrix of SPEC section 5, in one place. Services ask it; views never decide.

| action                            | admin | user                         | viewer |
| read tasks, logs, reports         | yes   | yes                          | yes    |
| create a task                     | yes   | yes                          | no     |
| update a task                     | any   | ones they created/are assigned | no   |
| delete, restore a task            | yes   | no                           | no     |
| import CSV, run the snapshot      | yes   | no                           | no     |
| manage users, read others' audit  | yes   | no                           | no     |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..errors import PermissionDenied
from ..models.enums import Role


class Permission(StrEnum):
    READ = "read"
    CREATE_TASK = "create_task"
    UPDATE_TASK = "update_task"
    UPDATE_ANY_TASK = "update_any_task"
    DELETE_TASK = "delete_task"
    RESTORE_TASK = "restore_task"
    SEE_DELETED = "see_deleted"
    IMPORT = "import"
    RUN_SNAPSHOT = "run_snapshot"
    MANAGE_USERS = "manage_users"
    READ_AUDIT = "read_audit"


_ALL = frozenset(Permission)
MATRIX: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _ALL,
    Role.USER: frozenset({Permission.READ, Permission.CREATE_TASK, Permission.UPDATE_TASK}),
    Role.VIEWER: frozenset({Permission.READ}),
}


@dataclass(frozen=True)
class Actor:
    """Who is asking: read from the database on every request (role changes apply at once)."""

    id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def can(actor: Actor, permission: Permission) -> bool:
    return permission in MATRIX.get(actor.role, frozenset())


def require(actor: Actor, permission: Permission) -> None:
    """Raise PermissionDenied unless the actor's role grants ``permission``."""
    if not can(actor, permission):
        raise PermissionDenied(
            f"Your role ({actor.role}) may not do this ({permission}).",
            {"required": permission.value, "role": actor.role.value},
        )


def can_update_task(actor: Actor, created_by_id: int, assignee_id: int | None) -> bool:
    """Admins update any task; users the ones they created or are assigned; viewers none."""
    if can(actor, Permission.UPDATE_ANY_TASK):
        return True
    return can(actor, Permission.UPDATE_TASK) and actor.id in (created_by_id, assignee_id)


def require_task_update(actor: Actor, created_by_id: int, assignee_id: int | None) -> None:
    if not can_update_task(actor, created_by_id, assignee_id):
        raise PermissionDenied(
            "You may only update tasks you created or are assigned to."
            if can(actor, Permission.UPDATE_TASK)
            else f"Your role ({actor.role}) may not update tasks."
        )
