"""User management: who may do what, validation, uniqueness, the last-admin rule, the CLI."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.models import AuditEvent, db

from .conftest import TestUser

ROUTES = ["/api/v1/users", "/user"]


def new_user(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "username": "carol",
        "email": "carol@example.com",
        "password": "a-long-password",
        "role": "user",
    }
    body.update(overrides)
    return body


# -- create ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_admin_creates_a_user(client: FlaskClient, admin: TestUser, route: str) -> None:
    response = client.post(route, json=new_user(role="viewer"), headers=admin.headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["username"] == "carol"
    assert body["role"] == "viewer"
    assert body["is_active"] is True
    assert "password" not in body
    assert "password_hash" not in body
    assert response.headers["Location"] == f"/api/v1/users/{body['id']}"
    login = client.post(
        "/api/v1/auth/login", json={"username": "carol", "password": "a-long-password"}
    )
    assert login.status_code == 200


@pytest.mark.parametrize("route", ROUTES)
def test_create_user_needs_admin(
    client: FlaskClient, user: TestUser, viewer: TestUser, route: str
) -> None:
    assert client.post(route, json=new_user()).status_code == 401
    assert client.post(route, json=new_user(), headers=user.headers).status_code == 403
    assert client.post(route, json=new_user(), headers=viewer.headers).status_code == 403


def test_unauthenticated_caller_gets_401_before_validation(client: FlaskClient) -> None:
    assert client.post("/api/v1/users", json={"bogus": 1}).status_code == 401


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "x" * 51}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 300}, "password"),
        ({"role": "superuser"}, "role"),
        ({"password_hash": "$argon2id$..."}, "password_hash"),
        ({"id": 99}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"is_admin": True}, "is_admin"),
    ],
)
def test_create_user_validation(
    client: FlaskClient, admin: TestUser, route: str, change: dict, field: str
) -> None:
    response = client.post(route, json=new_user(**change), headers=admin.headers)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["details"]


def test_create_user_missing_fields(client: FlaskClient, admin: TestUser) -> None:
    response = client.post("/api/v1/users", json={}, headers=admin.headers)
    assert response.status_code == 422
    assert {"username", "email", "password"} <= set(response.get_json()["error"]["details"])


def test_create_user_not_json(client: FlaskClient, admin: TestUser) -> None:
    response = client.post(
        "/api/v1/users", data="username=x", content_type="text/plain", headers=admin.headers
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "ALICE", "email": "new@example.com"}, "username"),
        ({"username": "newname", "email": "ALICE@example.com"}, "email"),
    ],
)
def test_duplicate_username_or_email_is_409(
    client: FlaskClient, admin: TestUser, user: TestUser, change: dict, field: str
) -> None:
    response = client.post("/api/v1/users", json=new_user(**change), headers=admin.headers)
    assert response.status_code == 409
    assert field in response.get_json()["error"]["details"]


def test_open_signup_creates_plain_users_only(
    client: FlaskClient, override_settings: Callable
) -> None:
    assert client.post("/api/v1/users", json=new_user()).status_code == 401
    override_settings(open_signup=True)
    created = client.post("/user", json=new_user())
    assert created.status_code == 201
    assert created.get_json()["role"] == "user"
    promoted = client.post(
        "/api/v1/users", json=new_user(username="dave", email="d@example.com", role="admin")
    )
    assert promoted.status_code == 403


# -- list, read ----------------------------------------------------------------------------------


def test_list_users_paginated(
    client: FlaskClient, admin: TestUser, make_user: Callable[..., TestUser]
) -> None:
    for _ in range(4):
        make_user()
    response = client.get("/api/v1/users?page=2&per_page=2", headers=admin.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 5
    assert body["pages"] == 3
    assert body["page"] == 2
    assert len(body["items"]) == 2
    assert all("password_hash" not in item for item in body["items"])


@pytest.mark.parametrize("query", ["page=0", "per_page=0", "per_page=101", "page=abc"])
def test_list_users_bad_paging_is_422(client: FlaskClient, admin: TestUser, query: str) -> None:
    assert client.get(f"/api/v1/users?{query}", headers=admin.headers).status_code == 422


def test_list_users_needs_admin(client: FlaskClient, user: TestUser, viewer: TestUser) -> None:
    assert client.get("/api/v1/users").status_code == 401
    assert client.get("/api/v1/users", headers=user.headers).status_code == 403
    assert client.get("/api/v1/users", headers=viewer.headers).status_code == 403


def test_read_user(
    client: FlaskClient, admin: TestUser, user: TestUser, other_user: TestUser
) -> None:
    assert client.get(f"/api/v1/users/{user.id}", headers=admin.headers).status_code == 200
    assert client.get(f"/api/v1/users/{user.id}", headers=user.headers).status_code == 200
    assert client.get(f"/api/v1/users/{other_user.id}", headers=user.headers).status_code == 403
    assert client.get("/api/v1/users/999999", headers=admin.headers).status_code == 404


# -- update ---------------------------------------------------------------------------------------


def test_admin_updates_role_email_active(
    app: Flask, client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    response = client.patch(
        f"/api/v1/users/{user.id}",
        json={"role": "viewer", "email": "New@Example.com", "is_active": False},
        headers=admin.headers,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["role"], body["email"], body["is_active"]) == ("viewer", "new@example.com", False)
    with app.app_context():
        event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "update")).one()
    assert event.changes["role"] == ["user", "viewer"]
    assert event.actor_id == admin.id


def test_password_reset_ends_old_sessions(
    client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    tokens = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": user.password}
    ).get_json()
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"password": "brand-new-password"}, headers=admin.headers
    )
    assert response.status_code == 200
    old = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": user.password}
    )
    assert old.status_code == 401
    new = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": "brand-new-password"}
    )
    assert new.status_code == 200
    refreshed = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert refreshed.status_code == 401
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).status_code
        == 401
    )


@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
def test_last_active_admin_is_kept(client: FlaskClient, admin: TestUser, change: dict) -> None:
    response = client.patch(f"/api/v1/users/{admin.id}", json=change, headers=admin.headers)
    assert response.status_code == 409
    assert "last" in response.get_json()["error"]["message"].lower()


def test_admin_can_step_down_when_another_admin_exists(
    client: FlaskClient, admin: TestUser, make_user: Callable[..., TestUser]
) -> None:
    make_user("admin")
    response = client.patch(
        f"/api/v1/users/{admin.id}", json={"role": "user"}, headers=admin.headers
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"role": "root"}, 422),
        ({"email": "nope"}, 422),
        ({"password": "short"}, 422),
        ({"username": "rename"}, 422),
        ({"password_hash": "x"}, 422),
    ],
)
def test_update_validation(
    client: FlaskClient, admin: TestUser, user: TestUser, body: dict, status: int
) -> None:
    response = client.patch(f"/api/v1/users/{user.id}", json=body, headers=admin.headers)
    assert response.status_code == status


def test_update_email_taken_is_409(
    client: FlaskClient, admin: TestUser, user: TestUser, other_user: TestUser
) -> None:
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"email": other_user.email}, headers=admin.headers
    )
    assert response.status_code == 409


def test_update_needs_admin_and_existing_user(
    client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    url = f"/api/v1/users/{user.id}"
    assert client.patch(url, json={"role": "admin"}).status_code == 401
    assert client.patch(url, json={"role": "admin"}, headers=user.headers).status_code == 403
    missing = client.patch("/api/v1/users/999999", json={"role": "user"}, headers=admin.headers)
    assert missing.status_code == 404


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_create_admin(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create-admin", "--username", "root", "--email", "root@example.com"],
        env={"TASKTRACKER_ADMIN_PASSWORD": ""},
    )
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    login = client.post("/api/v1/auth/login", json={"username": "root", "password": password})
    assert login.status_code == 200
    again = runner.invoke(
        args=["users", "create-admin", "--username", "root", "--email", "x@example.com"]
    )
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_cli_ensure_admin_is_idempotent(app: Flask) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["users", "ensure-admin"])
    assert "Created admin" in first.output
    second = runner.invoke(args=["users", "ensure-admin"])
    assert "nothing to do" in second.output
