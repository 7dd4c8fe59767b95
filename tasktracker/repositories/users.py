"""Users: look-ups by id, name or email, pages of users, admin counts."""

from __future__ import annotations

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.orm import Session

from ..models import RevokedToken, Role, User

# The per-request access check, built once (its parameters: user_id, jti, family; a token
# without a family passes its jti twice).
_ACCESS = select(
    User.username,
    User.role,
    User.is_active,
    exists().where(RevokedToken.jti.in_([bindparam("jti"), bindparam("family")])).label("revoked"),
).where(User.id == bindparam("user_id"))


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, user: User) -> User:
        self.session.add(user)
        return user

    def get(self, user_id: int, *, for_update: bool = False) -> User | None:
        if for_update:
            return self.session.scalars(
                select(User).where(User.id == user_id).with_for_update()
            ).first()
        return self.session.get(User, user_id)

    def access(
        self, user_id: int, jti: str, family: str | None
    ) -> tuple[str, str, bool, bool] | None:
        """(username, role, is_active, token or family revoked) of a user, in one statement.

        A prebuilt Core statement on the session's connection, not an ORM load: this runs on
        every authenticated request.
        """
        found = (
            self.session.connection()
            .execute(_ACCESS, {"user_id": user_id, "jti": jti, "family": family or jti})
            .first()
        )
        return None if found is None else (found[0], found[1], found[2], found[3])

    def by_username(self, username: str) -> User | None:
        return self.session.scalars(
            select(User).where(func.lower(User.username) == username.lower())
        ).first()

    def by_login(self, name: str) -> User | None:
        """A user by username or email (case-insensitive)."""
        lowered = name.lower()
        return self.session.scalars(
            select(User)
            .where(or_(func.lower(User.username) == lowered, func.lower(User.email) == lowered))
            .order_by(User.id)
        ).first()

    def name_taken(
        self, username: str | None, email: str, *, exclude_id: int | None = None
    ) -> list[str]:
        """Which of username/email (case-insensitive) already belong to another user."""
        matches = [func.lower(User.email) == email.lower()]
        if username is not None:
            matches.append(func.lower(User.username) == username.lower())
        query = select(User.username, User.email).where(or_(*matches))
        if exclude_id is not None:
            query = query.where(User.id != exclude_id)
        taken: set[str] = set()
        for row in self.session.execute(query):
            if username is not None and row.username.lower() == username.lower():
                taken.add("username")
            if row.email.lower() == email.lower():
                taken.add("email")
        return sorted(taken)

    def page(self, page: int, per_page: int) -> tuple[list[User], int]:
        total = self.session.scalar(select(func.count()).select_from(User)) or 0
        users = self.session.scalars(
            select(User).order_by(User.id).limit(per_page).offset((page - 1) * per_page)
        ).all()
        return list(users), total

    def count_active_admins(self, *, lock: bool = False) -> int:
        query = select(User.id).where(User.role == Role.ADMIN.value, User.is_active.is_(True))
        if lock:
            # Lock the admin rows so two concurrent demotions cannot both see "another admin".
            query = query.with_for_update()
        return len(self.session.scalars(query).all())

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(User)) or 0

    def by_names(self, names: list[str]) -> dict[str, User]:
        """Active users whose username or email (lowercased) is in ``names``."""
        lowered = {n.lower() for n in names}
        if not lowered:
            return {}
        rows = self.session.scalars(
            select(User).where(
                User.is_active.is_(True),
                or_(func.lower(User.username).in_(lowered), func.lower(User.email).in_(lowered)),
            )
        ).all()
        found: dict[str, User] = {}
        for user in rows:
            found[user.username.lower()] = user
            found[user.email.lower()] = user
        return found
