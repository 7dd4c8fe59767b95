"""Reading task CSV files: header rules, line numbers, blank and ragged rows, value rules.

Pure Python (no database): the same rules drive the SQLite path directly and the PostgreSQL
path through generated SQL (tested end to end in test_imports.py on both backends).
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from tasktracker.errors import InvalidInput
from tasktracker.models import TaskPriority, TaskStatus
from tasktracker.services.csv_rows import (
    COLUMNS,
    RowErrors,
    TaskCsv,
    clean_row,
    normalise_header,
    parse_date,
    parse_header,
    unneutralise,
    validate_row,
)

HEADER = "task_name,description,status,priority,created_at,assigned_user,due_date"


def read(content: str) -> tuple[list[tuple[int, list[str]]], RowErrors]:
    errors = RowErrors()
    text = io.StringIO(content, newline="")
    return list(TaskCsv(text).records(errors)), errors


# -- header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("task_name", "task_name"),
        ("Task Name", "task_name"),
        (" TASK-NAME ", "task_name"),
        ("\ufefftask_name", "task_name"),
        ("Assigned User", "assigned_user"),
    ],
)
def test_header_names_are_matched_without_regard_to_case_spaces_or_dashes(
    raw: str, expected: str
) -> None:
    assert normalise_header(raw) == expected


def test_header_in_any_order_and_case() -> None:
    header = parse_header("PRIORITY,Due_Date,task_name")
    assert header.columns == ("priority", "due_date", "task_name")
    assert header.delimiter == ","


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_files_are_recognised(delimiter: str) -> None:
    header = parse_header(delimiter.join(COLUMNS))
    assert header.delimiter == delimiter
    assert header.columns == COLUMNS


def test_missing_required_columns_are_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_header("task_name,description")
    assert caught.value.details["missing_columns"] == ["priority"]
    assert "priority" in caught.value.message


def test_unknown_and_duplicate_columns_are_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_header("task_name,priority,owner,priority,,x")
    details = caught.value.details
    assert details["unknown_columns"] == ["owner", "(unnamed column 5)", "x"]
    assert details["duplicate_columns"] == ["priority"]
    assert "owner" in caught.value.message
    assert details["file"] == [caught.value.message]


def test_empty_trailing_header_cells_are_padding() -> None:
    assert parse_header("task_name,priority,,,").columns == ("task_name", "priority")


@pytest.mark.parametrize("content", ["", "\n", "  \r\n\r\n"])
def test_an_empty_file_is_refused(content: str) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        read(content)


# -- records and line numbers --------------------------------------------------------------


def test_line_numbers_count_the_header_as_line_one() -> None:
    records, errors = read("task_name,priority\nA,low\nB,high\n")
    assert [(line, values) for line, values in records] == [(2, ["A", "low"]), (3, ["B", "high"])]
    assert errors.rows == 0


def test_quoted_fields_with_line_breaks_keep_later_line_numbers_true() -> None:
    content = (
        "task_name,description,priority\r\n"
        'A,"first\r\nsecond\r\nthird",low\r\n'
        'B,"has ""quotes"", and commas",high\r\n'
        "C,,medium\r\n"
    )
    records, _ = read(content)
    assert [line for line, _ in records] == [2, 5, 6]
    assert records[0][1][1] == "first\r\nsecond\r\nthird"
    assert records[1][1][1] == 'has "quotes", and commas'


def test_blank_lines_and_spreadsheet_padding_rows_are_skipped() -> None:
    records, errors = read("task_name,priority\nA,low\n\n,\n , \nB,high\n\n\n")
    assert [line for line, _ in records] == [2, 6]
    assert errors.rows == 0


def test_short_rows_are_padded_and_empty_extra_cells_dropped() -> None:
    records, errors = read("task_name,priority,status\nA,low\nB,high,true,,\n")
    assert records == [(2, ["A", "low", ""]), (3, ["B", "high", "true"])]
    assert errors.rows == 0


def test_a_row_with_more_values_than_columns_is_a_row_error() -> None:
    records, errors = read("task_name,priority\nA,low,oops,again\nB,high\n")
    assert [line for line, _ in records] == [3]
    (error,) = errors.items
    assert (error.line, error.column) == (2, None)
    assert "2 non-empty fields beyond" in error.message


def test_a_field_over_the_csv_size_limit_is_a_row_error_and_reading_goes_on() -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    records, errors = read(f"task_name,priority\nA,low\n{huge},high\nC,medium\n")
    assert [line for line, _ in records] == [2, 4]
    (error,) = errors.items
    assert error.line == 3
    assert error.column is None
    assert "field larger than field limit" in error.message


def test_row_errors_keep_the_first_ones_and_count_all() -> None:
    errors = RowErrors(keep=2)
    for line in range(2, 7):
        errors.add(line, None, "bad")
    assert [error.line for error in errors.items] == [2, 3]
    assert errors.rows == 5


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-03-31", date(2025, 3, 31)),
        ("2025-3-1", date(2025, 3, 1)),
        ("3/31/2025", date(2025, 3, 31)),
        ("12/1/2024", date(2024, 12, 1)),
        ("2/29/2024", date(2024, 2, 29)),
        ("2/29/2025", None),
        ("2025-02-30", None),
        ("13/1/2025", None),
        ("0000-01-01", None),
        ("31/3/2025", None),
        ("2025/03/31", None),
        ("March 31, 2025", None),
        ("2025-03-31T10:00:00", None),
    ],
)
def test_dates_are_iso_or_month_day_year(raw: str, expected: date | None) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("'=1+1", "=1+1"), ("'-x", "-x"), ("'@a", "@a"), ("'plain", "'plain"), ("'", "'"), ("", "")],
)
def test_the_exports_formula_guard_is_undone(raw: str, expected: str) -> None:
    assert unneutralise(raw) == expected


def row(**values: str) -> dict[str, str]:
    cells = {"task_name": "Task", "priority": "low", **values}
    columns = tuple(cells)
    return clean_row(columns, list(cells.values()))


USERS = {"alice": 7, "alice@example.com": 7}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("TRUE", TaskStatus.TODO),
        ("true", TaskStatus.TODO),
        ("1", TaskStatus.TODO),
        ("Yes", TaskStatus.TODO),
        ("FALSE", TaskStatus.DONE),
        ("0", TaskStatus.DONE),
        ("no", TaskStatus.DONE),
        ("In_Progress", TaskStatus.IN_PROGRESS),
        ("done", TaskStatus.DONE),
        ("", TaskStatus.TODO),
    ],
)
def test_status_is_a_boolean_or_a_name(status: str, expected: TaskStatus) -> None:
    values, errors = validate_row(2, row(status=status), USERS)
    assert errors == []
    assert values is not None
    assert values.status == expected


def test_a_valid_row_is_cleaned_and_parsed() -> None:
    values, errors = validate_row(
        9,
        row(
            task_name="  '=Sum  ",
            description="  keeps its spaces ",
            priority=" High ",
            created_at="3/31/2025",
            due_date="2025-04-30",
            assigned_user=" ALICE@example.com ",
        ),
        USERS,
    )
    assert errors == []
    assert values is not None
    assert values.task_name == "=Sum"
    assert values.description == "  keeps its spaces "
    assert values.priority == TaskPriority.HIGH
    assert values.created_on == date(2025, 3, 31)
    assert values.due_date == date(2025, 4, 30)
    assert values.assignee == "ALICE@example.com"


def test_every_bad_cell_of_a_row_is_reported_in_column_order() -> None:
    values, errors = validate_row(
        4,
        row(
            task_name="",
            status="maybe",
            priority="CRITICAL",
            created_at="31/3/2025",
            assigned_user="nobody",
            due_date="soon",
        ),
        USERS,
    )
    assert values is None
    assert [(e.line, e.column) for e in errors] == [
        (4, "task_name"),
        (4, "status"),
        (4, "priority"),
        (4, "created_at"),
        (4, "assigned_user"),
        (4, "due_date"),
    ]
    messages = {e.column: e.message for e in errors}
    assert messages["task_name"] == "task_name is required."
    assert "'CRITICAL' is not a priority" in messages["priority"]
    assert "'nobody'" in messages["assigned_user"]
    assert "'31/3/2025' is not a date" in messages["created_at"]


def test_lengths_and_required_priority() -> None:
    _, errors = validate_row(
        2, row(task_name="n" * 256, description="d" * 10_001, priority=""), USERS
    )
    assert [e.column for e in errors] == ["task_name", "description", "priority"]
    assert errors[2].message == "priority is required."


def test_a_long_bad_value_is_cut_short_in_its_message() -> None:
    _, errors = validate_row(2, row(priority="x" * 500), USERS)
    assert len(errors[0].message) < 120


def test_excels_separator_line_is_honoured() -> None:
    records, _ = read("sep=;\r\ntask_name;priority\r\nA;low\r\nB;high\r\n")
    assert records == [(3, ["A", "low"]), (4, ["B", "high"])]
