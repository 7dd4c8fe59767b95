"""The seed's task routes: POST /task, PUT /task/<id>, DELETE /task/<id>, with its field names."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import TestUser
from tests.tasks_helpers import assert_error

SEED_BODY = {
    "task_name": "Seed task",
    "description": "from the API guide",
    "status": True,
    "priority": "high",
    "created_at": "2025-04-01",
    "assigned_user": "bob",
}


@pytest.fixture(autouse=True)
def _bob(other_user: TestUser) -> TestUser:
    """The seed's body assigns its tasks to bob."""
    return other_user


def seed_create(client: FlaskClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = client.post("/task", json={**SEED_BODY, **fields}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_post_task_takes_the_seeds_body_and_answers_201_with_the_id(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    response = client.post("/task", json=SEED_BODY, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert isinstance(body["id"], int)
    assert body["task_name"] == "Seed task"
    assert body["status"] == "todo"  # true = an active task
    assert body["priority"] == "high"
    assert body["assignee"] == {"id": other_user.id, "username": "bob"}
    assert body["created_by"]["id"] == user.id
    # created_at is the task's creation day, as the seed's guide shows.
    assert body["created_at"].startswith("2025-04-01T00:00:00")
    assert body["message"]
    assert response.headers["Location"] == f"/api/v1/tasks/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    # The same task through /api/v1.
    same = client.get(f"/api/v1/tasks/{body['id']}", headers=user.headers).get_json()
    assert same["created_at"] == body["created_at"]


def test_post_task_status_false_is_done_and_created_at_defaults_to_now(
    client: FlaskClient, user: TestUser
) -> None:
    body = seed_create(client, user.headers, status=False, created_at=None, assigned_user=None)
    assert body["status"] == "done"
    assert body["assignee"] is None
    assert body["created_at"].startswith(date.today().isoformat()) or body["created_at"].startswith(
        (date.today() - timedelta(days=1)).isoformat()
    )


def test_post_task_with_todays_date_is_created_now(client: FlaskClient, user: TestUser) -> None:
    body = seed_create(client, user.headers, created_at=datetime.now().date().isoformat())
    assert not body["created_at"].endswith("T00:00:00+00:00")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"task_name": None}, "task_name"),
        ({"priority": "urgent"}, "priority"),
        ({"status": "yes"}, "status"),
        ({"created_at": "04/01/2025"}, "created_at"),
        ({"created_at": "1800-01-01"}, "created_at"),
        ({"created_at": (date.today() + timedelta(days=2)).isoformat()}, "created_at"),
        ({"assigned_user": "nobody"}, "assigned_user"),
        ({"user_id": 1}, "user_id"),
    ],
)
def test_post_task_refuses_bad_input(
    client: FlaskClient, user: TestUser, other_user: TestUser, fields: dict[str, Any], field: str
) -> None:
    response = client.post("/task", json={**SEED_BODY, **fields}, headers=user.headers)
    assert_error(response, 422, field)


def test_post_task_errors(client: FlaskClient, viewer: TestUser, user: TestUser) -> None:
    assert_error(client.post("/task", json=SEED_BODY), 401)
    assert_error(client.post("/task", json=SEED_BODY, headers=viewer.headers), 403)
    assert_error(
        client.post("/task", data="x", headers=user.headers, content_type="text/plain"), 415
    )
    assert_error(
        client.post("/task", data="{", headers=user.headers, content_type="application/json"), 400
    )
    assert_error(client.post("/task", json={}, headers=user.headers), 422, "task_name")


def test_put_task_changes_only_the_fields_it_names(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    task = seed_create(client, user.headers)
    response = client.put(
        f"/task/{task['id']}",
        json={"task_name": "Updated Name", "priority": "medium"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["message"]
    assert body["task_name"] == "Updated Name"
    assert body["priority"] == "medium"
    assert body["description"] == "from the API guide"
    assert body["assignee"] == {"id": other_user.id, "username": "bob"}
    assert body["version"] == 2
    assert response.headers["ETag"] == '"2"'
    done = client.put(f"/task/{task['id']}", json={"status": False}, headers=user.headers)
    assert done.get_json()["status"] == "done"


def test_put_task_errors(
    client: FlaskClient, admin: TestUser, user: TestUser, other_user: TestUser, viewer: TestUser
) -> None:
    task = seed_create(client, user.headers, assigned_user=None)
    url = f"/task/{task['id']}"
    assert_error(client.put(url, json={"priority": "low"}), 401)
    assert_error(client.put(url, json={"priority": "low"}, headers=viewer.headers), 403)
    assert_error(client.put(url, json={"priority": "low"}, headers=other_user.headers), 403)
    assert_error(client.put("/task/999999", json={"priority": "low"}, headers=admin.headers), 404)
    assert_error(client.put(url, json={}, headers=user.headers), 422)
    assert_error(client.put(url, json={"priority": "x"}, headers=user.headers), 422, "priority")
    assert_error(client.put(url, data="x", headers=user.headers, content_type="text/plain"), 415)
    assert_error(
        client.put(url, data="{", headers=user.headers, content_type="application/json"), 400
    )
    stale = client.put(url, json={"priority": "low"}, headers={**user.headers, "If-Match": '"9"'})
    assert_error(stale, 412)


def test_delete_task_is_soft_and_for_admins(
    client: FlaskClient, admin: TestUser, user: TestUser, viewer: TestUser
) -> None:
    task = seed_create(client, user.headers)
    url = f"/task/{task['id']}"
    assert_error(client.delete(url), 401)
    assert_error(client.delete(url, headers=user.headers), 403)
    assert_error(client.delete(url, headers=viewer.headers), 403)
    response = client.delete(url, headers=admin.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == task["id"]
    assert body["deleted_at"] is not None
    assert body["message"]
    assert response.headers["ETag"] == '"2"'
    assert_error(client.get(f"/api/v1/tasks/{task['id']}", headers=user.headers), 404)
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=admin.headers).status_code == 200
    assert_error(client.delete("/task/999999", headers=admin.headers), 404)
    assert_error(client.delete(url, headers={**admin.headers, "If-Match": '"1"'}), 412)


def test_seed_writes_are_audited_like_v1(client: FlaskClient, admin: TestUser) -> None:
    task = seed_create(client, admin.headers)
    client.put(f"/task/{task['id']}", json={"description": "changed"}, headers=admin.headers)
    client.delete(f"/task/{task['id']}", headers=admin.headers)
    history = client.get(f"/api/v1/tasks/{task['id']}/history", headers=admin.headers).get_json()
    assert [e["action"] for e in history["items"]] == ["create", "update", "delete"]
    assert history["items"][1]["changes"] == {"description": ["from the API guide", "changed"]}


def test_openapi_documents_the_seed_task_routes(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "post" in paths["/task"]
    assert "201" in paths["/task"]["post"]["responses"]
    assert {"put", "delete"} <= set(paths["/task/{task_id}"])
