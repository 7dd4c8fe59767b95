"""Versioned keys for the cached task-log pages.

A cached page's key contains the current version; any write that can change what a log page
shows (a task edited, deleted or restored, a snapshot, an import) bumps the version, so every
page cached before is stale at once, in every process, without scanning keys.

A reader takes the version *before* it queries the database. If a write commits and bumps the
version while the page is being built, the (possibly old) page is stored under the old
version, which no reader asks for any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import urlencode

from ..cache import Cache

VERSION_KEY = "tasklogs:version"
PAGE_PREFIX = "tasklogs:page:"


def current_version(cache: Cache) -> str:
    """The version every cached log page's key must carry to be current."""
    value = cache.get(VERSION_KEY)
    return value.decode() if value else "0"


def tasks_changed(cache: Cache) -> None:
    """Call after committing any change to tasks or task logs."""
    cache.incr(VERSION_KEY)


def page_key(cache: Cache, route: str, scope: str, query: Iterable[tuple[str, str]]) -> str:
    """The cache key of one page: version, route, what the caller may see, the whole query.

    The query is normalised (parameters sorted) and hashed, so the order of parameters does
    not matter and an arbitrarily long query string cannot make an arbitrarily long key.
    """
    normalized = urlencode(sorted(query))
    digest = hashlib.blake2b(normalized.encode(), digest_size=16).hexdigest()
    return f"{PAGE_PREFIX}{current_version(cache)}:{route}:{scope}:{digest}"
