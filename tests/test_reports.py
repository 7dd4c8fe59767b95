"""GET /api/v1/reports/daily: per day, logged tasks counted by status and by priority."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tasktracker.config import Settings
from tasktracker.models import TaskPriority, TaskStatus
from tasktracker.services.snapshot import today

from .conftest import TestUser
from .task_log_factories import Tasks, assert_error, tasks_fixture  # noqa: F401  (the tasks fixture)

URL = "/api/v1/reports/daily"


def report(client: FlaskClient, who: TestUser, **params: str) -> Any:
    return client.get(URL, query_string=params, headers=who.headers)


def zeros() -> tuple[dict[str, int], dict[str, int]]:
    return {"todo": 0, "in_progress": 0, "done": 0}, {"low": 0, "medium": 0, "high": 0}


def test_counts_by_status_and_priority_per_day(
    client: FlaskClient, tasks: Tasks, admin: TestUser, viewer: TestUser
) -> None:
    a = tasks.add(admin.id, "a", priority="high")
    tasks.add(admin.id, "b", status="in_progress", priority="high")
    tasks.add(admin.id, "c", priority="low")
    tasks.snapshot(date(2024, 5, 1))
    # Day two: a finished, a new task appears; nothing is logged on day three.
    tasks.update(a, status=TaskStatus.DONE)
    tasks.add(admin.id, "d", status="in_progress", priority="medium")
    tasks.snapshot(date(2024, 5, 2))

    response = report(client, viewer, **{"from": "2024-05-01", "to": "2024-05-03"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["from"], body["to"]) == ("2024-05-01", "2024-05-03")
    status_0, priority_0 = zeros()
    assert body["days"] == [
        {
            "date": "2024-05-01",
            "total": 3,
            "by_status": {"todo": 2, "in_progress": 1, "done": 0},
            "by_priority": {"low": 1, "medium": 0, "high": 2},
        },
        {
            "date": "2024-05-02",
            "total": 3,
            "by_status": {"todo": 1, "in_progress": 2, "done": 0},
            "by_priority": {"low": 1, "medium": 1, "high": 1},
        },
        {"date": "2024-05-03", "total": 0, "by_status": status_0, "by_priority": priority_0},
    ]


def test_a_task_deleted_later_still_counts_on_the_days_it_was_logged(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser
) -> None:
    task_id = tasks.add(admin.id)
    tasks.snapshot(date(2024, 5, 1))
    tasks.delete(task_id)
    body = report(client, user, **{"from": "2024-05-01", "to": "2024-05-01"}).get_json()
    assert body["days"][0]["total"] == 1


def test_defaults_are_the_last_30_days(
    client: FlaskClient, user: TestUser, settings: Settings
) -> None:
    body = report(client, user).get_json()
    end = today(settings.tz)
    start = end - timedelta(days=29)
    assert (body["from"], body["to"]) == (start.isoformat(), end.isoformat())
    assert len(body["days"]) == 30
    only_from = report(client, user, **{"from": "2024-01-01"}).get_json()
    assert (only_from["to"], len(only_from["days"])) == ("2024-01-30", 30)


def test_a_year_is_the_longest_report(client: FlaskClient, user: TestUser) -> None:
    start = date(2024, 1, 1)
    ok = report(client, user, **{"from": start.isoformat(), "to": "2024-12-31"})
    assert ok.status_code == 200
    assert len(ok.get_json()["days"]) == 366
    too_long = report(client, user, **{"from": start.isoformat(), "to": "2025-01-01"})
    assert_error(too_long, 422, "to")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2024-05-02", "to": "2024-05-01"}, "from"),
        ({"from": "2024-02-30"}, "from"),
        ({"to": "last week"}, "to"),
        ({"from": ""}, "from"),
    ],
)
def test_bad_ranges_are_422(
    client: FlaskClient, user: TestUser, params: dict[str, str], field: str
) -> None:
    assert_error(report(client, user, **params), 422, field)


def test_reports_need_a_token(client: FlaskClient) -> None:
    assert_error(client.get(URL), 401)


def test_every_role_reads_reports(
    client: FlaskClient, admin: TestUser, user: TestUser, viewer: TestUser
) -> None:
    for who in (admin, user, viewer):
        assert report(client, who, **{"from": "2024-05-01", "to": "2024-05-01"}).status_code == 200


def test_counts_come_from_one_grouped_query(
    client: FlaskClient, tasks: Tasks, admin: TestUser
) -> None:
    from sqlalchemy import event

    from tasktracker.models import db

    for i in range(5):
        tasks.add(admin.id, f"t{i}", priority=list(TaskPriority)[i % 3])
    for day in range(1, 11):
        tasks.snapshot(date(2024, 5, day))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with client.application.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        body = report(client, admin, **{"from": "2024-05-01", "to": "2024-05-10"}).get_json()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [d["total"] for d in body["days"]] == [5] * 10
    assert len([s for s in statements if "task_logs" in s]) == 1
