"""CSV import (SPEC 7): keep the upload, check it, import it now or hand it to a job.

The upload is streamed to ``<data_dir>/imports/<uuid>.csv`` (never the client's file name)
while its sha256 is computed and its bytes checked to be UTF-8 text. Small files are imported
in the request; larger ones (more than ``import_async_rows`` lines) by a Celery job. Either
way one function, :func:`run_import`, does the work in ONE transaction: in atomic mode one bad
row means nothing is written, and a crash at any point leaves no half-imported rows.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import IO, Any, TextIO

from ..auth.policy import Actor, Permission, require
from ..cache import Cache
from ..config import Settings
from ..errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from ..models import ImportJob, ImportMode, ImportStatus, utcnow
from ..observability import IMPORT_ROWS
from ..unit_of_work import UnitOfWork
from . import log_cache
from .csv_rows import RowError, RowErrors, TaskCsv, clean_row, validate_row

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# No task row comes near this; a longer line is not a task file, and reading it as a line
# would hold all of it in memory.
MAX_LINE_BYTES = 1 << 20
PROGRESS_EVERY_ROWS = 50_000
SQLITE_BATCH_ROWS = 1_000
MAX_FILE_NAME = 255

FINISHED = (ImportStatus.SUCCEEDED.value, ImportStatus.FAILED.value)


@dataclass(frozen=True)
class ImportOptions:
    mode: ImportMode = ImportMode.ATOMIC
    dry_run: bool = False
    force: bool = False


@dataclass(frozen=True)
class StoredFile:
    """An upload as kept on disk, with what was learnt while streaming it."""

    key: str
    path: Path
    sha256: str
    size: int
    lines: int

    @property
    def estimated_rows(self) -> int:
        """Lines after the header: exact unless quoted cells hold line breaks."""
        return max(self.lines - 1, 0)


@dataclass(frozen=True)
class Submission:
    job: ImportJob
    queued: bool

    @property
    def rejected(self) -> bool:
        """Atomic mode found bad rows, so nothing was imported (the caller answers 422)."""
        return not self.queued and self.job.status == ImportStatus.FAILED.value


@dataclass
class Tally:
    """What one run found: counts, and the first reasons rows were refused."""

    total_rows: int = 0
    failed: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Seconds per phase (read/stage, check, insert), logged for operators and the benchmark.
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.perf_counter() - started, 3)


def import_dir(settings: Settings) -> Path:
    return settings.data_dir / "imports"


# -- the upload ----------------------------------------------------------------------------


def store_upload(stream: IO[bytes], directory: Path) -> StoredFile:
    """Copy the upload to a new file under ``directory`` in chunks (constant memory), hashing
    it and checking that it is UTF-8 text. Raises 415 for binary or non-UTF-8 content."""
    directory.mkdir(parents=True, exist_ok=True)
    key = f"{uuid.uuid4().hex}.csv"
    path = directory / key
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = newlines = 0
    last = b""
    line_so_far = 0  # bytes since the last line break
    try:
        with open(path, "xb") as out:
            while chunk := stream.read(CHUNK_BYTES):
                if size == 0:
                    _refuse_other_encodings(chunk)
                if b"\x00" in chunk:
                    raise _not_text(
                        "it contains NUL bytes, so it is binary (e.g. an Excel workbook) "
                        "or UTF-16 text"
                    )
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise _not_utf8(size + exc.start) from exc
                line_so_far = _check_line_length(chunk, line_so_far)
                digest.update(chunk)
                newlines += chunk.count(b"\n")
                size += len(chunk)
                last = chunk[-1:]
                out.write(chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise _not_utf8(size - 1) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    lines = newlines + (1 if last not in (b"", b"\n") else 0)
    return StoredFile(key, path, digest.hexdigest(), size, lines)


def _check_line_length(chunk: bytes, line_so_far: int) -> int:
    """Refuse a line longer than MAX_LINE_BYTES (reading one would take that much memory);
    returns the length of the line still open at the chunk's end.

    A chunk is no longer than the limit, so only a line that crosses a chunk boundary can
    exceed it: the check is two searches per chunk, not one per line.
    """
    breaks = [i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0]
    if not breaks:
        line_so_far += len(chunk)
    else:
        line_so_far += min(breaks)
    if line_so_far > MAX_LINE_BYTES:
        raise InvalidInput(
            f"The file has a line longer than {MAX_LINE_BYTES // 2**20} MiB: it is not a task "
            "CSV file.",
            {"file": [f"A line is longer than {MAX_LINE_BYTES // 2**20} MiB."]},
        )
    if not breaks:
        return line_so_far
    return len(chunk) - 1 - max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))


def _refuse_other_encodings(head: bytes) -> None:
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if head.startswith(bom):
            raise _not_text(f"it is {name} text")


def _not_text(reason: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"The file is not a UTF-8 text CSV file: {reason}. Save it as 'CSV UTF-8 "
        "(comma delimited)' and upload that.",
        {"file": [f"Expected UTF-8 CSV text; {reason}."]},
    )


def _not_utf8(offset: int) -> UnsupportedMediaType:
    return _not_text(f"the bytes at offset {offset} are not valid UTF-8 (another encoding?)")


def _open_text(path: Path) -> TextIO:
    # newline="": quoted cells may hold line breaks; utf-8-sig drops a BOM.
    return open(path, encoding="utf-8-sig", newline="")


def _check_layout(path: Path) -> None:
    """422 now, before any job exists, for a file with a bad header or without rows."""
    with _open_text(path) as text:
        unreadable = RowErrors()
        if next(TaskCsv(text).records(unreadable), None) is None and not unreadable.rows:
            raise InvalidInput(
                "The file has a header but no rows.", {"file": ["The file has no rows."]}
            )


# -- use cases -----------------------------------------------------------------------------


def submit_import(
    uow: UnitOfWork,
    actor: Actor,
    stream: IO[bytes],
    file_name: str | None,
    options: ImportOptions,
    *,
    settings: Settings,
    cache: Cache,
    enqueue: Callable[[int, bool], None],
) -> Submission:
    """Take an upload (admin): import it now, or queue it when it has more rows than
    ``settings.import_async_rows``. Raises 409 for a file already imported (unless forced),
    415/422 for an unusable file, 503 when the job queue is down."""
    require(actor, Permission.IMPORT)
    stored = store_upload(stream, import_dir(settings))
    try:
        _check_layout(stored.path)
        with uow:
            if not options.force:
                _refuse_duplicate(uow, stored.sha256)
            job = uow.imports.add(
                ImportJob(
                    status=ImportStatus.QUEUED.value,
                    file_name=_display_name(file_name),
                    sha256=stored.sha256,
                    size_bytes=stored.size,
                    mode=options.mode.value,
                    dry_run=options.dry_run,
                    total_rows=stored.estimated_rows,
                    processed_rows=0,
                    imported=0,
                    failed=0,
                    storage_key=stored.key,
                    created_by_id=actor.id,
                )
            )
            uow.commit()
            job_id = job.id
    except BaseException:
        stored.path.unlink(missing_ok=True)
        raise

    if stored.estimated_rows <= settings.import_async_rows:
        return Submission(run_import(uow, job_id, options.force, settings, cache), queued=False)
    try:
        enqueue(job_id, options.force)
    except ServiceUnavailable as exc:
        _finish_failed(uow, job_id, exc.message)
        stored.path.unlink(missing_ok=True)
        raise
    # Eager mode (embedded) has already run the job; otherwise it is queued or running.
    return Submission(get_job(uow, job_id), queued=True)


def get_import(uow: UnitOfWork, actor: Actor, job_id: int) -> ImportJob:
    """One import's status, progress and report: admins, or the admin who started it."""
    job = get_job(uow, job_id)
    if job.created_by_id != actor.id:
        require(actor, Permission.IMPORT)
    return job


