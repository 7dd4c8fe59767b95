"""Reading task CSV files (SPEC 7): the header, the records with their file line numbers, and
the value rules.

The rules live here once. The SQLite path applies them in Python (``validate_row``); the
PostgreSQL path turns the same tables and message templates into set-based SQL
(``repositories.imports``), so both backends accept and refuse exactly the same values with
the same messages.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TextIO

from ..errors import InvalidInput
from ..models import TaskPriority, TaskStatus

COLUMNS = (
    "task_name",
    "description",
    "status",
    "priority",
    "created_at",
    "assigned_user",
    "due_date",
)
REQUIRED_COLUMNS = ("task_name", "priority")
MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 10_000
# Quoted in messages up to this many characters, so one huge bad cell cannot bloat a report.
MAX_VALUE_IN_MESSAGE = 50

# The seed's boolean status: true means active (todo), false means done (SPEC 3).
STATUS_VALUES: dict[str, TaskStatus] = {
    "true": TaskStatus.TODO,
    "yes": TaskStatus.TODO,
    "1": TaskStatus.TODO,
    "false": TaskStatus.DONE,
    "no": TaskStatus.DONE,
    "0": TaskStatus.DONE,
    "todo": TaskStatus.TODO,
    "to do": TaskStatus.TODO,
    "in_progress": TaskStatus.IN_PROGRESS,
    "in progress": TaskStatus.IN_PROGRESS,
    "in-progress": TaskStatus.IN_PROGRESS,
    "done": TaskStatus.DONE,
}
PRIORITY_VALUES: dict[str, TaskPriority] = {p.value: p for p in TaskPriority}

# ISO dates and the US form spreadsheets write (3/31/2025).
ISO_DATE = r"^(\d{4})-(\d{1,2})-(\d{1,2})$"
US_DATE = r"^(\d{1,2})/(\d{1,2})/(\d{4})$"

# Message templates: "%s" is the offending value. Python fills them with ``%`` and SQL with
# format(), which read "%s" alike.
MSG_REQUIRED = "%s is required."
MSG_NAME_TOO_LONG = f"task_name is longer than {MAX_NAME_LENGTH} characters."
MSG_DESCRIPTION_TOO_LONG = f"description is longer than {MAX_DESCRIPTION_LENGTH} characters."
MSG_BAD_STATUS = "'%s' is not a status: use todo, in_progress, done, or true/false (yes/no, 1/0)."
MSG_BAD_PRIORITY = "'%s' is not a priority: use low, medium or high."
MSG_BAD_DATE = "'%s' is not a date: use YYYY-MM-DD or M/D/YYYY."
MSG_UNKNOWN_USER = "'%s' is not the username or email of an active user."
MSG_TOO_MANY_FIELDS = "The row has %s non-empty fields beyond the header's %s columns."
MSG_UNREADABLE = "The row cannot be read as CSV: %s."

# A spreadsheet cell the export made inert ("'=1+1") gets its quote back off, so an export
# re-imports as the original text (services.export neutralises these starts).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What "surrounding whitespace" means, on both backends (SQL's btrim gets the same set).
WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class RowError:
    """One reason a row was refused; ``column`` is None when the whole row is unreadable."""

    line: int
    column: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


class RowErrors:
    """Rows refused while reading, before any value rule ran (one reason per row): the first
    ``keep`` in file order, and how many there were."""

    def __init__(self, keep: int = 1_000) -> None:
        self.keep = keep
        self.items: list[RowError] = []
        self.rows = 0

    def add(self, line: int, column: str | None, message: str) -> None:
        self.rows += 1
        if len(self.items) < self.keep:
            self.items.append(RowError(line, column, message))


def shown(value: str) -> str:
    """A (cleaned) cell as quoted in a message: cut short."""
    return value[:MAX_VALUE_IN_MESSAGE]


def _guarded(value: str) -> bool:
    """True when a spreadsheet could read the cell as a formula once its quotes are gone."""
    return value.lstrip("'")[:1] in FORMULA_STARTS and value.lstrip("'") != ""


def neutralise(value: str) -> str:
    """The export's formula guard: a leading single quote before anything a spreadsheet would
    run ("=x" -> "'=x"), and before text that already looks guarded ("'=x" -> "''=x"), so that
    ``unneutralise`` gives every value back exactly."""
    return "'" + value if _guarded(value) else value


def unneutralise(value: str) -> str:
    """Undo ``neutralise``: "'=x" becomes "=x", "''=x" becomes "'=x"; the rest is unchanged."""
    if value[:1] == "'" and _guarded(value):
        return value[1:]
    return value


def strip(value: str) -> str:
    return value.strip(WHITESPACE)


def clean_text(value: str) -> str:
    """A name cell as the rules read it: surrounding whitespace gone, formula guard undone."""
    return unneutralise(value.strip(WHITESPACE)).strip(WHITESPACE)


# How each column's cell is read before any rule applies (exactly once: undoing the formula
# guard twice would eat a real leading quote). Names lose surrounding whitespace and the
# export's guard; a description keeps its whitespace; codes and dates are trimmed.
CLEANERS: dict[str, Callable[[str], str]] = {
    "task_name": clean_text,
    "description": unneutralise,
    "status": strip,
    "priority": strip,
    "created_at": strip,
    "assigned_user": clean_text,
    "due_date": strip,
}


def clean_row(columns: tuple[str, ...], values: list[str]) -> dict[str, str]:
    """A record as {column: cleaned cell}; absent columns are empty."""
    row = dict.fromkeys(COLUMNS, "")
    for name, value in zip(columns, values, strict=True):
        row[name] = CLEANERS[name](value)
    return row


def normalise_header(name: str) -> str:
    """ "Task Name", "task-name" and " TASK_NAME " all name the column task_name."""
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").strip().lower())


@dataclass(frozen=True)
class Header:
    """The file's columns (canonical names, in file order) and its delimiter."""

    delimiter: str
    columns: tuple[str, ...]

    @property
    def width(self) -> int:
        return len(self.columns)


