"""Import jobs and the set-based CSV import.

PostgreSQL: the records are streamed with ``COPY`` (psycopg 3) into a temporary staging table
on the session's own connection, validated by one set-based statement and inserted into
``tasks`` with one ``INSERT ... SELECT``, all in the caller's transaction. SQLite: batches of
already validated rows go in with ``executemany``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, insert, select, text, update
from sqlalchemy.orm import Session

from ..models import (
    PRIORITY_TYPE,
    STATUS_TYPE,
    ImportJob,
    ImportStatus,
    Task,
)
from ..services import csv_rows as rules

STAGING = "import_staging"
UNFINISHED = (ImportStatus.QUEUED.value, ImportStatus.RUNNING.value)
CHECKED = "import_checked"
COPY_FLUSH_ROWS = 5_000


@dataclass(frozen=True)
class Staged:
    """What staging left: the row count, and the distinct date texts when gathered."""

    rows: int
    dates: set[str] | None


@dataclass(frozen=True)
class StagedCheck:
    """What the set-based validation found in the staged rows."""

    rows: int
    bad_rows: int
    errors: list[rules.RowError]  # the first ones, ordered by line and column


def _escape(value: str) -> str:
    """A cell in COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _literal(value: str) -> str:
    # Only ever called on this module's constants; a quote in one would be a bug.
    # (standard_conforming_strings: a backslash is an ordinary character.)
    assert "'" not in value
    return f"'{value}'"


def _present(column: str) -> str:
    # Cells arrive cleaned (rules.CLEANERS ran in stage()); an empty one is absent.
    return f"nullif({column}, '')"


def _code_case(expression: str, mapping: dict[str, Any], type_: Any) -> str:
    whens = " ".join(
        f"WHEN {_literal(key)} THEN {type_.code(value)}" for key, value in mapping.items()
    )
    return f"CASE lower({expression}) {whens} END"


def _make_date(year: str, month: str, day: str) -> str:
    # Every guard is arithmetic, so no row can raise (which would abort the transaction);
    # make_date runs only on a day that exists.
    days = (
        f"CASE WHEN {month} IN (4, 6, 9, 11) THEN 30 WHEN {month} = 2 THEN "
        f"CASE WHEN mod({year}, 4) = 0 AND (mod({year}, 100) <> 0 OR mod({year}, 400) = 0) "
        "THEN 29 ELSE 28 END ELSE 31 END"
    )
    return (
        f"CASE WHEN {year} >= 1 AND {month} BETWEEN 1 AND 12 AND {day} BETWEEN 1 AND ({days}) "
        f"THEN make_date({year}, {month}, {day}) END"
    )


def _date(column: str) -> str:
    """SQL for rules.parse_date() on an already cleaned column."""
    iso = [f"split_part({column}, '-', {i})::int" for i in (1, 2, 3)]
    us = [f"split_part({column}, '/', {i})::int" for i in (1, 2, 3)]
    return (
        f"CASE WHEN {column} ~ {_literal(rules.ISO_DATE)} THEN {_make_date(*iso)} "
        f"WHEN {column} ~ {_literal(rules.US_DATE)} THEN {_make_date(us[2], us[0], us[1])} END"
    )


DATES = "import_dates"
DATE_TEXTS = "import_date_texts"
DATE_COLUMNS = ("created_at", "due_date")
MAX_DISTINCT_DATES = 50_000

# A file holds few distinct dates (spreadsheets repeat them), so each distinct text is parsed
# once and joined back, rather than parsed again on every row. Staging gathers the texts as
# it goes (DATES_FROM_TEXTS_SQL); when it gave up (too many), one pass finds them here.
DATES_SQL = f"""
CREATE TEMP TABLE {DATES} ON COMMIT DROP AS
SELECT raw, {_date("raw")} AS value
FROM (SELECT {_present("created_at")} AS raw FROM {STAGING}
      UNION
      SELECT {_present("due_date")} FROM {STAGING}) AS distinct_dates
WHERE raw IS NOT NULL
"""  # noqa: S608 - built from this module's constants only

DATES_FROM_TEXTS_SQL = f"""
CREATE TEMP TABLE {DATES} ON COMMIT DROP AS
SELECT raw, {_date("raw")} AS value FROM {DATE_TEXTS}
"""  # noqa: S608 - built from this module's constants only

