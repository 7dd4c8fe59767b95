"""User management: create, change, list; the first admin; the last-admin rule."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from ..auth.policy import Actor, Permission, require
from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..models import Role, User
from ..unit_of_work import UnitOfWork

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,50}$")


def actor_of(user: User) -> Actor:
    return Actor(id=user.id, username=user.username, role=Role(user.role))


def check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH):
        raise InvalidInput(
            "The password does not meet the rules.",
            {
                "password": [
                    f"Length must be between {MIN_PASSWORD_LENGTH} and {MAX_PASSWORD_LENGTH}."
                ]
            },
        )


@dataclass(frozen=True)
class NewUser:
    username: str
    email: str
    password: str
    role: Role = Role.USER


def sign_up(uow: UnitOfWork, data: NewUser) -> User:
    """Open sign-up (when the setting allows it): anyone may create a plain user."""
    if data.role != Role.USER:
        raise PermissionDenied("Sign-up creates plain users only.", {"role": ["Must be 'user'."]})
    return create_user(uow, None, data)


def create_user(uow: UnitOfWork, actor: Actor | None, data: NewUser) -> User:
    """Create a user. ``actor`` must be an admin; None means the system (CLI, bootstrap)."""
    if actor is not None:
        require(actor, Permission.MANAGE_USERS)
    check_password_rules(data.password)
    with uow:
        taken = uow.users.name_taken(data.username, data.email)
        if taken:
            raise Conflict(
                f"A user with this {' and '.join(taken)} already exists.",
                {field: ["Already taken."] for field in taken},
            )
        user = uow.users.add(
            User(
                username=data.username,
                email=data.email.lower(),
                password_hash=hash_password(data.password),
                role=data.role.value,
                is_active=True,
            )
        )
        uow.flush()
        uow.audit.record(
            actor_id=actor.id if actor else None,
            action="create",
            entity="user",
            entity_id=user.id,
            changes={
                "username": [None, user.username],
                "email": [None, user.email],
                "role": [None, user.role],
            },
        )
        uow.commit()
        return user


def get_user(uow: UnitOfWork, actor: Actor, user_id: int) -> User:
    """One user; admins read anyone, others only themselves."""
    if user_id != actor.id:
        require(actor, Permission.MANAGE_USERS)
    with uow:
        user = uow.users.get(user_id)
        if user is None:
            raise NotFound(f"User {user_id} does not exist.")
        return user


def list_users(uow: UnitOfWork, actor: Actor, page: int, per_page: int) -> tuple[list[User], int]:
    require(actor, Permission.MANAGE_USERS)
    with uow:
        return uow.users.page(page, per_page)


def update_user(
    uow: UnitOfWork,
    actor: Actor,
    user_id: int,
    changes: dict[str, Any],
) -> User:
    """Change role, email, is_active or password (admin). Keeps at least one active admin."""
    require(actor, Permission.MANAGE_USERS)
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None:
            raise NotFound(f"User {user_id} does not exist.")
        diff: dict[str, list[Any]] = {}
        if "email" in changes and changes["email"].lower() != user.email:
            email = changes["email"].lower()
            if "email" in uow.users.name_taken(None, email, exclude_id=user.id):
                raise Conflict("A user with this email already exists.", {"email": ["Taken."]})
            diff["email"] = [user.email, email]
            user.email = email
        new_role = Role(changes["role"]).value if "role" in changes else user.role
        new_active = changes.get("is_active", user.is_active)
        losing_admin = (
            user.role == Role.ADMIN.value
            and user.is_active
            and (new_role != Role.ADMIN.value or not new_active)
        )
        if losing_admin and uow.users.count_active_admins(lock=True) <= 1:
            raise Conflict(
                "The last active admin cannot be demoted or deactivated.",
                {"role" if new_role != Role.ADMIN.value else "is_active": ["Last active admin."]},
            )
        if new_role != user.role:
            diff["role"] = [user.role, new_role]
            user.role = new_role
        if new_active != user.is_active:
            diff["is_active"] = [user.is_active, new_active]
            user.is_active = new_active
        revoke_sessions = False
        if "password" in changes:
            check_password_rules(changes["password"])
            user.password_hash = hash_password(changes["password"])
            diff["password"] = ["***", "***"]  # never the value, only that it changed
            revoke_sessions = True
        if diff.get("is_active") == [True, False]:
            revoke_sessions = True
        if revoke_sessions:
            # A reset password or a deactivation ends every open session of that user.
            now = datetime.now(UTC)
            families = uow.tokens.revoke_user_families(user.id, now)
            for family in families:
                uow.tokens.add_revoked(family, user.id, now + _family_lifetime())
        if diff:
            uow.audit.record(
                actor_id=actor.id, action="update", entity="user", entity_id=user.id, changes=diff
            )
        uow.commit()
    return user


def _family_lifetime() -> timedelta:
    # Long enough to outlive any refresh token of the family.
    return timedelta(days=366)


def ensure_admin(
    uow: UnitOfWork, username: str, password: str | None, email: str | None
) -> tuple[User | None, str | None]:
    """Create the first admin unless one exists. Returns the new admin and, when no password
    was configured, the generated one (to be printed once)."""
    with uow:
        if uow.users.by_username(username) is not None or uow.users.count_active_admins() > 0:
            return None, None
    if not USERNAME_RE.match(username):
        raise InvalidInput("TASKTRACKER_ADMIN_USERNAME is not a valid username.")
    generated = None if password else secrets.token_urlsafe(18)
    email = email or f"{username}@localhost.localdomain"
    user = create_user(uow, None, NewUser(username, email, password or generated or "", Role.ADMIN))
    return user, generated