def parse_header(first_line: str, delimiter: str | None = None) -> Header:
    """Read the header line, choosing the delimiter (',' or ';' or tab) that names most of our
    columns unless one is given. Unknown, duplicate or missing required columns are a 422
    naming them."""
    best: tuple[int, str, list[str]] | None = None
    for candidate in (delimiter,) if delimiter else (",", ";", "\t"):
        cells = next(csv.reader([first_line], delimiter=candidate), [])
        names = [normalise_header(cell) for cell in cells]
        known = sum(name in COLUMNS for name in names)
        if best is None or known > best[0]:
            best = (known, candidate, names)
    assert best is not None
    _, chosen, names = best
    # Spreadsheets pad the header with empty cells for formatted but empty columns.
    while names and not names[-1]:
        names.pop()
    unknown = [
        name or f"(unnamed column {i + 1})" for i, name in enumerate(names) if name not in COLUMNS
    ]
    duplicates = sorted({name for name in names if name in COLUMNS and names.count(name) > 1})
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if unknown or duplicates or missing:
        problems = []
        if missing:
            problems.append("missing required columns: " + ", ".join(missing))
        if unknown:
            problems.append("unknown columns: " + ", ".join(unknown))
        if duplicates:
            problems.append("duplicate columns: " + ", ".join(duplicates))
        message = (
            "The CSV header is not usable ("
            + "; ".join(problems)
            + "). Expected columns: "
            + ", ".join(COLUMNS)
            + " (task_name and priority required, any order and case)."
        )
        details: dict[str, Any] = {"file": [message]}
        if missing:
            details["missing_columns"] = missing
        if unknown:
            details["unknown_columns"] = unknown
        if duplicates:
            details["duplicate_columns"] = duplicates
        raise InvalidInput(message, details)
    return Header(delimiter=chosen, columns=tuple(names))


