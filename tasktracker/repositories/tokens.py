"""Refresh-token families and revoked access tokens (the durable side of revocation)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..models import RefreshToken, RevokedToken


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_refresh(self, token: RefreshToken) -> None:
        self.session.add(token)

    def get_refresh_for_update(self, jti: str) -> RefreshToken | None:
        return self.session.scalars(
            select(RefreshToken).where(RefreshToken.jti == jti).with_for_update()
        ).first()

    def revoke_family(self, family_id: str, now: datetime) -> None:
        self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def revoke_user_families(self, user_id: int, now: datetime) -> list[str]:
        families = self.session.scalars(
            select(RefreshToken.family_id)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .distinct()
        ).all()
        self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return list(families)

    def add_revoked(self, jti: str, user_id: int | None, expires_at: datetime) -> None:
        if self.session.get(RevokedToken, jti) is None:
            self.session.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at))

    def purge_expired(self, now: datetime) -> int:
        result = self.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
        self.session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
        return int(getattr(result, "rowcount", 0) or 0)
