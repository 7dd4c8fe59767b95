"""A small cache interface with a Redis and an in-process implementation.

The Redis cache is shared by every API and worker process. It never raises: with Redis down
the API answers uncached (a miss on read, a no-op on write) and logs a warning once per outage.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

log = logging.getLogger(__name__)


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: int, *, best_effort: bool = False) -> None: ...

    def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    def incr(self, key: str) -> int | None: ...

    def delete(self, key: str) -> None: ...


class MemoryCache:
    """In-process cache for the embedded mode (one process, so nothing to share)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float | None, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires, value = item
            if expires is not None and expires < time.monotonic():
                del self._data[key]
                return None
            return value

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    def set(self, key: str, value: bytes, ttl: int, *, best_effort: bool = False) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)

    def incr(self, key: str) -> int | None:
        with self._lock:
            _, old = self._data.get(key, (None, b"0"))
            value = int(old) + 1
            self._data[key] = (None, str(value).encode())
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """Redis-backed cache; every key is prefixed so several installs can share a server.

    An outage is logged once (a warning when it starts, an info line when Redis is back), not
    once per call. For a short while after a failure, reads answer "miss" at once instead of
    waiting for another timeout (a miss is always safe: callers fall back to the database),
    and so do ``best_effort`` writes (a page to cache, a "not revoked" answer to remember):
    with a Redis that hangs rather than refuses, each of them would otherwise cost a socket
    timeout on the request path. Writes that keep the cache honest (a revocation mark, a
    version bump) always try: a skipped one could leave a stale value behind.
    """

    # How long reads and best-effort writes skip Redis after a failure.
    RETRY_AFTER_SECONDS = 5.0

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._down = False
        self._retry_at = 0.0

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _skipping(self) -> bool:
        return self._down and time.monotonic() < self._retry_at

    def _failed(self, operation: str, exc: redis.RedisError) -> None:
        self._retry_at = time.monotonic() + self.RETRY_AFTER_SECONDS
        if self._down:
            log.debug("cache %s failed (Redis still down): %s", operation, exc)
            return
        self._down = True
        log.warning(
            "Redis is unreachable (cache %s failed: %s); answering uncached until it is back",
            operation,
            exc,
        )

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("Redis is reachable again; caching resumed")

    def get(self, key: str) -> bytes | None:
        if self._skipping():
            return None
        try:
            value = self._client.get(self._k(key))
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        self._succeeded()
        return value if isinstance(value, bytes) else None

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys or self._skipping():
            return [None] * len(keys)
        try:
            values = self._client.mget([self._k(k) for k in keys])
        except redis.RedisError as exc:
            self._failed("mget", exc)
            return [None] * len(keys)
        self._succeeded()
        return [v if isinstance(v, bytes) else None for v in values]

    def set(self, key: str, value: bytes, ttl: int, *, best_effort: bool = False) -> None:
        if best_effort and self._skipping():
            return
        try:
            self._client.set(self._k(key), value, ex=ttl)
        except redis.RedisError as exc:
            self._failed("set", exc)
            return
        self._succeeded()

    def incr(self, key: str) -> int | None:
        try:
            value = int(self._client.incr(self._k(key)))
        except redis.RedisError as exc:
            self._failed("incr", exc)
            return None
        self._succeeded()
        return value

    def delete(self, key: str) -> None:
        try:
            self._client.delete(self._k(key))
        except redis.RedisError as exc:
            self._failed("delete", exc)
            return
        self._succeeded()


def redis_client(url: str) -> redis.Redis:
    """A client with short timeouts: a dead Redis must cost milliseconds, not seconds."""
    return redis.Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
        retry_on_timeout=False,
    )
