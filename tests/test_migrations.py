"""Alembic migrations run up and down on a real PostgreSQL database, and match the models.

They run through the real CLI (``flask db ...``) in a subprocess, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tasktracker.models import Base

from .conftest import PG_ADMIN_URL, TEST_SECRET, _pg_url

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"tasktracker_migr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_db(database_url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "JWT_SECRET_KEY": TEST_SECRET}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "tasktracker.wsgi", "db", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    engine = create_engine(empty_database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        flask_db(empty_database, "upgrade")
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        assert "ix_tasks_search" in {i["name"] for i in inspect(engine).get_indexes("tasks")}

        flask_db(empty_database, "downgrade", "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        flask_db(empty_database, "upgrade")
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # The GIN search index is PostgreSQL-only DDL that lives in the migration alone.
        diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name == "ix_tasks_search")]
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()
