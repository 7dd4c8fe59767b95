"""JWT issuing (PyJWT), in the claim layout Flask-JWT-Extended decodes.

Issuing lives here, outside Flask, so services, jobs and the CLI can mint tokens; Flask-JWT-
Extended only verifies them on requests (see ``auth.flask``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt as pyjwt

ALGORITHM = "HS256"  # one algorithm only; decoding accepts nothing else


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken
    family_id: str
    expires_in: int


@dataclass(frozen=True)
class TokenCodec:
    secret: str
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta

    def _encode(self, user_id: int, token_type: str, family_id: str, ttl: timedelta) -> IssuedToken:
        now = datetime.now(UTC)
        jti = str(uuid.uuid4())
        expires = now + ttl
        claims = {
            "sub": str(user_id),
            "jti": jti,
            "type": token_type,
            "fresh": False,
            "fam": family_id,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "iss": self.issuer,
            "aud": self.audience,
        }
        return IssuedToken(pyjwt.encode(claims, self.secret, algorithm=ALGORITHM), jti, expires)

    def issue_pair(self, user_id: int, family_id: str | None = None) -> TokenPair:
        """An access and a refresh token of one family (a new family for a new login)."""
        family = family_id or str(uuid.uuid4())
        return TokenPair(
            access=self._encode(user_id, "access", family, self.access_ttl),
            refresh=self._encode(user_id, "refresh", family, self.refresh_ttl),
            family_id=family,
            expires_in=int(self.access_ttl.total_seconds()),
        )
