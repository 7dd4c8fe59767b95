"""Task-log routes over HTTP: the seed's GET /tasks, GET /task/<id>, POST /log-tasks and
/api/v1/task-logs, /api/v1/task-logs/{id}, /api/v1/task-logs/run(s), /api/v1/tasks/{id}/logs."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tasktracker.config import Settings
from tasktracker.models import TaskStatus
from tasktracker.services.snapshot import today

from .conftest import TestUser
from .task_log_factories import Tasks, assert_error, tasks_fixture  # noqa: F401  (the tasks fixture)

DAY = date(2024, 5, 1)
NEXT_DAY = date(2024, 5, 2)
LOG_KEYS = {"id", "task_id", "log_date", "status", "priority", "assignee_id", "task"}
TASK_KEYS = {"id", "task_name", "description", "priority", "status"}


@pytest.fixture
def two_days(tasks: Tasks, admin: TestUser, user: TestUser) -> dict[str, int]:
    """Two tasks logged on DAY, three on NEXT_DAY (one of them created in between)."""
    ids = {
        "write": tasks.add(admin.id, "Write", priority="high", assignee_id=user.id),
        "review": tasks.add(admin.id, "Review", status="in_progress", priority="low"),
    }
    tasks.snapshot(DAY)
    ids["ship"] = tasks.add(admin.id, "Ship", description=None)
    tasks.snapshot(NEXT_DAY)
    return ids


def get(client: FlaskClient, url: str, who: TestUser, **params: Any) -> Any:
    return client.get(url, query_string=params, headers=who.headers)


# -- the seed's GET /tasks ------------------------------------------------------------------------


def test_seed_list_pages_logs_newest_date_first(
    client: FlaskClient, two_days: dict[str, int], viewer: TestUser
) -> None:
    response = get(client, "/tasks", viewer)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) >= {"tasks", "total", "page", "per_page", "pages"}
    assert (body["total"], body["page"], body["per_page"], body["pages"]) == (5, 1, 20, 1)
    assert [(log["log_date"], log["task_id"]) for log in body["tasks"]] == [
        ("2024-05-02", two_days["write"]),
        ("2024-05-02", two_days["review"]),
        ("2024-05-02", two_days["ship"]),
        ("2024-05-01", two_days["write"]),
        ("2024-05-01", two_days["review"]),
    ]
    first = body["tasks"][0]
    assert set(first) >= LOG_KEYS
    assert set(first["task"]) >= TASK_KEYS
    assert first["task"] == {
        "id": two_days["write"],
        "task_name": "Write",
        "description": "details",
        "priority": "high",
        "status": "todo",
        "deleted_at": None,
    }
    assert (first["status"], first["priority"]) == ("todo", "high")


def test_a_log_keeps_its_day_while_task_shows_the_task_now(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser, other_user: TestUser
) -> None:
    task_id = tasks.add(admin.id, "Old name", assignee_id=user.id)
    tasks.snapshot(DAY)
    tasks.update(task_id, task_name="New name", status=TaskStatus.DONE, assignee_id=other_user.id)
    (log,) = get(client, "/tasks", user).get_json()["tasks"]
    assert (log["status"], log["assignee_id"]) == ("todo", user.id)
    assert (log["task"]["task_name"], log["task"]["status"]) == ("New name", "done")


def test_seed_list_filters_by_date(
    client: FlaskClient, two_days: dict[str, int], user: TestUser
) -> None:
    body = get(client, "/tasks", user, date="2024-05-01").get_json()
    assert body["total"] == 2
    assert {log["log_date"] for log in body["tasks"]} == {"2024-05-01"}
    empty = get(client, "/tasks", user, date="2023-01-01").get_json()
    assert (empty["tasks"], empty["total"], empty["pages"]) == ([], 0, 0)


def test_pages_never_repeat_or_skip_a_log(
    client: FlaskClient, tasks: Tasks, admin: TestUser
) -> None:
    for i in range(9):
        tasks.add(admin.id, f"t{i}")
    for offset in range(3):
        tasks.snapshot(DAY + timedelta(days=offset))
    seen: list[int] = []
    for page in (1, 2, 3, 4):
        body = get(client, "/tasks", admin, page=page, per_page=8).get_json()
        assert (body["total"], body["pages"], body["per_page"]) == (27, 4, 8)
        seen += [log["id"] for log in body["tasks"]]
    assert len(seen) == len(set(seen)) == 27
    assert get(client, "/tasks", admin, page=5, per_page=8).get_json()["tasks"] == []


@pytest.mark.parametrize("url", ["/tasks", "/api/v1/task-logs"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"date": "2024-13-01"}, "date"),
        ({"date": "yesterday"}, "date"),
        ({"date": ""}, "date"),
    ],
)
def test_bad_list_parameters_are_422(
    client: FlaskClient, user: TestUser, url: str, params: dict[str, Any], field: str
) -> None:
    assert_error(get(client, url, user, **params), 422, field)


@pytest.mark.parametrize(
    "url", ["/tasks", "/task/1", "/api/v1/task-logs", "/api/v1/task-logs/1", "/api/v1/tasks/1/logs"]
)
def test_reads_need_a_token(client: FlaskClient, url: str) -> None:
    assert_error(client.get(url), 401)
    assert_error(client.get(url, headers={"Authorization": "Bearer nope"}), 401)


def test_deleted_tasks_logs_are_for_admins_only(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser
) -> None:
    kept = tasks.add(admin.id, "kept")
    gone = tasks.add(admin.id, "gone")
    tasks.snapshot(DAY)
    tasks.delete(gone)
    user_view = get(client, "/tasks", user).get_json()
    assert [log["task_id"] for log in user_view["tasks"]] == [kept]
    assert user_view["total"] == 1
    admin_view = get(client, "/tasks", admin).get_json()
    assert [log["task_id"] for log in admin_view["tasks"]] == [kept, gone]
    assert admin_view["tasks"][1]["task"]["deleted_at"] is not None


# -- one log -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/task/{id}", "/api/v1/task-logs/{id}"])
def test_one_log_with_its_task(
    client: FlaskClient, two_days: dict[str, int], viewer: TestUser, url: str
) -> None:
    logs = get(client, "/tasks", viewer, date="2024-05-02").get_json()["tasks"]
    ship = next(log for log in logs if log["task_id"] == two_days["ship"])
    response = get(client, url.format(id=ship["id"]), viewer)
    assert response.status_code == 200
    assert response.get_json() == ship
    assert response.get_json()["task"]["description"] is None


@pytest.mark.parametrize("url", ["/task/{id}", "/api/v1/task-logs/{id}"])
def test_a_missing_log_is_404(client: FlaskClient, user: TestUser, url: str) -> None:
    assert_error(get(client, url.format(id=999), user), 404)
    assert_error(get(client, url.format(id="abc"), user), 404)


@pytest.mark.parametrize("url", ["/task/{id}", "/api/v1/task-logs/{id}"])
def test_a_deleted_tasks_log_is_404_except_for_admins(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser, url: str
) -> None:
    task_id = tasks.add(admin.id)
    tasks.snapshot(DAY)
    tasks.delete(task_id)
    (log,) = get(client, "/tasks", admin).get_json()["tasks"]
    assert_error(get(client, url.format(id=log["id"]), user), 404)
    assert get(client, url.format(id=log["id"]), admin).status_code == 200


# -- /api/v1/task-logs filters -------------------------------------------------------------------


def test_v1_list_shape(client: FlaskClient, two_days: dict[str, int], user: TestUser) -> None:
    body = get(client, "/api/v1/task-logs", user, per_page=2).get_json()
    assert set(body) >= {"items", "total", "page", "per_page", "pages", "next_cursor"}
    assert (body["total"], body["pages"], body["next_cursor"]) == (5, 3, None)
    assert len(body["items"]) == 2
    assert set(body["items"][0]) >= LOG_KEYS


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"date": "2024-05-01"}, {("2024-05-01", "write"), ("2024-05-01", "review")}),
        (
            {"from": "2024-05-02"},
            {("2024-05-02", "write"), ("2024-05-02", "review"), ("2024-05-02", "ship")},
        ),
        ({"to": "2024-05-01"}, {("2024-05-01", "write"), ("2024-05-01", "review")}),
        (
            {"from": "2024-05-01", "to": "2024-05-01", "status": "in_progress"},
            {("2024-05-01", "review")},
        ),
        (
            {"status": "todo,In_Progress", "priority": "LOW"},
            {("2024-05-01", "review"), ("2024-05-02", "review")},
        ),
        (
            {"priority": "high,low", "date": "2024-05-02"},
            {("2024-05-02", "write"), ("2024-05-02", "review")},
        ),
        ({"status": "done"}, set()),
    ],
)
def test_v1_filters(
    client: FlaskClient,
    two_days: dict[str, int],
    user: TestUser,
    params: dict[str, str],
    expected: set[tuple[str, str]],
) -> None:
    names = {task_id: name for name, task_id in two_days.items()}
    body = get(client, "/api/v1/task-logs", user, **params).get_json()
    assert {(log["log_date"], names[log["task_id"]]) for log in body["items"]} == expected
    assert body["total"] == len(expected)


def test_v1_filter_by_task(client: FlaskClient, two_days: dict[str, int], user: TestUser) -> None:
    body = get(client, "/api/v1/task-logs", user, task=two_days["write"]).get_json()
    assert [log["log_date"] for log in body["items"]] == ["2024-05-02", "2024-05-01"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2024-02-30"}, "from"),
        ({"to": "nope"}, "to"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "from"),
        ({"date": "2024-05-01", "from": "2024-05-01"}, "date"),
        ({"status": "todo,finished"}, "status"),
        ({"priority": "urgent"}, "priority"),
        ({"task": "abc"}, "task"),
        ({"task": "0"}, "task"),
    ],
)
def test_v1_bad_filters_are_422(
    client: FlaskClient, user: TestUser, params: dict[str, str], field: str
) -> None:
    assert_error(get(client, "/api/v1/task-logs", user, **params), 422, field)


# -- /api/v1/tasks/{id}/logs ---------------------------------------------------------------------


def test_one_tasks_logs(client: FlaskClient, two_days: dict[str, int], user: TestUser) -> None:
    url = f"/api/v1/tasks/{two_days['review']}/logs"
    body = get(client, url, user).get_json()
    assert [(log["log_date"], log["status"]) for log in body["items"]] == [
        ("2024-05-02", "in_progress"),
        ("2024-05-01", "in_progress"),
    ]
    assert (body["total"], body["next_cursor"]) == (2, None)
    assert get(client, url, user, **{"from": "2024-05-02"}).get_json()["total"] == 1
    ship = get(client, f"/api/v1/tasks/{two_days['ship']}/logs", user, to="2024-05-01")
    assert ship.get_json()["items"] == []


def test_logs_of_a_missing_or_deleted_task(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser
) -> None:
    assert_error(get(client, "/api/v1/tasks/999/logs", user), 404)
    task_id = tasks.add(admin.id)
    tasks.snapshot(DAY)
    tasks.delete(task_id)
    assert_error(get(client, f"/api/v1/tasks/{task_id}/logs", user), 404)
    assert get(client, f"/api/v1/tasks/{task_id}/logs", admin).get_json()["total"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"from": "x"}, "from"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "from"),
    ],
)
def test_task_logs_bad_parameters(
    client: FlaskClient, tasks: Tasks, admin: TestUser, params: dict[str, Any], field: str
) -> None:
    task_id = tasks.add(admin.id)
    assert_error(get(client, f"/api/v1/tasks/{task_id}/logs", admin, **params), 422, field)


# -- running the snapshot: POST /log-tasks and POST /api/v1/task-logs/run ------------------------

RUN_URLS = ["/log-tasks", "/api/v1/task-logs/run"]


@pytest.mark.parametrize("url", RUN_URLS)
def test_admin_runs_the_snapshot(
    client: FlaskClient, tasks: Tasks, admin: TestUser, settings: Settings, url: str
) -> None:
    tasks.add(admin.id)
    tasks.add(admin.id, status="done")
    response = client.post(url, headers=admin.headers)
    assert response.status_code == 202, response.get_json()
    run = response.get_json()
    assert set(run) >= {"id", "job_id", "status", "log_date", "created", "existing"}
    assert run["job_id"] == run["id"]
    assert run["trigger"] == "manual"
    assert run["requested_by_id"] == admin.id
    assert response.headers["Location"] == f"/api/v1/task-logs/runs/{run['id']}"
    if settings.celery_eager:  # embedded: the job ran inline
        assert (run["status"], run["created"], run["existing"]) == ("succeeded", 1, 0)
        assert run["log_date"] == today(settings.tz).isoformat()
    else:
        assert run["status"] in {"queued", "running", "succeeded"}
    status = get(client, response.headers["Location"], admin)
    assert status.status_code == 200
    assert status.get_json()["id"] == run["id"]


@pytest.mark.parametrize("url", RUN_URLS)
def test_a_run_for_a_past_date(
    client: FlaskClient, tasks: Tasks, admin: TestUser, settings: Settings, url: str
) -> None:
    tasks.add(admin.id)
    response = client.post(url, json={"date": "2024-05-01"}, headers=admin.headers)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["log_date"] == "2024-05-01"
    if settings.celery_eager:
        assert [log.log_date for log in tasks.logs()] == [DAY]


@pytest.mark.parametrize("url", RUN_URLS)
def test_running_the_snapshot_needs_an_admin(
    client: FlaskClient, user: TestUser, viewer: TestUser, url: str
) -> None:
    assert_error(client.post(url), 401)
    assert_error(client.post(url, headers=user.headers), 403)
    assert_error(client.post(url, json={"date": "2024-05-01"}, headers=viewer.headers), 403)


@pytest.mark.parametrize("url", RUN_URLS)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"date": "2024-02-30"}, "date"),
        ({"date": "tomorrow"}, "date"),
        ({"date": (date.today() + timedelta(days=2)).isoformat()}, "date"),  # the future
        ({"when": "2024-05-01"}, "when"),
    ],
)
def test_bad_run_bodies_are_422(
    client: FlaskClient, admin: TestUser, url: str, body: dict[str, str], field: str
) -> None:
    assert_error(client.post(url, json=body, headers=admin.headers), 422, field)


@pytest.mark.parametrize("url", RUN_URLS)
def test_run_body_must_be_json(client: FlaskClient, admin: TestUser, url: str) -> None:
    assert_error(
        client.post(url, data="date=2024-05-01", content_type="text/plain", headers=admin.headers),
        415,
    )
    assert_error(
        client.post(url, data="{not json", content_type="application/json", headers=admin.headers),
        400,
    )


def test_run_status_for_every_reader_and_404_for_unknown(
    client: FlaskClient, admin: TestUser, viewer: TestUser
) -> None:
    run = client.post("/api/v1/task-logs/run", headers=admin.headers).get_json()
    response = get(client, f"/api/v1/task-logs/runs/{run['id']}", viewer)
    assert response.status_code == 200
    assert response.get_json()["job_id"] == run["id"]
    assert_error(get(client, "/api/v1/task-logs/runs/not-a-run", viewer), 404)
    assert_error(client.get(f"/api/v1/task-logs/runs/{run['id']}"), 401)


def test_a_manual_run_is_audited(client: FlaskClient, admin: TestUser) -> None:
    from tasktracker.models import AuditEvent, db

    run = client.post("/api/v1/task-logs/run", headers=admin.headers).get_json()
    with client.application.app_context():
        event = db.session.query(AuditEvent).filter_by(entity="snapshot").one()
    assert (event.actor_id, event.action, event.entity_id) == (admin.id, "run", run["id"])


@pytest.mark.postgres_only
def test_a_run_that_cannot_be_queued_is_503_and_marked_failed(
    client: FlaskClient, admin: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broker (Redis) down: never a 202 for a job that will not run."""
    celery = client.application.extensions["celery"]
    monkeypatch.setattr(celery.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(celery, "_pool", None)
    monkeypatch.setattr(celery.amqp, "_producer_pool", None)
    response = client.post("/api/v1/task-logs/run", headers=admin.headers)
    body = assert_error(response, 503)
    assert body["error"]["code"] == "service_unavailable"
    with client.application.app_context():
        from tasktracker.models import SnapshotRun, db

        (run,) = db.session.query(SnapshotRun).all()
    assert run.status == "failed"
    assert "queue" in (run.error or "")