class TaskCsv:
    """A task CSV opened for reading: its header, then its data records one at a time.

    The text must be opened with ``newline=""`` (quoted fields may hold line breaks) and
    ``encoding="utf-8-sig"`` (a BOM is dropped).
    """

    def __init__(self, text: TextIO) -> None:
        first = text.readline()
        delimiter = None
        self._header_lines = 1
        # Excel may put its separator on a first line of its own: "sep=;".
        if re.fullmatch(r"sep=.\r?\n?", first, re.IGNORECASE):
            delimiter = first[4]
            first = text.readline()
            self._header_lines = 2
        if not first.strip():
            raise InvalidInput(
                "The file is empty: it needs a header line and at least one row.",
                {"file": ["The file is empty."]},
            )
        self.header = parse_header(first.rstrip("\r\n"), delimiter)
        self._reader = csv.reader(text, delimiter=self.header.delimiter)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.header.columns

    def records(self, errors: RowErrors) -> Iterator[tuple[int, list[str]]]:
        """Each data record as (line, values in ``columns`` order); unreadable rows go to
        ``errors``. ``line`` is the file line the record starts on (the header is line 1), so
        records with quoted line breaks keep later line numbers true. Blank rows, including
        the all-comma rows spreadsheets leave at the end, are skipped."""
        reader = self._reader
        width = self.header.width
        header_lines = self._header_lines
        consumed = header_lines  # physical lines read so far, the header included
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # The csv module gives up on this record (e.g. a field over its size limit)
                # and resumes on the next physical line.
                errors.add(consumed + 1, None, MSG_UNREADABLE % exc)
                consumed = reader.line_num + header_lines
                continue
            line = consumed + 1
            consumed = reader.line_num + header_lines
            if len(fields) != width:
                if not "".join(fields).strip(WHITESPACE):
                    continue
                if len(fields) < width:
                    fields += [""] * (width - len(fields))
                else:
                    extra = sum(1 for cell in fields[width:] if cell.strip(WHITESPACE))
                    if extra:
                        errors.add(line, None, MSG_TOO_MANY_FIELDS % (extra, width))
                        continue
                    # Empty cells past the header: spreadsheet padding, nothing lost.
                    del fields[width:]
            elif not fields[0].strip(WHITESPACE) and not "".join(fields).strip(WHITESPACE):
                continue
            yield line, fields


# -- the value rules (applied in Python on SQLite; mirrored in SQL on PostgreSQL) -----------


def parse_date(value: str) -> date | None:
    """YYYY-MM-DD or M/D/YYYY as a date; None when it is neither or no such day exists."""
    match = re.match(ISO_DATE, value)
    if match:
        year, month, day = (int(part) for part in match.groups())
    else:
        match = re.match(US_DATE, value)
        if not match:
            return None
        month, day, year = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True)
class TaskValues:
    """One valid row, ready to insert (``assignee`` is the name still to be resolved)."""

    line: int
    task_name: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    created_on: date | None
    due_date: date | None
    assignee: str | None


def validate_row(
    line: int,
    row: Mapping[str, str],
    users: Mapping[str, int],
) -> tuple[TaskValues | None, list[RowError]]:
    """Apply the value rules to one cleaned record (see ``clean_row``). ``users`` maps
    lowercased active usernames and emails to ids (the caller looks them up in bulk)."""
    errors: list[RowError] = []

    def fail(column: str, message: str) -> None:
        errors.append(RowError(line, column, message))

    name = row["task_name"]
    if not name:
        fail("task_name", MSG_REQUIRED % "task_name")
    elif len(name) > MAX_NAME_LENGTH:
        fail("task_name", MSG_NAME_TOO_LONG)

    description = row["description"] or None
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        fail("description", MSG_DESCRIPTION_TOO_LONG)

    raw_status = row["status"]
    status = STATUS_VALUES.get(raw_status.lower()) if raw_status else TaskStatus.TODO
    if status is None:
        fail("status", MSG_BAD_STATUS % shown(raw_status))

    raw_priority = row["priority"]
    priority = PRIORITY_VALUES.get(raw_priority.lower())
    if not raw_priority:
        fail("priority", MSG_REQUIRED % "priority")
    elif priority is None:
        fail("priority", MSG_BAD_PRIORITY % shown(raw_priority))

    raw_created = row["created_at"]
    created_on = parse_date(raw_created) if raw_created else None
    if raw_created and created_on is None:
        fail("created_at", MSG_BAD_DATE % shown(raw_created))

    user = row["assigned_user"]
    if user and user.lower() not in users:
        fail("assigned_user", MSG_UNKNOWN_USER % shown(user))

    raw_due = row["due_date"]
    due = parse_date(raw_due) if raw_due else None
    if raw_due and due is None:
        fail("due_date", MSG_BAD_DATE % shown(raw_due))

    if errors:
        return None, errors
    assert status is not None
    assert priority is not None
    return (
        TaskValues(line, name, description, status, priority, created_on, due, user or None),
        [],
    )
