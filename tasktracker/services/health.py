"""Readiness: can this process serve? (database, Redis, schema at the migration head)"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from ..bootstrap import Container

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def readiness(container: Container) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    ready = True
    last_snapshot = None
    with container.uow() as uow:
        try:
            uow.session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            try:
                current = set(
                    uow.session.scalars(text("SELECT version_num FROM alembic_version")).all()
                )
            except Exception:  # no alembic_version table: never migrated
                uow.session.rollback()
                current = set()
            heads = set(migration_heads())
            if current == heads:
                checks["schema"] = "ok"
            else:
                ready = False
                checks["schema"] = {
                    "status": "not at head",
                    "current": sorted(current),
                    "head": sorted(heads),
                    "fix": "run: flask --app tasktracker.wsgi db upgrade",
                }
            if checks["schema"] == "ok":
                last_snapshot = uow.task_logs.last_snapshot_date()
        except Exception as exc:
            ready = False
            checks["database"] = {"status": "error", "error": type(exc).__name__}
    if container.redis is None:
        checks["redis"] = "not configured (embedded mode)"
    else:
        try:
            container.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            ready = False
            checks["redis"] = {"status": "error", "error": type(exc).__name__}
    return {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "last_snapshot_date": last_snapshot,
    }
