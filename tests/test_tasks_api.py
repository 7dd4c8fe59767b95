"""/api/v1/tasks/{id} and POST /api/v1/tasks: validation, permissions, ETags, soft delete,
restore and the audit history, over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.services import log_cache
from tests.conftest import TestUser
from tests.tasks_helpers import assert_error, create

TASK_KEYS = {
    "id",
    "task_name",
    "description",
    "status",
    "priority",
    "due_date",
    "assignee",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
    "version",
}


def cache_version(app: Flask) -> str:
    return log_cache.current_version(app.extensions["tasktracker"].cache)


# -- create -------------------------------------------------------------------------------------
def test_create_answers_201_with_location_etag_and_the_task(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    response = client.post(
        "/api/v1/tasks",
        json={
            "task_name": "Write report",
            "description": "Q3 numbers",
            "status": "in_progress",
            "priority": "High",
            "due_date": "2030-01-31",
            "assignee_id": other_user.id,
        },
        headers=user.headers,
    )
    assert response.status_code == 201, response.get_json()
    task = response.get_json()
    assert set(task) >= TASK_KEYS
    assert response.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert response.headers["ETag"] == '"1"'
    assert task["task_name"] == "Write report"
    assert task["status"] == "in_progress"
    assert task["priority"] == "high"
    assert task["due_date"] == "2030-01-31"
    assert task["assignee"] == {"id": other_user.id, "username": "bob"}
    assert task["created_by"] == {"id": user.id, "username": "alice"}
    assert task["deleted_at"] is None
    assert task["version"] == 1
    assert task["created_at"].endswith("+00:00")


def test_create_defaults(client: FlaskClient, user: TestUser) -> None:
    task = create(client, user.headers, task_name="Minimal")
    assert task["status"] == "todo"
    assert task["priority"] == "medium"
    assert task["description"] is None
    assert task["due_date"] is None
    assert task["assignee"] is None


@pytest.mark.parametrize(
    ("status", "expected"), [(True, "todo"), (False, "done"), ("DONE", "done")]
)
def test_create_accepts_the_seeds_boolean_status(
    client: FlaskClient, user: TestUser, status: Any, expected: str
) -> None:
    assert create(client, user.headers, status=status)["status"] == expected


def test_create_accepts_the_seeds_assigned_user(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    task = create(client, user.headers, assigned_user="bob")
    assert task["assignee"] == {"id": other_user.id, "username": "bob"}


def test_create_changes_the_log_cache_version(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    before = cache_version(app)
    create(client, user.headers)
    assert cache_version(app) != before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "task_name"),
        ({"task_name": ""}, "task_name"),
        ({"task_name": "   "}, "task_name"),
        ({"task_name": "x" * 256}, "task_name"),
        ({"task_name": None}, "task_name"),
        ({"task_name": 5}, "task_name"),
        ({"task_name": "ok", "description": "x" * 10_001}, "description"),
        ({"task_name": "ok", "status": "started"}, "status"),
        ({"task_name": "ok", "status": 1}, "status"),
        ({"task_name": "ok", "priority": "urgent"}, "priority"),
        ({"task_name": "ok", "due_date": "31/01/2030"}, "due_date"),
        ({"task_name": "ok", "assignee_id": "2"}, "assignee_id"),
        ({"task_name": "ok", "assignee_id": 0}, "assignee_id"),
        ({"task_name": "ok", "assignee_id": 2**31}, "assignee_id"),
        ({"task_name": "ok", "assignee_id": True}, "assignee_id"),
        ({"task_name": "ok", "owner": "me"}, "owner"),
        ({"task_name": "ok", "id": 5}, "id"),
        ({"task_name": "ok", "created_at": "2024-01-01"}, "created_at"),
        ({"task_name": "ok", "assignee_id": 1, "assigned_user": "alice"}, "assigned_user"),
    ],
)
def test_create_refuses_bad_bodies_with_422_naming_the_field(
    client: FlaskClient, user: TestUser, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/tasks", json=body, headers=user.headers)
    assert_error(response, 422, field)


def test_create_refuses_an_unknown_assignee(client: FlaskClient, user: TestUser) -> None:
    assert_error(
        client.post(
            "/api/v1/tasks", json={"task_name": "x", "assignee_id": 999_999}, headers=user.headers
        ),
        422,
        "assignee_id",
    )
    assert_error(
        client.post(
            "/api/v1/tasks",
            json={"task_name": "x", "assigned_user": "nobody"},
            headers=user.headers,
        ),
        422,
        "assigned_user",
    )


def test_create_refuses_a_deactivated_assignee(
    client: FlaskClient, admin: TestUser, user: TestUser, other_user: TestUser
) -> None:
    response = client.patch(
        f"/api/v1/users/{other_user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    response = client.post(
        "/api/v1/tasks", json={"task_name": "x", "assignee_id": other_user.id}, headers=user.headers
    )
    assert_error(response, 422, "assignee_id")


def test_create_needs_a_token_and_a_role_that_writes(client: FlaskClient, viewer: TestUser) -> None:
    assert_error(client.post("/api/v1/tasks", json={"task_name": "x"}), 401)
    bad = {"Authorization": "Bearer not-a-token"}
    assert_error(client.post("/api/v1/tasks", json={"task_name": "x"}, headers=bad), 401)
    assert_error(client.post("/api/v1/tasks", json={"task_name": "x"}, headers=viewer.headers), 403)


def test_create_refuses_non_json_and_malformed_json(client: FlaskClient, user: TestUser) -> None:
    response = client.post(
        "/api/v1/tasks", data="task_name=x", headers=user.headers, content_type="text/plain"
    )
    assert_error(response, 415)
    response = client.post(
        "/api/v1/tasks",
        data='{"task_name": ',
        headers=user.headers,
        content_type="application/json",
    )
    assert_error(response, 400)


# -- read ---------------------------------------------------------------------------------------
def test_get_answers_the_task_with_its_etag(
    client: FlaskClient, user: TestUser, viewer: TestUser
) -> None:
    task = create(client, user.headers)
    response = client.get(f"/api/v1/tasks/{task['id']}", headers=viewer.headers)
    assert response.status_code == 200
    assert response.get_json() == task
    assert response.headers["ETag"] == '"1"'


def test_get_with_a_current_if_none_match_is_304(client: FlaskClient, user: TestUser) -> None:
    task = create(client, user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    response = client.get(url, headers={**user.headers, "If-None-Match": '"1"'})
    assert response.status_code == 304
    assert response.headers["ETag"] == '"1"'
    response = client.get(url, headers={**user.headers, "If-None-Match": '"0"'})
    assert response.status_code == 200


def test_get_unknown_is_404_and_needs_a_token(client: FlaskClient, user: TestUser) -> None:
    assert_error(client.get("/api/v1/tasks/999999", headers=user.headers), 404)
    assert_error(client.get("/api/v1/tasks/99999999999999999999", headers=user.headers), 404)
    task = create(client, user.headers)
    assert_error(client.get(f"/api/v1/tasks/{task['id']}"), 401)


# -- PUT and PATCH ------------------------------------------------------------------------------
def test_put_replaces_every_field(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    task = create(
        client,
        user.headers,
        description="old",
        status="in_progress",
        priority="high",
        due_date="2030-01-01",
        assignee_id=other_user.id,
    )
    response = client.put(
        f"/api/v1/tasks/{task['id']}", json={"task_name": "New name"}, headers=user.headers
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["task_name"] == "New name"
    assert body["description"] is None
    assert body["status"] == "todo"
    assert body["priority"] == "medium"
    assert body["due_date"] is None
    assert body["assignee"] is None
    assert body["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert body["created_by"] == task["created_by"]
    assert body["created_at"] == task["created_at"]


def test_put_needs_task_name(client: FlaskClient, user: TestUser) -> None:
    task = create(client, user.headers)
    response = client.put(
        f"/api/v1/tasks/{task['id']}", json={"priority": "low"}, headers=user.headers
    )
    assert_error(response, 422, "task_name")


def test_patch_changes_only_what_it_names(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    task = create(client, user.headers, description="keep", priority="high")
    response = client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"status": False, "assigned_user": "bob"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "done"
    assert body["assignee"] == {"id": other_user.id, "username": "bob"}
    assert body["description"] == "keep"
    assert body["priority"] == "high"
    assert body["version"] == 2
    response = client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"description": None, "assignee_id": None},
        headers=user.headers,
    )
    assert response.get_json()["description"] is None
    assert response.get_json()["assignee"] is None


def test_patch_that_changes_nothing_writes_nothing(client: FlaskClient, user: TestUser) -> None:
    task = create(client, user.headers, priority="low")
    response = client.patch(
        f"/api/v1/tasks/{task['id']}", json={"priority": "LOW"}, headers=user.headers
    )
    assert response.status_code == 200
    assert response.get_json()["version"] == 1
    history = client.get(f"/api/v1/tasks/{task['id']}/history", headers=user.headers).get_json()
    assert [e["action"] for e in history["items"]] == ["create"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "_schema"),
        ({"task_name": None}, "task_name"),
        ({"status": None}, "status"),
        ({"priority": "HIGHEST"}, "priority"),
        ({"version": 3}, "version"),
        ({"assignee_id": 999_999}, "assignee_id"),
    ],
)
def test_patch_refuses_bad_bodies(
    client: FlaskClient, user: TestUser, body: dict[str, Any], field: str
) -> None:
    task = create(client, user.headers)
    response = client.patch(f"/api/v1/tasks/{task['id']}", json=body, headers=user.headers)
    assert_error(response, 422, field)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_writes_refuse_non_json_and_malformed_json(
    client: FlaskClient, user: TestUser, method: str
) -> None:
    task = create(client, user.headers)
    call = getattr(client, method)
    url = f"/api/v1/tasks/{task['id']}"
    assert_error(call(url, data="x", headers=user.headers, content_type="text/plain"), 415)
    assert_error(call(url, data="{", headers=user.headers, content_type="application/json"), 400)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_write_to_an_unknown_task_is_404(client: FlaskClient, admin: TestUser, method: str) -> None:
    response = getattr(client, method)(
        "/api/v1/tasks/999999", json={"task_name": "x"}, headers=admin.headers
    )
    assert_error(response, 404)


# -- permissions --------------------------------------------------------------------------------
def test_a_user_updates_only_tasks_they_created_or_are_assigned(
    client: FlaskClient,
    admin: TestUser,
    user: TestUser,
    other_user: TestUser,
    make_user: Callable[..., TestUser],
) -> None:
    alices = create(client, user.headers, task_name="alice's")
    url = f"/api/v1/tasks/{alices['id']}"
    # Bob neither created nor is assigned: 403, and nothing changes.
    assert_error(client.patch(url, json={"priority": "low"}, headers=other_user.headers), 403)
    assert_error(client.put(url, json={"task_name": "mine"}, headers=other_user.headers), 403)
    assert client.get(url, headers=user.headers).get_json()["version"] == 1
    # Once assigned, Bob may.
    client.patch(url, json={"assignee_id": other_user.id}, headers=user.headers)
    response = client.patch(url, json={"priority": "low"}, headers=other_user.headers)
    assert response.status_code == 200
    # An admin may change anyone's task; a viewer nobody's.
    assert client.patch(url, json={"priority": "high"}, headers=admin.headers).status_code == 200
    viewer = make_user("viewer")
    assert_error(client.patch(url, json={"priority": "low"}, headers=viewer.headers), 403)


def test_a_viewer_is_refused_before_the_body_is_read(client: FlaskClient, viewer: TestUser) -> None:
    response = client.patch("/api/v1/tasks/1", json={"nonsense": 1}, headers=viewer.headers)
    assert_error(response, 403)


@pytest.mark.parametrize("who", ["user", "other_user", "viewer"])
def test_only_admins_delete_and_restore(
    client: FlaskClient, request: pytest.FixtureRequest, admin: TestUser, user: TestUser, who: str
) -> None:
    caller: TestUser = request.getfixturevalue(who)
    task = create(client, user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    assert_error(client.delete(url, headers=caller.headers), 403)
    assert client.delete(url, headers=admin.headers).status_code == 204
    assert_error(client.post(f"{url}/restore", headers=caller.headers), 403)


# -- ETag and If-Match --------------------------------------------------------------------------
def test_a_stale_if_match_is_412_and_changes_nothing(client: FlaskClient, user: TestUser) -> None:
    task = create(client, user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    first = client.patch(url, json={"priority": "low"}, headers={**user.headers, "If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["ETag"] == '"2"'
    stale = client.patch(
        url, json={"priority": "high"}, headers={**user.headers, "If-Match": '"1"'}
    )
    body = assert_error(stale, 412)
    assert body["error"]["code"] == "precondition_failed"
    current = client.get(url, headers=user.headers).get_json()
    assert current["priority"] == "low"
    assert current["version"] == 2


@pytest.mark.parametrize(
    ("header", "status"),
    # An unquoted version is read leniently (as werkzeug does); a weak tag never matches.
    [
        ('"2"', 200),
        ('"1", "2"', 200),
        ("*", 200),
        ("2", 200),
        ('W/"2"', 412),
        ('"x"', 412),
        # Empty and odd tags found by the fuzzer: refused as stale, never a 500.
        ('""', 412),
        ('W/"x", ""', 412),
    ],
)
def test_if_match_forms(client: FlaskClient, user: TestUser, header: str, status: int) -> None:
    task = create(client, user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    client.patch(url, json={"priority": "low"}, headers=user.headers)  # now version 2
    response = client.put(
        url, json={"task_name": "again"}, headers={**user.headers, "If-Match": header}
    )
    assert response.status_code == status, response.get_json()


def test_delete_with_a_stale_if_match_is_412(client: FlaskClient, admin: TestUser) -> None:
    task = create(client, admin.headers)
    url = f"/api/v1/tasks/{task['id']}"
    assert_error(client.delete(url, headers={**admin.headers, "If-Match": '"7"'}), 412)
    assert client.get(url, headers=admin.headers).get_json()["deleted_at"] is None
    response = client.delete(url, headers={**admin.headers, "If-Match": '"1"'})
    assert response.status_code == 204
    assert response.headers["ETag"] == '"2"'


# -- soft delete and restore --------------------------------------------------------------------
def test_delete_is_soft_and_restore_brings_it_back(
    app: Flask, client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    task = create(client, user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    before = cache_version(app)
    assert client.delete(url, headers=admin.headers).status_code == 204
    assert cache_version(app) != before
    assert_error(client.get(url, headers=user.headers), 404)
    assert_error(client.patch(url, json={"priority": "low"}, headers=user.headers), 404)
    assert_error(client.get(f"{url}/history", headers=user.headers), 404)
    seen = client.get(url, headers=admin.headers).get_json()
    assert seen["deleted_at"] is not None
    # Admins must restore before editing; deleting again changes nothing.
    assert_error(client.patch(url, json={"priority": "low"}, headers=admin.headers), 409)
    again = client.delete(url, headers=admin.headers)
    assert again.status_code == 204
    assert again.headers["ETag"] == f'"{seen["version"]}"'

    response = client.post(f"{url}/restore", headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["deleted_at"] is None
    assert response.headers["ETag"] == f'"{seen["version"] + 1}"'
    assert client.get(url, headers=user.headers).status_code == 200
    # Restoring a live task changes nothing.
    unchanged = client.post(f"{url}/restore", headers=admin.headers)
    assert unchanged.status_code == 200
    assert unchanged.get_json()["version"] == seen["version"] + 1


def test_delete_and_restore_of_unknown_tasks_are_404(client: FlaskClient, admin: TestUser) -> None:
    assert_error(client.delete("/api/v1/tasks/999999", headers=admin.headers), 404)
    assert_error(client.post("/api/v1/tasks/999999/restore", headers=admin.headers), 404)
    assert_error(client.delete("/api/v1/tasks/1"), 401)
    assert_error(client.post("/api/v1/tasks/1/restore"), 401)


# -- audit history ------------------------------------------------------------------------------
def test_history_records_every_write_with_old_and_new_values(
    client: FlaskClient, admin: TestUser, user: TestUser, other_user: TestUser, viewer: TestUser
) -> None:
    task = create(client, user.headers, task_name="first", priority="low")
    url = f"/api/v1/tasks/{task['id']}"
    client.patch(
        url,
        json={"task_name": "second", "priority": "low", "assignee_id": other_user.id},
        headers={**user.headers, "X-Request-ID": "req-update-1"},
    )
    client.delete(url, headers=admin.headers)
    client.post(f"{url}/restore", headers=admin.headers)

    response = client.get(f"{url}/history", headers=viewer.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 4
    assert body["pages"] == 1
    create_event, update, delete, restore = body["items"]
    assert [e["action"] for e in body["items"]] == ["create", "update", "delete", "restore"]
    assert create_event["actor"] == {"id": user.id, "username": "alice"}
    assert create_event["changes"]["task_name"] == [None, "first"]
    # Only the changed fields, each [old, new]; priority did not change.
    assert update["changes"] == {
        "task_name": ["first", "second"],
        "assignee_id": [None, other_user.id],
    }
    assert update["request_id"] == "req-update-1"
    assert delete["actor"]["id"] == admin.id
    assert delete["changes"]["deleted_at"][0] is None
    assert restore["changes"]["deleted_at"][1] is None

    page = client.get(f"{url}/history?per_page=3&page=2", headers=viewer.headers).get_json()
    assert [e["action"] for e in page["items"]] == ["restore"]
    assert page["total"] == 4


def test_history_errors(client: FlaskClient, user: TestUser) -> None:
    task = create(client, user.headers)
    url = f"/api/v1/tasks/{task['id']}/history"
    assert_error(client.get(url), 401)
    assert_error(client.get("/api/v1/tasks/999999/history", headers=user.headers), 404)
    assert_error(client.get(f"{url}?per_page=0", headers=user.headers), 422, "per_page")
    assert_error(client.get(f"{url}?page=x", headers=user.headers), 422, "page")


# -- the API document ---------------------------------------------------------------------------
def test_openapi_documents_the_task_routes(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    one = paths["/api/v1/tasks/{task_id}"]
    assert set(one) >= {"get", "put", "patch", "delete"}
    assert {"200", "304", "401", "404"} <= set(one["get"]["responses"])
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    assert {"200", "400", "401", "403", "404", "412", "415", "422"} <= set(
        one["patch"]["responses"]
    )
    assert any(p["name"] == "If-Match" for p in one["patch"]["parameters"])
    listing = paths["/api/v1/tasks"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names >= {
        "status",
        "priority",
        "assignee",
        "created_by",
        "due_from",
        "due_to",
        "created_from",
        "created_to",
        "q",
        "deleted",
        "sort",
        "page",
        "per_page",
        "cursor",
    }
    assert "Location" in paths["/api/v1/tasks"]["post"]["responses"]["201"]["headers"]
    assert "text/csv" in paths["/api/v1/tasks/export.csv"]["get"]["responses"]["200"]["content"]
    assert set(paths["/api/v1/tasks/{task_id}/restore"]["post"]["responses"]) >= {"200", "403"}
    assert set(paths["/api/v1/tasks/{task_id}/history"]["get"]["responses"]) >= {"200", "404"}
    assert "default" not in one["get"]["responses"]


def test_the_fast_serialisers_agree_with_the_documented_schemas() -> None:
    """Task answers are built without marshmallow for speed; they must match the schemas."""
    from datetime import UTC, date, datetime

    from tasktracker.models import TaskPriority, TaskStatus
    from tasktracker.repositories.tasks import TaskRow, UserRef
    from tasktracker.schemas.tasks import TaskPageSchema, TaskSchema, task_json, task_page_json
    from tasktracker.services.tasks import TaskPage

    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rows = [
        TaskRow(
            1, "a", None, TaskStatus.TODO, TaskPriority.LOW, None, None,
            UserRef(1, "alice"), when, when, None, 1,
        ),
        TaskRow(
            2, "b", "text", TaskStatus.DONE, TaskPriority.HIGH, date(2030, 1, 2),
            UserRef(2, "bob"), UserRef(1, "alice"), when, when.replace(microsecond=0), when, 7,
        ),
    ]  # fmt: skip
    for row in rows:
        assert task_json(row) == TaskSchema().dump(row)
    for page in (TaskPage(rows, 2, 1, 20, 1, None), TaskPage(rows, 9, None, 2, 5, "c.d")):
        assert task_page_json(page) == TaskPageSchema().dump(page)