# One pass over the staging table: clean every cell once (OFFSET 0 keeps the planner from
# inlining the cleaned cells into each of their uses), parse them, resolve dates and users
# with hash joins against small tables, and flag each row ok or not.
CHECK_SQL = f"""
CREATE TEMP TABLE {CHECKED} ON COMMIT DROP AS
SELECT p.*,
       (p.task_name IS NOT NULL AND length(p.task_name) <= {rules.MAX_NAME_LENGTH}
        AND (p.description IS NULL OR length(p.description) <= {rules.MAX_DESCRIPTION_LENGTH})
        AND (p.status_raw IS NULL OR p.status IS NOT NULL)
        AND p.priority IS NOT NULL
        AND (p.created_raw IS NULL OR p.created_on IS NOT NULL)
        AND (p.due_raw IS NULL OR p.due_on IS NOT NULL)
        AND (p.user_raw IS NULL OR p.assignee_id IS NOT NULL)) AS ok
FROM (
    SELECT c.line, c.task_name, c.description, c.status_raw, c.priority_raw, c.created_raw,
           c.due_raw, c.user_raw,
           {_code_case("c.status_raw", rules.STATUS_VALUES, STATUS_TYPE)} AS status,
           {_code_case("c.priority_raw", rules.PRIORITY_VALUES, PRIORITY_TYPE)} AS priority,
           created.value AS created_on,
           due.value AS due_on,
           coalesce(by_name.id, by_email.id) AS assignee_id
    FROM (
        SELECT line,
               {_present("task_name")} AS task_name,
               {_present("description")} AS description,
               {_present("status")} AS status_raw,
               {_present("priority")} AS priority_raw,
               {_present("created_at")} AS created_raw,
               {_present("due_date")} AS due_raw,
               {_present("assigned_user")} AS user_raw
        FROM {STAGING}
        OFFSET 0
    ) c
    LEFT JOIN {DATES} created ON created.raw = c.created_raw
    LEFT JOIN {DATES} due ON due.raw = c.due_raw
    LEFT JOIN users by_name
           ON lower(by_name.username) = lower(c.user_raw) AND by_name.is_active
    LEFT JOIN users by_email
           ON lower(by_email.email) = lower(c.user_raw) AND by_email.is_active
    OFFSET 0
) p
"""  # noqa: S608 - built from this module's constants only

COUNT_SQL = f"SELECT count(*), count(*) FILTER (WHERE NOT ok) FROM {CHECKED}"  # noqa: S608


def _shown(column: str) -> str:
    return f"left({column}, {rules.MAX_VALUE_IN_MESSAGE})"


# The reasons, in the column order of rules.COLUMNS; each template is filled by format(),
# which reads "%s" as Python's "%" does.
ERRORS_SQL = f"""
SELECT r.line, e.col, e.message
FROM {CHECKED} r
CROSS JOIN LATERAL (VALUES
    (1, 'task_name', CASE WHEN r.task_name IS NULL THEN format(:required, 'task_name')
                          WHEN length(r.task_name) > {rules.MAX_NAME_LENGTH} THEN :name_long END),
    (2, 'description', CASE WHEN length(r.description) > {rules.MAX_DESCRIPTION_LENGTH}
                            THEN :description_long END),
    (3, 'status', CASE WHEN r.status_raw IS NOT NULL AND r.status IS NULL
                       THEN format(:bad_status, {_shown("r.status_raw")}) END),
    (4, 'priority', CASE WHEN r.priority_raw IS NULL THEN format(:required, 'priority')
                         WHEN r.priority IS NULL
                         THEN format(:bad_priority, {_shown("r.priority_raw")}) END),
    (5, 'created_at', CASE WHEN r.created_raw IS NOT NULL AND r.created_on IS NULL
                           THEN format(:bad_date, {_shown("r.created_raw")}) END),
    (6, 'assigned_user', CASE WHEN r.user_raw IS NOT NULL AND r.assignee_id IS NULL
                              THEN format(:unknown_user, {_shown("r.user_raw")}) END),
    (7, 'due_date', CASE WHEN r.due_raw IS NOT NULL AND r.due_on IS NULL
                         THEN format(:bad_date, {_shown("r.due_raw")}) END)
) AS e(ord, col, message)
WHERE NOT r.ok AND e.message IS NOT NULL
ORDER BY r.line, e.ord
LIMIT :limit
"""  # noqa: S608 - constants only; values are bound parameters

