"""Revocation checks: the cache (Redis) is the fast path, the database the truth.

A revoked id is written to the database first, then marked in the cache. A check reads the
cache; on a miss or a cache error it asks the database and remembers the answer briefly.
It never answers "not revoked" without one of the two saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ..cache import Cache

REVOKED = b"1"
NOT_REVOKED = b"0"
# A "not revoked" answer is cached only briefly: if marking a revocation in Redis ever failed,
# the database's answer takes over within this many seconds.
NEGATIVE_TTL = 30


class RevocationStore:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    @staticmethod
    def _key(token_id: str) -> str:
        return f"revoked:{token_id}"

    def mark(self, token_ids: list[str], expires_at: datetime) -> None:
        ttl = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
        for token_id in token_ids:
            self._cache.set(self._key(token_id), REVOKED, ttl)

    def is_revoked(self, token_ids: list[str], check_db: Callable[[list[str]], bool]) -> bool:
        cached = self._cache.get_many([self._key(t) for t in token_ids])
        if any(value == REVOKED for value in cached):
            return True
        if all(value == NOT_REVOKED for value in cached):
            return False
        revoked = check_db(token_ids)
        if not revoked:
            for token_id, value in zip(token_ids, cached, strict=True):
                if value is None:
                    self._cache.set(
                        self._key(token_id), NOT_REVOKED, NEGATIVE_TTL, best_effort=True
                    )
        return revoked
