"""Login, refresh-token rotation, logout and the per-request token check.

Revocation is durable in the database and checked there on every request, in the same
statement that reads the caller's role and active flag (SPEC 8 has both read on every
request). That costs no round trip beyond the one the role needs, never depends on Redis,
and a cache that lost its keys (Redis keeps nothing on disk) cannot let a revoked token in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..auth.passwords import MAX_PASSWORD_LENGTH, hash_password, needs_rehash, verify_password
from ..auth.policy import Actor
from ..auth.tokens import TokenCodec, TokenPair
from ..errors import AuthenticationFailed
from ..models import RefreshToken, Role
from ..unit_of_work import UnitOfWork

BAD_CREDENTIALS = "Invalid username or password."


@dataclass(frozen=True)
class LoginResult:
    user_id: int
    pair: TokenPair


def _persist_pair(uow: UnitOfWork, user_id: int, pair: TokenPair) -> None:
    uow.tokens.add_refresh(
        RefreshToken(
            jti=pair.refresh.jti,
            family_id=pair.family_id,
            user_id=user_id,
            expires_at=pair.refresh.expires_at,
        )
    )


def login(uow: UnitOfWork, codec: TokenCodec, username: str, password: str) -> LoginResult:
    """Check the credentials and open a new token family. One answer for every failure."""
    with uow:
        user = uow.users.by_login(username) if len(username) <= 254 else None
        # Always run one argon2 verification (a dummy hash for unknown users) so that an
        # unknown user and a wrong password take the same time and get the same answer.
        ok = len(password) <= MAX_PASSWORD_LENGTH and verify_password(
            user.password_hash if user else None, password
        )
        if user is None or not ok or not user.is_active:
            uow.audit.record(
                actor_id=user.id if user else None,
                action="login_failed",
                entity="user",
                entity_id=user.id if user else None,
                changes={"username": username[:64]},
            )
            uow.commit()
            raise AuthenticationFailed(BAD_CREDENTIALS)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        pair = codec.issue_pair(user.id)
        _persist_pair(uow, user.id, pair)
        uow.audit.record(actor_id=user.id, action="login", entity="user", entity_id=user.id)
        uow.commit()
        return LoginResult(user.id, pair)


def refresh(uow: UnitOfWork, codec: TokenCodec, claims: dict[str, Any]) -> LoginResult:
    """Rotate a refresh token. Replaying a used one revokes its whole family."""
    jti, family = claims["jti"], claims.get("fam")
    now = datetime.now(UTC)
    replayed = False
    with uow:
        stored = uow.tokens.get_refresh_for_update(jti)
        if stored is None or stored.family_id != family:
            raise AuthenticationFailed("The refresh token is not valid.")
        user = uow.users.get(stored.user_id)
        if user is None or not user.is_active:
            raise AuthenticationFailed("The refresh token is not valid.")
        if stored.revoked_at is not None or stored.replaced_by is not None:
            # A used token came back: someone holds a copy. End the whole family.
            uow.tokens.revoke_family(stored.family_id, now)
            uow.tokens.add_revoked(stored.family_id, user.id, now + codec.refresh_ttl)
            uow.audit.record(
                actor_id=user.id, action="token_replay", entity="user", entity_id=user.id
            )
            uow.commit()
            replayed = True
        else:
            pair = codec.issue_pair(user.id, stored.family_id)
            stored.revoked_at = now
            stored.replaced_by = pair.refresh.jti
            _persist_pair(uow, user.id, pair)
            uow.commit()
    if replayed:
        raise AuthenticationFailed("The refresh token was already used; please log in again.")
    return LoginResult(user.id, pair)


def logout(uow: UnitOfWork, codec: TokenCodec, claims: dict[str, Any]) -> None:
    """Revoke the presented access token and its whole refresh family."""
    now = datetime.now(UTC)
    user_id = int(claims["sub"])
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    family = claims.get("fam")
    with uow:
        uow.tokens.add_revoked(claims["jti"], user_id, expires)
        if family:
            uow.tokens.revoke_family(family, now)
            uow.tokens.add_revoked(family, user_id, now + codec.refresh_ttl)
        uow.audit.record(actor_id=user_id, action="logout", entity="user", entity_id=user_id)
        uow.commit()


@dataclass(frozen=True)
class AccessCheck:
    """What one token may do now: its user (None: missing or deactivated) and revocation."""

    actor: Actor | None
    revoked: bool


def check_access(uow: UnitOfWork, claims: dict[str, Any]) -> AccessCheck:
    """The token's user as stored now and whether the token or its family was revoked.

    One statement: a deactivation, a role change or a logout takes effect at the next request.
    """
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return AccessCheck(actor=None, revoked=False)
    family = claims.get("fam")
    with uow.reading():
        found = uow.users.access(user_id, str(claims["jti"]), str(family) if family else None)
    if found is None:
        return AccessCheck(actor=None, revoked=False)
    username, role, is_active, revoked = found
    actor = Actor(id=user_id, username=username, role=Role(role)) if is_active else None
    return AccessCheck(actor=actor, revoked=revoked)