ERROR_MESSAGES = {
    "required": rules.MSG_REQUIRED,
    "name_long": rules.MSG_NAME_TOO_LONG,
    "description_long": rules.MSG_DESCRIPTION_TOO_LONG,
    "bad_status": rules.MSG_BAD_STATUS,
    "bad_priority": rules.MSG_BAD_PRIORITY,
    "bad_date": rules.MSG_BAD_DATE,
    "unknown_user": rules.MSG_UNKNOWN_USER,
}

# Rows keep the file's order in their ids. A row without a created_at was created now; one
# with a date was created at midnight UTC of that day.
INSERT_SQL = f"""
INSERT INTO tasks (task_name, description, status, priority, due_date, assignee_id,
                   created_by_id, created_at, updated_at, version)
SELECT task_name, description, coalesce(status, {STATUS_TYPE.code(rules.TaskStatus.TODO)}),
       priority, due_on, assignee_id, :created_by,
       coalesce(created_on::timestamp AT TIME ZONE 'UTC', now()), now(), 1
FROM {CHECKED}
WHERE ok
ORDER BY line
"""  # noqa: S608 - constants only


class ImportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- jobs ------------------------------------------------------------------------------

    def add(self, job: ImportJob) -> ImportJob:
        self.session.add(job)
        return job

    def get(self, job_id: int) -> ImportJob | None:
        return self.session.get(ImportJob, job_id)

    def get_fresh(self, job_id: int) -> ImportJob | None:
        """The job as committed now (another process may have changed it)."""
        query = select(ImportJob).where(ImportJob.id == job_id)
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def abandon(self, created_before: datetime, now: datetime, message: str) -> list[str]:
        """Fail every job still queued or running that was created before ``created_before``;
        the storage keys of their files."""
        failed = self.session.execute(
            update(ImportJob)
            .where(
                ImportJob.status.in_(UNFINISHED),
                ImportJob.created_at < created_before,
            )
            .values(status=ImportStatus.FAILED.value, message=message, finished_at=now)
            .returning(ImportJob.storage_key)
        )
        return [key for (key,) in failed if key]

    def unfinished_keys(self) -> set[str]:
        """The storage keys of the jobs still queued or running (their files are in use)."""
        query = select(ImportJob.storage_key).where(ImportJob.status.in_(UNFINISHED))
        return {key for key in self.session.scalars(query) if key}

    def last_success(self, sha256: str, *, exclude_id: int | None = None) -> ImportJob | None:
        """The latest real (not dry-run) import of a file with this content that succeeded."""
        query = (
            select(ImportJob)
            .where(
                ImportJob.sha256 == sha256,
                ImportJob.status == ImportStatus.SUCCEEDED.value,
                ImportJob.dry_run.is_(False),
            )
            .order_by(ImportJob.id.desc())
            .limit(1)
        )
        if exclude_id is not None:
            query = query.where(ImportJob.id != exclude_id)
        return self.session.scalars(query).first()

    @property
    def is_postgresql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def lock_file(self, sha256: str) -> None:
        """Serialise imports of the same content until this transaction ends (PostgreSQL), so
        two concurrent uploads of one file cannot both pass the duplicate check."""
        if self.is_postgresql:
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"tasktracker:import:{sha256}"},
            )

    def progress_writer(self, job_id: int) -> Callable[[int], None]:
        """A function that records how many rows were read, visible at once to readers.

        It writes in its own short transaction on another connection, because the import's
        transaction stays open until the end. SQLite has one writer at a time, and the import
        holds it, so there the progress shows only when the import ends.
        """
        if not self.is_postgresql:
            return lambda processed: None
        engine = self.session.get_bind()
        assert isinstance(engine, Engine)

        def write(processed: int) -> None:
            with engine.begin() as connection:
                connection.execute(
                    update(ImportJob).where(ImportJob.id == job_id).values(processed_rows=processed)
                )

        return write

    # -- PostgreSQL: COPY, check, insert ---------------------------------------------------

    def stage(
        self,
        columns: tuple[str, ...],
        records: Iterable[tuple[int, list[str]]],
        *,
        on_progress: Callable[[int], None],
        progress_every: int,
    ) -> Staged:
        """COPY the records into a fresh staging table (cells cleaned by rules.CLEANERS)."""
        unknown = set(columns) - set(rules.COLUMNS)
        assert not unknown, unknown  # names go into SQL: only our own column names
        # JIT compiling the check costs about a second and, for these simple expressions,
        # wins nothing back even at a million rows (measured): off for this transaction.
        self.session.execute(text("SET LOCAL jit = off"))
        self.session.execute(
            text(
                f"CREATE TEMP TABLE {STAGING} ("
                + ", ".join(f"{name} text" for name in rules.COLUMNS)
                + ", line integer NOT NULL) ON COMMIT DROP"
            )
        )
        # The session's own psycopg connection: COPY joins the ORM's transaction, so one
        # rollback undoes everything.
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        copy_sql = f"COPY {STAGING} ({', '.join(columns)}, line) FROM STDIN"
        tabs = len(columns) - 1
        cleaners = [rules.CLEANERS[name] for name in columns]
        date_cells = [i for i, name in enumerate(columns) if name in DATE_COLUMNS]
        # The distinct date texts, gathered here for almost nothing, spare the check a pass
        # over the whole staging table; a file with implausibly many gives up the gathering.
        dates: set[str] | None = set()
        chunk: list[str] = []
        staged = 0
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for line, values in records:
                # COPY's text format: tab-separated, backslash escapes. Most rows need neither
                # escapes nor cleaning (no tab, CR, LF or backslash inside a cell; no space at
                # a cell's edge; no cell starting with a quote), which a few scans in C over
                # the joined row establish. Only the other rows are handled cell by cell.
                cells = values
                row = "\t".join(cells)
                if (
                    "\\" in row
                    or "\n" in row
                    or "\r" in row
                    or " \t" in row
                    or "\t " in row
                    or "\t'" in row
                    or row[:1] in (" ", "'")
                    or row[-1:] == " "
                    or row.count("\t") != tabs
                ):
                    cells = [clean(value) for clean, value in zip(cleaners, values, strict=True)]
                    row = "\t".join(map(_escape, cells))
                if dates is not None:
                    for i in date_cells:
                        dates.add(cells[i])
                chunk.append(f"{row}\t{line}\n")
                staged += 1
                if staged % COPY_FLUSH_ROWS == 0:
                    copy.write("".join(chunk))
                    chunk.clear()
                    if dates is not None and len(dates) > MAX_DISTINCT_DATES:
                        dates = None
                    if staged % progress_every == 0:
                        on_progress(staged)
            copy.write("".join(chunk))
        if dates is not None and len(dates) > MAX_DISTINCT_DATES:
            dates = None
        return Staged(rows=staged, dates=dates)

    def check_staged(self, staged: Staged, error_limit: int) -> StagedCheck:
        """Validate every staged row at once; the first ``error_limit`` reasons come back."""
        if staged.dates is None:
            self.session.execute(text(DATES_SQL))
        else:
            self._dates_from(staged.dates)
        self.session.execute(text(f"ANALYZE {DATES}"))
        self.session.execute(text(CHECK_SQL))
        rows, bad_rows = self.session.execute(text(COUNT_SQL)).one()
        errors: list[rules.RowError] = []
        if bad_rows:
            result = self.session.execute(
                text(ERRORS_SQL), {**ERROR_MESSAGES, "limit": error_limit}
            )
            errors = [rules.RowError(line, column, message) for line, column, message in result]
        return StagedCheck(rows=rows, bad_rows=bad_rows, errors=errors)

    def _dates_from(self, texts: set[str]) -> None:
        """The dates table from date texts gathered while staging (parsed in SQL, once each)."""
        self.session.execute(
            text(f"CREATE TEMP TABLE {DATE_TEXTS} (raw text NOT NULL) ON COMMIT DROP")
        )
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(f"COPY {DATE_TEXTS} (raw) FROM STDIN") as copy:
            for value in texts:
                if value:
                    copy.write_row((value,))
        self.session.execute(text(DATES_FROM_TEXTS_SQL))

    def insert_checked(self, created_by_id: int) -> int:
        """Insert every valid checked row as a task; returns how many."""
        result = self.session.execute(text(INSERT_SQL), {"created_by": created_by_id})
        return int(result.rowcount)  # type: ignore[attr-defined]

    # -- SQLite: batches -------------------------------------------------------------------

    def insert_tasks(self, rows: list[dict[str, Any]]) -> None:
        """Insert a batch of validated tasks with one executemany."""
        if rows:
            self.session.execute(insert(cast(Table, Task.__table__)), rows)
