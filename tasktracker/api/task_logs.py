"""Routes for task_logs (to be filled in by its issue)."""

from __future__ import annotations

BLUEPRINTS: list[object] = []
