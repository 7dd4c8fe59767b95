"""Versioned task-log pages in the shared cache.

Any write that can change what a log page shows (a task edited, deleted or restored, a
snapshot, an import) bumps one version counter, so every page cached before is stale at once,
in every process, without scanning keys. A page is stored with the version it was built
under, and a reader takes the version and the page in one round trip (``get_many``): the page
counts only if it carries the current version.

A reader takes the version *before* it queries the database. If a write commits and bumps the
version while the page is being built, the (possibly old) page is stored under the old
version, which no reader accepts any more; at worst a slow reader's store overwrites a newer
page with an older version, which the next reader takes for a miss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from ..cache import Cache

VERSION_KEY = "tasklogs:version"
PAGE_PREFIX = "tasklogs:page:"
_SEPARATOR = b"\n"


def current_version(cache: Cache) -> str:
    """The version a cached log page must carry to be current."""
    value = cache.get(VERSION_KEY)
    return value.decode() if value else "0"


def tasks_changed(cache: Cache) -> None:
    """Call after committing any change to tasks or task logs."""
    cache.incr(VERSION_KEY)


def page_key(route: str, scope: str, query: Iterable[tuple[str, str]]) -> str:
    """The cache key of one page: route, what the caller may see, the whole query.

    The query is normalised (parameters sorted) and hashed, so the order of parameters does
    not matter and an arbitrarily long query string cannot make an arbitrarily long key.
    """
    normalized = urlencode(sorted(query))
    digest = hashlib.blake2b(normalized.encode(), digest_size=16).hexdigest()
    return f"{PAGE_PREFIX}{route}:{scope}:{digest}"


@dataclass(frozen=True, slots=True)
class CachedPage:
    key: str
    version: bytes
    #: The stored page when it was built under the current version, else None (a miss).
    body: bytes | None


def read_page(cache: Cache, key: str) -> CachedPage:
    """The current version and, when it is current, the page stored under ``key``."""
    version, stored = cache.get_many([VERSION_KEY, key])
    version = version or b"0"
    body = None
    if stored is not None:
        stored_version, _, payload = stored.partition(_SEPARATOR)
        if stored_version == version:
            body = payload
    return CachedPage(key, version, body)


def store_page(cache: Cache, page: CachedPage, body: bytes, ttl: int) -> None:
    """Keep ``body`` as the page of ``page.key``, built under the version read before it."""
    cache.set(page.key, page.version + _SEPARATOR + body, ttl, best_effort=True)
