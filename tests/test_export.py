"""GET /api/v1/tasks/export.csv: the list's filters, streamed, re-importable, injection-safe."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tasktracker.models import db
from tasktracker.services.csv_rows import unneutralise
from tasktracker.services.export import COLUMNS, neutralise
from tests.conftest import TestUser
from tests.tasks_helpers import assert_error, bulk_tasks, create

EXPORT = "/api/v1/tasks/export.csv"


def rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_export_is_csv_in_the_import_format(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    create(
        client,
        user.headers,
        task_name="Report",
        description='Line one\nline "two", with comma',
        status="in_progress",
        priority="high",
        due_date="2030-05-01",
        assignee_id=other_user.id,
    )
    create(client, user.headers, task_name="Plain")
    response = client.get(EXPORT, headers=user.headers)
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert COLUMNS == (
        "task_name",
        "description",
        "status",
        "priority",
        "created_at",
        "assigned_user",
        "due_date",
    )
    plain, report = rows(response)  # newest first, as the list
    assert report["task_name"] == "Report"
    assert report["description"] == 'Line one\nline "two", with comma'
    assert report["status"] == "in_progress"
    assert report["priority"] == "high"
    assert report["assigned_user"] == "bob"
    assert report["due_date"] == "2030-05-01"
    assert len(report["created_at"]) == 10  # YYYY-MM-DD
    assert plain["assigned_user"] == ""
    assert plain["due_date"] == ""
    assert plain["description"] == ""


def test_export_applies_the_list_filters_and_sort(client: FlaskClient, user: TestUser) -> None:
    create(client, user.headers, task_name="a", priority="low", status="done")
    create(client, user.headers, task_name="b", priority="high")
    create(client, user.headers, task_name="c", priority="medium")
    by_priority = rows(client.get(f"{EXPORT}?sort=-priority", headers=user.headers))
    assert [r["task_name"] for r in by_priority] == ["b", "c", "a"]
    todo = rows(client.get(f"{EXPORT}?status=todo&sort=task_name", headers=user.headers))
    assert [r["task_name"] for r in todo] == ["b", "c"]
    found = rows(client.get(f"{EXPORT}?q=c", headers=user.headers))
    assert [r["task_name"] for r in found] == ["c"]


def test_export_of_deleted_tasks_is_for_admins(
    client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    task = create(client, user.headers, task_name="gone")
    create(client, user.headers, task_name="here")
    client.delete(f"/api/v1/tasks/{task['id']}", headers=admin.headers)
    assert [r["task_name"] for r in rows(client.get(EXPORT, headers=user.headers))] == ["here"]
    only = rows(client.get(f"{EXPORT}?deleted=only", headers=admin.headers))
    assert [r["task_name"] for r in only] == ["gone"]
    assert_error(client.get(f"{EXPORT}?deleted=include", headers=user.headers), 403)


def test_export_errors(client: FlaskClient, viewer: TestUser) -> None:
    assert_error(client.get(EXPORT), 401)
    assert_error(client.get(f"{EXPORT}?status=bogus", headers=viewer.headers), 422, "status")
    assert_error(client.get(f"{EXPORT}?sort=password", headers=viewer.headers), 422, "sort")
    assert_error(client.get(f"{EXPORT}?page=2", headers=viewer.headers), 422, "page")
    assert client.get(EXPORT, headers=viewer.headers).status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain = text", "plain = text"),
        ("'=already guarded", "''=already guarded"),
        ("'quoted", "'quoted"),
        ("''", "''"),
        ("", ""),
    ],
)
def test_neutralise(value: str, expected: str) -> None:
    assert neutralise(value) == expected
    assert unneutralise(neutralise(value)) == value


def test_export_neutralises_formula_cells(
    client: FlaskClient, user: TestUser, make_user: Any
) -> None:
    create(client, user.headers, task_name="=1+1", description="@cmd")
    create(client, user.headers, task_name="-dash", description="+plus")
    exported = rows(client.get(f"{EXPORT}?sort=id", headers=user.headers))
    assert [(r["task_name"], r["description"]) for r in exported] == [
        ("'=1+1", "'@cmd"),
        ("'-dash", "'+plus"),
    ]


def test_export_streams_in_batches(app: Flask, client: FlaskClient, user: TestUser) -> None:
    bulk_tasks(app, user.id, 3500)
    response = client.get(EXPORT, headers=user.headers, buffered=False)
    assert response.status_code == 200
    assert response.is_streamed
    chunks = list(response.response)
    response.close()
    # The header, then one chunk per batch of 1,000 rows: never the whole file at once.
    assert len(chunks) >= 5
    text = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks).decode()
    assert len(list(csv.DictReader(io.StringIO(text)))) == 3500


@pytest.mark.postgres_only
def test_export_reads_through_a_server_side_cursor(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    bulk_tasks(app, user.id, 10)
    cursors: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM tasks" in statement:
            cursors.append(type(cursor).__name__)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        assert len(rows(client.get(EXPORT, headers=user.headers))) == 10
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert cursors == ["ServerCursor"]
