"""CSV import over HTTP (SPEC 7): POST /api/v1/imports, POST /upload-csv, GET /api/v1/imports/{id}.

Runs on both backends: PostgreSQL (COPY + set-based checks) and embedded SQLite (batches).
The same file must give the same answer, row errors and messages included, on either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from tasktracker.config import Settings
from tasktracker.models import AuditEvent, ImportJob, Task, TaskPriority, TaskStatus, User, db
from tasktracker.services import log_cache

from .conftest import TestUser

V1 = "/api/v1/imports"
SEED = "/upload-csv"
HEADER = "task_name,description,status,priority,created_at,assigned_user,due_date"

# A file as a spreadsheet saves it: US dates, TRUE/FALSE, priorities in any case, a bad
# priority, an unknown user and a date that does not exist.
SPREADSHEET = (
    "Task Name,Description,Status,Priority,Created At,Assigned User,Due Date\r\n"
    "Write report,Quarterly numbers,TRUE,High,3/31/2025,alice,4/15/2025\r\n"
    "Fix login,,FALSE,low,1/2/2025,,\r\n"
    "Deploy,Friday,TRUE,CRITICAL,3/31/2025,alice,\r\n"
    "Review,,true,medium,3/31/2025,nobody,\r\n"
    "Plan,,yes,Medium,2/30/2025,,\r\n"
    ",,,,,,\r\n"
)
SPREADSHEET_ERRORS = [
    {
        "line": 4,
        "column": "priority",
        "message": "'CRITICAL' is not a priority: use low, medium or high.",
    },
    {
        "line": 5,
        "column": "assigned_user",
        "message": "'nobody' is not the username or email of an active user.",
    },
    {
        "line": 6,
        "column": "created_at",
        "message": "'2/30/2025' is not a date: use YYYY-MM-DD or M/D/YYYY.",
    },
]
REPORT_KEYS = {"id", "status", "mode", "dry_run", "total_rows", "imported", "failed", "errors"}


def post_csv(
    client: FlaskClient,
    headers: dict[str, str],
    content: str | bytes,
    *,
    route: str = V1,
    query: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    filename: str = "tasks.csv",
) -> Any:
    # The body is built here, in memory: werkzeug's test client would spool a large one to a
    # temporary file that it never closes (a ResourceWarning, which fails the test).
    file = content.encode() if isinstance(content, str) else content
    boundary = "tasktracker-import-test"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (form or {}).items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
        + file
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        route,
        query_string=query or {},
        data=b"".join(parts),
        headers=headers,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def all_tasks(app: Flask) -> list[Task]:
    with app.app_context():
        tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
        db.session.remove()
        return list(tasks)


def import_jobs(app: Flask) -> list[ImportJob]:
    with app.app_context():
        jobs = db.session.scalars(select(ImportJob).order_by(ImportJob.id)).all()
        db.session.remove()
        return list(jobs)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def alice(make_user: Callable[..., TestUser]) -> TestUser:
    return make_user("user", username="alice", email="alice@example.com")


@pytest.fixture
def import_dir(app: Flask) -> Path:
    return Path(app.extensions["tasktracker"].settings.data_dir / "imports")


# -- the happy path ------------------------------------------------------------------------


@pytest.mark.parametrize("route", [V1, SEED])
def test_imports_the_seed_format(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser, route: str
) -> None:
    content = (
        f"{HEADER}\n"
        "Write report,Quarterly numbers,TRUE,High,2025-03-31,alice,2025-04-15\n"
        "Fix login,,false,LOW,3/1/2025,ALICE@example.com,\n"
        "Ship,,in_progress,medium,,,\n"
    )
    response = post_csv(client, admin.headers, content, route=route)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) >= REPORT_KEYS
    assert response.headers["Location"] == f"/api/v1/imports/{body['id']}"
    assert body["status"] == "succeeded"
    assert body["mode"] == "atomic"
    assert body["dry_run"] is False
    assert (body["total_rows"], body["imported"], body["failed"], body["errors"]) == (3, 3, 0, [])
    assert body["progress"] == {"processed_rows": 3, "total_rows": 3, "percent": 100.0}
    assert body["file_name"] == "tasks.csv"
    assert len(body["sha256"]) == 64

    report, fix, ship = all_tasks(app)
    assert report.task_name == "Write report"
    assert report.description == "Quarterly numbers"
    assert report.status == TaskStatus.TODO
    assert report.priority == TaskPriority.HIGH
    assert report.created_at == datetime(2025, 3, 31, tzinfo=UTC)
    assert report.due_date == date(2025, 4, 15)
    assert report.assignee_id == alice.id
    assert (fix.status, fix.priority, fix.assignee_id) == (
        TaskStatus.DONE,
        TaskPriority.LOW,
        alice.id,
    )
    assert fix.created_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert fix.description is None
    assert ship.status == TaskStatus.IN_PROGRESS
    # No created_at in the file: created now.
    assert (datetime.now(UTC) - ship.created_at).total_seconds() < 60
    assert {task.created_by_id for task in (report, fix, ship)} == {admin.id}
    assert {task.version for task in (report, fix, ship)} == {1}


def test_header_in_any_order_bom_crlf_and_only_the_required_columns(
    client: FlaskClient, app: Flask, admin: TestUser
) -> None:
    content = "\ufeffPRIORITY,Task_Name\r\nhigh,First\r\nLow,Second\r\n\r\n\r\n"
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["total_rows"] == 2
    first, second = all_tasks(app)
    assert (first.task_name, first.priority, first.status) == (
        "First",
        TaskPriority.HIGH,
        TaskStatus.TODO,
    )
    assert second.priority == TaskPriority.LOW
    assert first.assignee_id is None
    assert first.due_date is None


def test_quoted_cells_with_commas_quotes_and_line_breaks(
    client: FlaskClient, app: Flask, admin: TestUser
) -> None:
    content = (
        "task_name,description,priority\n"
        '"Call, then write","He said ""now""\nline two\nline three",high\n'
        "Next,plain,CRITICAL\n"
    )
    response = post_csv(client, admin.headers, content, query={"mode": "partial"})
    assert response.status_code == 201, response.get_json()
    (task,) = all_tasks(app)
    assert task.task_name == "Call, then write"
    assert task.description == 'He said "now"\nline two\nline three'
    # The bad row starts on line 5: the quoted cell above spans lines 2 to 4.
    assert [error["line"] for error in response.get_json()["errors"]] == [5]


def test_tabs_backslashes_and_unicode_survive(
    client: FlaskClient, app: Flask, admin: TestUser
) -> None:
    content = (
        "task_name,description,priority\n"
        '"  Ünïcödé ✓  ","tab\there \\N back\\\\slash \\. \rcr",low\n'
        "'=SUM(A1),'-minus,low\n"
    )
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 201, response.get_json()
    first, second = all_tasks(app)
    assert first.task_name == "Ünïcödé ✓"
    assert first.description == "tab\there \\N back\\\\slash \\. \rcr"
    assert (second.task_name, second.description) == ("=SUM(A1)", "-minus")


def test_semicolon_separated_file(client: FlaskClient, app: Flask, admin: TestUser) -> None:
    response = post_csv(client, admin.headers, "task_name;priority\nEins;high\nZwei;low\n")
    assert response.status_code == 201, response.get_json()
    assert [task.task_name for task in all_tasks(app)] == ["Eins", "Zwei"]


# -- atomic, partial, dry run ---------------------------------------------------------------


def test_spreadsheet_file_in_atomic_mode_imports_nothing(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser
) -> None:
    response = post_csv(client, admin.headers, SPREADSHEET)

    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]["code"] == "validation_error"
    assert "Nothing was imported: 3 of 5 rows have errors" in body["error"]["message"]
    report = body["error"]["details"]
    assert set(report) >= REPORT_KEYS
    assert report["status"] == "failed"
    assert (report["total_rows"], report["imported"], report["failed"]) == (5, 0, 3)
    assert report["errors"] == SPREADSHEET_ERRORS
    assert report["errors_truncated"] is False
    assert all_tasks(app) == []

    # The failed import is on record with the same report.
    stored = client.get(f"{V1}/{report['id']}", headers=admin.headers).get_json()
    assert stored["status"] == "failed"
    assert stored["errors"] == SPREADSHEET_ERRORS


@pytest.mark.postgres_only
def test_dates_are_checked_alike_when_staging_does_not_gather_them(
    client: FlaskClient,
    app: Flask,
    admin: TestUser,
    alice: TestUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasktracker.repositories import imports as repository

    # A file with more distinct dates than staging keeps: the check finds them in SQL.
    monkeypatch.setattr(repository, "MAX_DISTINCT_DATES", 0)
    content = SPREADSHEET + "".join(f"Extra {i},,,low,{1 + i}/1/2024,,\r\n" for i in range(12))
    response = post_csv(client, admin.headers, content, query={"mode": "partial"})
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["errors"] == SPREADSHEET_ERRORS
    assert report["imported"] == 2 + 12
    assert datetime(2024, 12, 1, tzinfo=UTC) in {task.created_at for task in all_tasks(app)}


@pytest.mark.parametrize("where", ["query", "form"])
def test_spreadsheet_file_in_partial_mode_imports_the_good_rows(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser, where: str
) -> None:
    options = {"mode": "partial"}
    response = post_csv(
        client,
        admin.headers,
        SPREADSHEET,
        query=options if where == "query" else None,
        form=options if where == "form" else None,
    )

    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["mode"] == "partial"
    assert report["status"] == "succeeded"
    assert (report["total_rows"], report["imported"], report["failed"]) == (5, 2, 3)
    assert report["valid"] == 2
    assert report["errors"] == SPREADSHEET_ERRORS
    first, second = all_tasks(app)
    assert (first.task_name, first.status, first.priority) == (
        "Write report",
        TaskStatus.TODO,
        TaskPriority.HIGH,
    )
    assert first.created_at == datetime(2025, 3, 31, tzinfo=UTC)
    assert first.due_date == date(2025, 4, 15)
    assert first.assignee_id == alice.id
    assert (second.task_name, second.status) == ("Fix login", TaskStatus.DONE)


@pytest.mark.parametrize("where", ["query", "form"])
def test_dry_run_validates_and_writes_nothing(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser, where: str
) -> None:
    options = {"mode": "partial", "dry_run": "true"}
    response = post_csv(
        client,
        admin.headers,
        SPREADSHEET,
        query=options if where == "query" else None,
        form=options if where == "form" else None,
    )

    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["dry_run"] is True
    assert (report["total_rows"], report["imported"], report["failed"], report["valid"]) == (
        5,
        0,
        3,
        2,
    )
    assert report["errors"] == SPREADSHEET_ERRORS
    assert all_tasks(app) == []
    with app.app_context():
        assert (
            db.session.scalars(select(AuditEvent).where(AuditEvent.action == "import")).all() == []
        )


def test_dry_run_in_atomic_mode_answers_like_the_real_import(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser
) -> None:
    response = post_csv(client, admin.headers, SPREADSHEET, query={"dry_run": "1"})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["dry_run"] is True
    assert all_tasks(app) == []


def test_a_dry_run_does_not_count_as_an_import(
    client: FlaskClient, app: Flask, admin: TestUser
) -> None:
    content = "task_name,priority\nOnce,low\n"
    assert post_csv(client, admin.headers, content, query={"dry_run": "true"}).status_code == 200
    assert post_csv(client, admin.headers, content).status_code == 201
    assert len(all_tasks(app)) == 1


# -- the same file twice -------------------------------------------------------------------


def test_the_same_file_again_is_409_unless_forced(
    client: FlaskClient, app: Flask, admin: TestUser
) -> None:
    content = "task_name,priority\nOnce,low\nTwice,high\n"
    first = post_csv(client, admin.headers, content)
    assert first.status_code == 201
    first_id = first.get_json()["id"]

    again = post_csv(client, admin.headers, content, filename="renamed.csv")
    assert again.status_code == 409
    error = again.get_json()["error"]
    assert error["code"] == "conflict"
    assert f"import {first_id}" in error["message"]
    assert error["details"]["import_id"] == first_id
    assert error["details"]["location"] == f"/api/v1/imports/{first_id}"
    assert len(all_tasks(app)) == 2

    forced = post_csv(client, admin.headers, content, query={"force": "true"})
    assert forced.status_code == 201
    assert len(all_tasks(app)) == 4
    assert post_csv(client, admin.headers, content, form={"force": "yes"}).status_code == 201


def test_a_file_that_failed_may_be_sent_again(
    client: FlaskClient, admin: TestUser, alice: TestUser
) -> None:
    assert post_csv(client, admin.headers, SPREADSHEET).status_code == 422
    assert post_csv(client, admin.headers, SPREADSHEET).status_code == 422


# -- row errors ----------------------------------------------------------------------------


def test_unreadable_and_ragged_rows_are_row_errors(
    client: FlaskClient, app: Flask, admin: TestUser
) -> None:
    huge = "x" * 200_000
    content = f"task_name,priority\nFine,low\n{huge},high\nToo,many,cells\nPadded,low,,\nShort\n"
    response = post_csv(client, admin.headers, content, query={"mode": "partial"})
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert (report["total_rows"], report["imported"], report["failed"]) == (5, 2, 3)
    lines = [(error["line"], error["column"]) for error in report["errors"]]
    assert lines == [(3, None), (4, None), (6, "priority")]
    assert "field larger than field limit" in report["errors"][0]["message"]
    assert [task.task_name for task in all_tasks(app)] == ["Fine", "Padded"]


def test_values_break_the_rules(
    client: FlaskClient, app: Flask, admin: TestUser, make_user: Callable[..., TestUser]
) -> None:
    gone = make_user("user", username="gone")
    with app.app_context():
        db.session.get(User, gone.id).is_active = False
        db.session.commit()
    content = (
        f"{HEADER}\n"
        f"{'n' * 256},,,low,,,\n"
        f"Long,{'d' * 10_001},,low,,,\n"
        "Status,,maybe,low,,,\n"
        "Nobody,,,,,,\n"
        "Inactive,,,low,,gone,\n"
        "Due,,,low,,,31/12/2025\n"
        "Year zero,,,low,0000-01-01,,\n"
    )
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [
        (2, "task_name"),
        (3, "description"),
        (4, "status"),
        (5, "priority"),
        (6, "assigned_user"),
        (7, "due_date"),
        (8, "created_at"),
    ]
    assert errors[0]["message"] == "task_name is longer than 255 characters."
    assert errors[3]["message"] == "priority is required."
    assert errors[4]["message"] == "'gone' is not the username or email of an active user."


def test_only_the_first_errors_are_listed_and_all_are_counted(
    client: FlaskClient, admin: TestUser, override_settings: Callable[..., Settings]
) -> None:
    override_settings(import_max_errors=5)
    content = "task_name,priority\n" + "".join(f"T{i},urgent\n" for i in range(12))
    response = post_csv(client, admin.headers, content)
    report = response.get_json()["error"]["details"]
    assert report["failed"] == 12
    assert [error["line"] for error in report["errors"]] == [2, 3, 4, 5, 6]
    assert report["errors_truncated"] is True


def test_errors_are_cut_at_a_row_boundary(
    client: FlaskClient, admin: TestUser, override_settings: Callable[..., Settings]
) -> None:
    override_settings(import_max_errors=3)
    content = "task_name,status,priority\nA,x,y\nB,x,y\n"
    report = post_csv(client, admin.headers, content).get_json()["error"]["details"]
    # Two reasons per row: the second row would not fit whole, so it is left out.
    assert [(e["line"], e["column"]) for e in report["errors"]] == [(2, "status"), (2, "priority")]
    assert report["errors_truncated"] is True


# -- files that are not usable -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "field", "names"),
    [
        ("task_name,description\nA,b\n", "missing_columns", ["priority"]),
        ("description\nb\n", "missing_columns", ["task_name", "priority"]),
        ("task_name,priority,owner,colour\nA,low,b,c\n", "unknown_columns", ["owner", "colour"]),
        ("task_name,priority,Priority\nA,low,high\n", "duplicate_columns", ["priority"]),
    ],
)
def test_bad_header_is_422_naming_the_columns(
    client: FlaskClient, app: Flask, admin: TestUser, content: str, field: str, names: list[str]
) -> None:
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][field] == names
    for name in names:
        assert name in error["message"]
    assert import_jobs(app) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "empty"),
        ("\ufeff\r\n\r\n", "empty"),
        ("task_name,priority\r\n", "no rows"),
        ("task_name,priority\n,\n\n", "no rows"),
    ],
)
def test_empty_files_are_422(
    client: FlaskClient, admin: TestUser, import_dir: Path, content: str, words: str
) -> None:
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 422
    assert words in response.get_json()["error"]["message"]
    assert "file" in response.get_json()["error"]["details"]
    assert list(import_dir.glob("*")) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("task_name,priority\nCafé,low\n".encode("latin-1"), "not valid UTF-8"),
        ("task_name,priority\nA,low\n".encode("utf-16"), "UTF-16"),
        (b"task_name,priority\nA,low\xe2\x82", "not valid UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_415(
    client: FlaskClient, app: Flask, admin: TestUser, import_dir: Path, content: bytes, words: str
) -> None:
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 415
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert words in error["message"]
    assert "UTF-8" in error["message"]
    assert all_tasks(app) == []
    assert list(import_dir.glob("*")) == []


@pytest.mark.parametrize(
    "send",
    [
        lambda client, headers: client.post(V1, json={"file": "a,b"}, headers=headers),
        lambda client, headers: client.post(
            V1, data="task_name,priority\nA,low\n", content_type="text/csv", headers=headers
        ),
    ],
    ids=["json", "raw-csv"],
)
def test_a_body_that_is_not_a_form_is_415(
    client: FlaskClient, admin: TestUser, send: Callable[..., Any]
) -> None:
    response = send(client, admin.headers)
    assert response.status_code == 415
    assert "multipart/form-data" in response.get_json()["error"]["message"]


def test_a_form_without_the_file_is_422(client: FlaskClient, admin: TestUser) -> None:
    text_field = "task_name,priority\nA,low\n"
    for response in (
        client.post(V1, data={"file": text_field}, headers=admin.headers),
        client.post(
            V1, data={"file": text_field}, headers=admin.headers, content_type="multipart/form-data"
        ),
        client.post(V1, headers=admin.headers),
        client.post(V1, data={"mode": "partial"}, headers=admin.headers),
        client.post(
            V1, data={"mode": "partial"}, headers=admin.headers, content_type="multipart/form-data"
        ),
    ):
        assert response.status_code == 422
        assert "file" in response.get_json()["error"]["details"]


@pytest.mark.parametrize(
    ("query", "form", "field"),
    [
        ({"mode": "all"}, {}, "mode"),
        ({}, {"mode": "all"}, "mode"),
        ({"dry_run": "perhaps"}, {}, "dry_run"),
        ({"colour": "red"}, {}, "colour"),
        ({}, {"colour": "red"}, "colour"),
        ({"mode": "atomic"}, {"mode": "partial"}, "mode"),
    ],
)
def test_bad_options_are_422_naming_them(
    client: FlaskClient,
    app: Flask,
    admin: TestUser,
    query: dict[str, str],
    form: dict[str, str],
    field: str,
) -> None:
    response = post_csv(
        client, admin.headers, "task_name,priority\nA,low\n", query=query, form=form
    )
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]
    assert all_tasks(app) == []


def test_a_body_over_the_size_limit_is_413(
    client: FlaskClient, app: Flask, admin: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 2048)
    content = "task_name,priority\n" + "A task name,low\n" * 200
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"]["code"] == "payload_too_large"
    assert body["request_id"]
    assert all_tasks(app) == []


def test_a_line_too_long_to_be_a_task_row_is_422(
    client: FlaskClient, app: Flask, admin: TestUser, import_dir: Path
) -> None:
    content = "task_name,priority\nA,low\n" + "x" * (1_100_000) + ",low\nB,low\n"
    response = post_csv(client, admin.headers, content)
    assert response.status_code == 422
    assert "longer than 1 MiB" in response.get_json()["error"]["message"]
    assert all_tasks(app) == []
    assert list(import_dir.glob("*")) == []


def test_the_uploaded_name_is_never_a_path(
    client: FlaskClient, app: Flask, admin: TestUser, import_dir: Path, tmp_path: Path
) -> None:
    response = post_csv(
        client, admin.headers, "task_name,priority\nA,low\n", filename="../../evil\x01.csv"
    )
    assert response.status_code == 201
    assert response.get_json()["file_name"] == "../../evil.csv"  # shown, never used
    assert not (import_dir.parent.parent / "evil.csv").exists()
    # The stored copy is gone once the import is done.
    assert list(import_dir.glob("*")) == []


# -- who may import ------------------------------------------------------------------------


@pytest.mark.parametrize("route", [V1, SEED])
def test_only_admins_import(
    client: FlaskClient, app: Flask, user: TestUser, viewer: TestUser, route: str
) -> None:
    content = "task_name,priority\nA,low\n"
    assert post_csv(client, {}, content, route=route).status_code == 401
    for caller in (user, viewer):
        response = post_csv(client, caller.headers, content, route=route)
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
    assert all_tasks(app) == []
    assert import_jobs(app) == []


def test_reading_an_import(
    client: FlaskClient, admin: TestUser, user: TestUser, make_user: Callable[..., TestUser]
) -> None:
    created = post_csv(client, admin.headers, "task_name,priority\nA,low\n").get_json()
    url = f"{V1}/{created['id']}"

    response = client.get(url, headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json() == created

    other_admin = make_user("admin", username="root2")
    assert client.get(url, headers=other_admin.headers).status_code == 200
    assert client.get(url).status_code == 401
    assert client.get(url, headers=user.headers).status_code == 403
    assert client.get(f"{V1}/999999", headers=admin.headers).status_code == 404


# -- side effects --------------------------------------------------------------------------


def test_one_audit_event_per_import_with_its_counts(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser
) -> None:
    report = post_csv(client, admin.headers, SPREADSHEET, query={"mode": "partial"}).get_json()
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        imports = [event for event in events if event.action == "import"]
        assert len(imports) == 1
        event = imports[0]
        assert (event.actor_id, event.entity, event.entity_id) == (
            admin.id,
            "import_job",
            str(report["id"]),
        )
        assert event.changes is not None
        assert event.changes["imported"] == [None, 2]
        assert event.changes["failed"] == [None, 3]
        assert event.changes["total_rows"] == [None, 5]
        assert event.request_id


def test_an_import_makes_cached_log_pages_stale_and_counts_rows(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser
) -> None:
    cache = app.extensions["tasktracker"].cache
    before = log_cache.current_version(cache)
    imported = metric("tasktracker_import_rows_total", outcome="imported")
    failed = metric("tasktracker_import_rows_total", outcome="failed")

    post_csv(client, admin.headers, SPREADSHEET, query={"mode": "partial"})

    assert log_cache.current_version(cache) != before
    assert metric("tasktracker_import_rows_total", outcome="imported") == imported + 2
    assert metric("tasktracker_import_rows_total", outcome="failed") == failed + 3


def test_a_large_file_is_handed_to_a_job(
    client: FlaskClient,
    app: Flask,
    admin: TestUser,
    override_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
) -> None:
    if not app.extensions["tasktracker"].settings.celery_eager:
        request.getfixturevalue("celery_worker")
    override_settings(import_async_rows=2)
    content = "task_name,priority\n" + "".join(f"Task {i},low\n" for i in range(5))

    response = post_csv(client, admin.headers, content)

    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/imports/{body['id']}"
    assert body["status"] in {"queued", "running", "succeeded"}
    report = wait_for(client, admin, body["id"])
    assert report["status"] == "succeeded"
    assert (report["total_rows"], report["imported"]) == (5, 5)
    assert len(all_tasks(app)) == 5


def wait_for(client: FlaskClient, admin: TestUser, import_id: int, timeout: float = 60) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        report = client.get(f"{V1}/{import_id}", headers=admin.headers).get_json()
        if report["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def test_uploads_are_rate_limited(
    client: FlaskClient, admin: TestUser, strict_limits: Settings
) -> None:
    for i in range(10):
        response = post_csv(client, admin.headers, f"task_name,priority\nT{i},low\n")
        assert response.status_code == 201
    limited = post_csv(client, admin.headers, "task_name,priority\nOne more,low\n")
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "too_many_requests"


# -- round trip ----------------------------------------------------------------------------


def test_an_export_imports_back_as_the_same_tasks(
    client: FlaskClient, app: Flask, admin: TestUser, alice: TestUser
) -> None:
    content = (
        f"{HEADER}\n"
        '"=HYPERLINK(""x"")","+1, -1\nand @home",in_progress,high,2024-02-29,alice,2025-12-31\n'
        "-leading minus,@at,done,low,1/5/2025,,\n"
        '"  spaced  ","\ttabbed",todo,medium,,ALICE@EXAMPLE.COM,\n'
        'Ünïcödé ✓,"quote "" inside",false,Low,2025-07-04,,2025-07-05\n'
        "''=looks guarded already,'plain quote,todo,low,,,\n"
    )
    assert post_csv(client, admin.headers, content).status_code == 201
    originals = all_tasks(app)

    exported = client.get("/api/v1/tasks/export.csv?sort=id", headers=admin.headers)
    if exported.status_code == 404:
        pytest.skip("GET /api/v1/tasks/export.csv is not there yet")
    assert exported.status_code == 200
    response = post_csv(client, admin.headers, exported.get_data(), filename="export.csv")

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["imported"] == len(originals)
    copies = all_tasks(app)[len(originals) :]

    def key(task: Task) -> tuple[Any, ...]:
        return (
            task.task_name,
            task.description,
            task.status,
            task.priority,
            task.created_at.date(),
            task.assignee_id,
            task.due_date,
        )

    assert sorted(map(key, copies), key=repr) == sorted(map(key, originals), key=repr)


# -- the OpenAPI description ---------------------------------------------------------------


def test_openapi_describes_the_upload(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    for path in (V1, SEED):
        post = spec["paths"][path]["post"]
        body = post["requestBody"]["content"]["multipart/form-data"]["schema"]
        if "$ref" in body:
            body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        assert body["properties"]["file"]["format"] == "binary"
        assert {"mode", "dry_run", "force"} <= set(body["properties"])
        assert {p["name"] for p in post["parameters"] if p["in"] == "query"} >= {
            "mode",
            "dry_run",
            "force",
        }
        assert {"200", "201", "202", "401", "403", "409", "413", "415", "422", "429"} <= set(
            post["responses"]
        )
        assert "default" not in post["responses"]
    get = spec["paths"][f"{V1}/{{import_id}}"]["get"]
    assert {"200", "401", "403", "404"} <= set(get["responses"])
