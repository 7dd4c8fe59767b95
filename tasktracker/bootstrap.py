"""Builds every shared dependency in one place, for the HTTP app, Celery and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import redis
from sqlalchemy.orm import Session

from .auth.tokens import TokenCodec
from .cache import Cache, MemoryCache, RedisCache, redis_client
from .config import Settings
from .unit_of_work import UnitOfWork


@dataclass
class Container:
    """The application's services and their shared infrastructure."""

    settings: Settings
    redis: redis.Redis | None
    cache: Cache
    tokens: TokenCodec
    session_factory: Callable[[], Session]

    def uow(self) -> UnitOfWork:
        """A fresh unit of work (one transaction)."""
        return UnitOfWork(self.session_factory)


def build_container(settings: Settings, session_factory: Callable[[], Session]) -> Container:
    client = redis_client(settings.redis_url) if settings.redis_url else None
    cache: Cache = RedisCache(client, settings.redis_prefix) if client else MemoryCache()
    codec = TokenCodec(
        secret=settings.jwt_secret_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=timedelta(minutes=settings.access_token_minutes),
        refresh_ttl=timedelta(days=settings.refresh_token_days),
    )
    return Container(
        settings=settings,
        redis=client,
        cache=cache,
        tokens=codec,
        session_factory=session_factory,
    )