def get_job(uow: UnitOfWork, job_id: int) -> ImportJob:
    """An import job by id (404 if there is none); no permission check."""
    with uow:
        job = uow.imports.get(job_id)
        if job is None:
            raise NotFound(f"Import {job_id} does not exist.")
        return job


@dataclass(frozen=True)
class Sweep:
    """What one sweep cleared: the jobs it failed and the files it deleted."""

    failed_jobs: int
    deleted_files: int


def sweep_abandoned(uow: UnitOfWork, settings: Settings, now: datetime | None = None) -> Sweep:
    """Give up the imports no worker finished within TASKTRACKER_IMPORT_ABANDON_HOURS, and
    delete the upload files no unfinished import refers to.

    A job whose message was lost (Redis restarted without persistence, say) would otherwise
    say "queued" forever, and a file stored by an API process that died before its job was
    committed would stay on disk forever. Safe beside running imports: only jobs older than
    the limit (longer than the broker's redelivery) and files older than it are touched, and
    a message that still arrives for a failed job finds it finished and does nothing.
    """
    now = now or utcnow()
    hours = settings.import_abandon_hours
    cutoff = now - timedelta(hours=hours)
    with uow:
        keys = uow.imports.abandon(
            cutoff,
            now,
            f"No worker finished this import within {hours} hours (its queued job was lost, "
            "e.g. by a broker restart); nothing was imported. Upload the file again.",
        )
        uow.commit()
    with uow.reading():
        in_use = uow.imports.unfinished_keys()
    directory = import_dir(settings)
    deleted = 0
    for key in keys:
        deleted += _delete(directory / key)
    for path in directory.glob("*.csv") if directory.is_dir() else ():
        if path.name not in in_use and path.stat().st_mtime < cutoff.timestamp():
            deleted += _delete(path)
    if keys or deleted:
        log.warning("import sweep", extra={"failed_imports": len(keys), "deleted_files": deleted})
    return Sweep(failed_jobs=len(keys), deleted_files=deleted)


