"""Versioned keys for the cached task-log pages.

A cached page's key contains the current version; any write that can change what a log page
shows (a task edited, deleted or restored, a snapshot, an import) bumps the version, so every
page cached before is stale at once, in every process, without scanning keys.
"""

from __future__ import annotations

from ..cache import Cache

VERSION_KEY = "tasklogs:version"


def current_version(cache: Cache) -> str:
    value = cache.get(VERSION_KEY)
    return value.decode() if value else "0"


def tasks_changed(cache: Cache) -> None:
    """Call after committing any change to tasks or task logs."""
    cache.incr(VERSION_KEY)