def _delete(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def _display_name(file_name: str | None) -> str | None:
    """The client's file name, for display only (never a path): printable and bounded."""
    name = "".join(ch for ch in file_name or "" if ch.isprintable()).strip()
    return name[:MAX_FILE_NAME] or None


def _refuse_duplicate(uow: UnitOfWork, sha256: str, exclude_id: int | None = None) -> None:
    earlier = uow.imports.last_success(sha256, exclude_id=exclude_id)
    if earlier is not None:
        raise Conflict(
            f"This file was already imported (import {earlier.id}). Send force=true to "
            "import it again.",
            {
                "import_id": earlier.id,
                "location": f"/api/v1/imports/{earlier.id}",
                "sha256": sha256,
                "imported_at": earlier.finished_at.isoformat() if earlier.finished_at else None,
            },
        )


def run_import(
    uow: UnitOfWork, job_id: int, force: bool, settings: Settings, cache: Cache
) -> ImportJob:
    """Import a stored upload in one transaction and record the outcome on its job.

    Safe to call again for the same job (a redelivered Celery message): a finished job is
    left as it is; a job left running by a killed worker starts over, because its
    transaction was rolled back with the worker's connection.
    """
    with uow:
        job = uow.imports.get_fresh(job_id)
        if job is None:
            raise NotFound(f"Import {job_id} does not exist.")
        if not job.storage_key:
            raise NotFound(f"Import {job_id} has no stored file.")
        path = import_dir(settings) / job.storage_key
        if job.status in FINISHED:
            path.unlink(missing_ok=True)
            return job
        job.status = ImportStatus.RUNNING.value
        job.started_at = utcnow()
        job.processed_rows = 0
        uow.commit()
        work = _Work(
            job_id=job.id,
            sha256=job.sha256,
            mode=ImportMode(job.mode),
            dry_run=job.dry_run,
            force=force,
            created_by_id=job.created_by_id,
            path=path,
        )
    # Only Exceptions end the job. A worker stopped by a signal (SystemExit, KeyboardInterrupt)
    # leaves it running with its file, so the redelivered message starts it over.
    try:
        job = _import(uow, work, settings, cache)
    except DomainError as exc:
        _finish_failed(uow, job_id, exc.message)
        path.unlink(missing_ok=True)
        raise
    except Exception:
        log.exception("import failed", extra={"import_id": job_id})
        _finish_failed(uow, job_id, "The import failed unexpectedly; nothing was imported.")
        path.unlink(missing_ok=True)
        raise
    path.unlink(missing_ok=True)
    return job


@dataclass(frozen=True)
class _Work:
    job_id: int
    sha256: str
    mode: ImportMode
    dry_run: bool
    force: bool
    created_by_id: int | None
    path: Path


def _import(uow: UnitOfWork, work: _Work, settings: Settings, cache: Cache) -> ImportJob:
    max_errors = settings.import_max_errors
    with uow:
        uow.imports.lock_file(work.sha256)
        current = uow.imports.get_fresh(work.job_id)
        if current is not None and current.status in FINISHED:
            return current  # another delivery of this job finished it while we waited
        if not work.force and not work.dry_run:
            _refuse_duplicate(uow, work.sha256, exclude_id=work.job_id)
        if work.created_by_id is None:
            raise InvalidInput("The admin who started this import no longer exists.")
        progress = uow.imports.progress_writer(work.job_id)
        with _open_text(work.path) as text:
            reader = TaskCsv(text)
            if uow.imports.is_postgresql:
                tally = _copy_and_check(uow, reader, work, max_errors, progress)
            else:
                tally = _check_in_batches(uow, reader, work, max_errors, progress)

        rejected = work.mode == ImportMode.ATOMIC and tally.failed > 0
        if rejected or work.dry_run:
            uow.rollback()  # nothing of this run stays, staging tables included
        job = uow.imports.get_fresh(work.job_id)
        assert job is not None
        _record(job, tally, work, rejected)
        if job.status == ImportStatus.SUCCEEDED.value and not work.dry_run:
            uow.audit.record(
                actor_id=work.created_by_id,
                action="import",
                entity="import_job",
                entity_id=job.id,
                changes={
                    "status": [None, job.status],
                    "mode": [None, job.mode],
                    "file_name": [None, job.file_name],
                    "sha256": [None, job.sha256],
                    "total_rows": [None, job.total_rows],
                    "imported": [None, job.imported],
                    "failed": [None, job.failed],
                },
            )
        with tally.timing("commit"):
            uow.commit()
    if not work.dry_run:
        IMPORT_ROWS.labels("imported").inc(job.imported)
        IMPORT_ROWS.labels("failed").inc(job.failed)
    if job.imported:
        log_cache.tasks_changed(cache)
    log.info(
        "import finished",
        extra={
            "import_id": job.id,
            "status": job.status,
            "total_rows": job.total_rows,
            "imported": job.imported,
            "failed": job.failed,
            "seconds": tally.seconds,
        },
    )
    return job


def _copy_and_check(
    uow: UnitOfWork,
    reader: TaskCsv,
    work: _Work,
    max_errors: int,
    progress: Callable[[int], None],
) -> Tally:
    """PostgreSQL: COPY every record into staging, validate them all in SQL, insert the good."""
    read_errors = RowErrors(keep=max_errors + 1)
    tally = Tally()
    with tally.timing("stage"):
        staged = uow.imports.stage(
            reader.columns,
            reader.records(read_errors),
            on_progress=progress,
            progress_every=PROGRESS_EVERY_ROWS,
        )
    with tally.timing("check"):
        check = uow.imports.check_staged(staged, error_limit=max_errors + 1)
    tally.total_rows = check.rows + read_errors.rows
    tally.failed = check.bad_rows + read_errors.rows
    tally.errors = _first_errors(_by_line(read_errors.items, check.errors), max_errors)
    rejected = work.mode == ImportMode.ATOMIC and tally.failed > 0
    if not rejected and not work.dry_run:
        assert work.created_by_id is not None
        with tally.timing("insert"):
            tally.imported = uow.imports.insert_checked(work.created_by_id)
    return tally


def _check_in_batches(
    uow: UnitOfWork,
    reader: TaskCsv,
    work: _Work,
    max_errors: int,
    progress: Callable[[int], None],
) -> Tally:
    """SQLite: validate in Python and insert batch by batch inside the one transaction."""
    read_errors = RowErrors(keep=max_errors + 1)
    tally = Tally()
    kept: list[RowError] = []
    users: dict[str, int | None] = {}
    now = utcnow()
    columns = reader.columns
    for batch in _batches(reader.records(read_errors), SQLITE_BATCH_ROWS):
        rows = [clean_row(columns, values) for _, values in batch]
        _resolve_users(uow, users, (row["assigned_user"] for row in rows))
        known = {name: user_id for name, user_id in users.items() if user_id is not None}
        good: list[dict[str, Any]] = []
        for (line, _), row in zip(batch, rows, strict=True):
            values, errors = validate_row(line, row, known)
            if values is None:
                tally.failed += 1
                if len(kept) <= max_errors:
                    kept.extend(errors)
                continue
            assert work.created_by_id is not None
            good.append(
                {
                    "task_name": values.task_name,
                    "description": values.description,
                    "status": values.status,
                    "priority": values.priority,
                    "due_date": values.due_date,
                    "assignee_id": known[values.assignee.lower()] if values.assignee else None,
                    "created_by_id": work.created_by_id,
                    "created_at": _midnight_utc(values.created_on) if values.created_on else now,
                    "updated_at": now,
                    "version": 1,
                }
            )
        tally.total_rows += len(batch)
        failing = tally.failed + read_errors.rows
        if not work.dry_run and not (work.mode == ImportMode.ATOMIC and failing):
            uow.imports.insert_tasks(good)
            tally.imported += len(good)
        progress(tally.total_rows)
    tally.total_rows += read_errors.rows
    tally.failed += read_errors.rows
    tally.errors = _first_errors(_by_line(read_errors.items, kept), max_errors)
    if work.mode == ImportMode.ATOMIC and tally.failed:
        tally.imported = 0  # the caller rolls the whole transaction back
    return tally


def _resolve_users(uow: UnitOfWork, known: dict[str, int | None], names: Iterable[str]) -> None:
    """Look up, in one query, the assigned users this batch names that we have not seen."""
    wanted = {name.lower() for name in names if name} - known.keys()
    if not wanted:
        return
    found = uow.users.by_names(sorted(wanted))
    for name in wanted:
        user = found.get(name)
        known[name] = user.id if user is not None else None


def _batches(
    records: Iterator[tuple[int, list[str]]], size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    while batch := list(islice(records, size)):
        yield batch


def _midnight_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _by_line(*groups: list[RowError]) -> list[RowError]:
    """Errors in file order; a stable sort keeps each row's reasons in column order."""
    return sorted((error for group in groups for error in group), key=lambda error: error.line)


def _first_errors(errors: list[RowError], limit: int) -> list[RowError]:
    """At most ``limit`` errors, cut at a row boundary so every listed row shows all of its
    reasons (then "fewer rows listed than failed" says exactly that the list was cut)."""
    if len(errors) <= limit:
        return errors
    cut_line = errors[limit].line
    return [error for error in errors[:limit] if error.line != cut_line]


def _record(job: ImportJob, tally: Tally, work: _Work, rejected: bool) -> None:
    job.total_rows = tally.total_rows
    job.processed_rows = tally.total_rows
    job.failed = tally.failed
    job.imported = 0 if (rejected or work.dry_run) else tally.imported
    job.errors = [error.as_dict() for error in tally.errors]
    job.finished_at = utcnow()
    job.status = (ImportStatus.FAILED if rejected else ImportStatus.SUCCEEDED).value
    valid = tally.total_rows - tally.failed
    if rejected:
        job.message = (
            f"Nothing was imported: {tally.failed} of {tally.total_rows} rows have errors "
            "(atomic mode; fix them, or use mode=partial to import the valid rows)."
        )
    elif work.dry_run:
        job.message = (
            f"Dry run: {valid} of {tally.total_rows} rows are valid, {tally.failed} have "
            "errors; nothing was written."
        )
    else:
        job.message = f"Imported {job.imported} of {tally.total_rows} rows; {tally.failed} failed."


def _finish_failed(uow: UnitOfWork, job_id: int, message: str) -> None:
    """Mark a job failed in its own transaction (the import's was rolled back)."""
    with uow:
        job = uow.imports.get_fresh(job_id)
        if job is not None and job.status not in FINISHED:
            job.status = ImportStatus.FAILED.value
            job.message = message
            job.finished_at = utcnow()
            uow.commit()
