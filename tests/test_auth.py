"""Login, tokens, refresh rotation, logout, revocation: the attacks and the happy paths."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
import time_machine
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.auth.tokens import TokenCodec
from tasktracker.models import AuditEvent, Role, User, db

from .conftest import PASSWORD, TEST_SECRET, TestUser

LOGIN_ROUTES = ["/api/v1/auth/login", "/login"]


def login(
    client: FlaskClient, username: str, password: str = PASSWORD, route: str = LOGIN_ROUTES[0]
):
    return client.post(route, json={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- login ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", LOGIN_ROUTES)
def test_login_returns_tokens(client: FlaskClient, user: TestUser, route: str) -> None:
    response = login(client, user.username, route=route)
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"]
    assert body["refresh_token"]
    if route == "/login":
        assert body["token"] == body["access_token"]
    me = client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json()["username"] == user.username


def test_login_by_email_and_any_case(client: FlaskClient, user: TestUser) -> None:
    assert login(client, user.email.upper()).status_code == 200
    assert login(client, user.username.upper()).status_code == 200


def test_token_claims(client: FlaskClient, user: TestUser) -> None:
    token = login(client, user.username).get_json()["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == str(user.id)
    assert claims["type"] == "access"
    assert {"jti", "iat", "exp", "iss", "aud"} <= set(claims)


@pytest.mark.parametrize("route", LOGIN_ROUTES)
def test_unknown_user_and_wrong_password_look_the_same(
    client: FlaskClient, user: TestUser, route: str
) -> None:
    wrong = login(client, user.username, "wrong-password", route)
    unknown = login(client, "nobody-here", "wrong-password", route)
    assert wrong.status_code == unknown.status_code == 401
    wrong_error = wrong.get_json()["error"]
    unknown_error = unknown.get_json()["error"]
    assert wrong_error == unknown_error


def test_unknown_user_costs_a_hash_verification(
    client: FlaskClient, user: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both failures run one real argon2 verification, so their timings are alike (checked by
    counting verifications rather than by a clock, which is noisy on shared machines)."""
    from tasktracker.auth import passwords
    from tasktracker.services import auth as auth_service

    calls: list[str | None] = []

    def counting_verify(password_hash: str | None, password: str) -> bool:
        calls.append(password_hash)
        return passwords.verify_password(password_hash, password)

    monkeypatch.setattr(auth_service, "verify_password", counting_verify)
    login(client, "nobody-here", "wrong-password")
    login(client, user.username, "wrong-password")
    assert len(calls) == 2
    assert calls[0] is None  # the dummy hash was verified against


def test_deactivated_user_cannot_log_in(
    client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    client.patch(f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    response = login(client, user.username)
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "Invalid username or password."


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"username", "password"}),
        ({"username": "x"}, {"password"}),
        ({"password": "x"}, {"username"}),
    ],
)
def test_login_missing_fields_is_422(client: FlaskClient, body: dict, fields: set[str]) -> None:
    for route in LOGIN_ROUTES:
        response = client.post(route, json=body)
        assert response.status_code == 422
        assert fields <= set(response.get_json()["error"]["details"])


def test_login_not_json_is_415_and_malformed_is_400(client: FlaskClient) -> None:
    for route in LOGIN_ROUTES:
        assert client.post(route, data="username=a", content_type="text/plain").status_code == 415
        assert client.post(route, data="{bad", content_type="application/json").status_code == 400


def test_login_audit_events(app: Flask, client: FlaskClient, user: TestUser) -> None:
    login(client, user.username)
    login(client, user.username, "nope-nope")
    with app.app_context():
        actions = [e.action for e in db.session.scalars(db.select(AuditEvent)).all()]
    assert "login" in actions
    assert "login_failed" in actions


def test_password_rehashed_when_parameters_change(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash(PASSWORD)
    with app.app_context():
        db.session.execute(db.update(User).where(User.id == user.id).values(password_hash=weak))
        db.session.commit()
    assert login(client, user.username).status_code == 200
    with app.app_context():
        stored = db.session.get(User, user.id).password_hash
    assert stored != weak
    assert stored.startswith("$argon2id$")


# -- token attacks ---------------------------------------------------------------------------


def _claims(user_id: int, **extra: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(user_id),
        "jti": "00000000-0000-0000-0000-000000000001",
        "type": "access",
        "fresh": False,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "iss": "tasktracker",
        "aud": "tasktracker-api",
    }
    claims.update(extra)
    return claims


def _assert_401(client: FlaskClient, token: str) -> None:
    response = client.get("/api/v1/users/me", headers=bearer(token))
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_alg_none_is_refused(client: FlaskClient, user: TestUser) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = json.dumps({**_claims(user.id), "iat": 0, "nbf": 0, "exp": 4102444800}, default=str)
    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    _assert_401(client, f"{header}.{payload}.")


def test_wrong_key_is_refused(client: FlaskClient, user: TestUser) -> None:
    _assert_401(client, pyjwt.encode(_claims(user.id), "another-secret-" * 4, algorithm="HS256"))


def test_tampered_sub_is_refused(client: FlaskClient, user: TestUser, admin: TestUser) -> None:
    token = user.headers["Authorization"].split()[1]
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(admin.id)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _assert_401(client, f"{head}.{forged}.{sig}")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_other_algorithm_with_right_key_is_refused(client: FlaskClient, user: TestUser) -> None:
    _assert_401(client, pyjwt.encode(_claims(user.id), TEST_SECRET, algorithm="HS512"))


@pytest.mark.parametrize(
    "override",
    [
        {"exp": datetime.now(UTC) - timedelta(seconds=5)},
        {"aud": "someone-else"},
        {"iss": "someone-else"},
        {"sub": "999999"},
        {"sub": "not-a-number"},
    ],
)
def test_bad_claims_are_refused(client: FlaskClient, user: TestUser, override: dict) -> None:
    _assert_401(client, pyjwt.encode(_claims(user.id, **override), TEST_SECRET, algorithm="HS256"))


@pytest.mark.parametrize("value", ["Bearer", "Bearer not.a.token", "Basic abc", "Token x.y.z", ""])
def test_garbage_authorization_is_401(client: FlaskClient, value: str) -> None:
    response = client.get("/api/v1/users/me", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_refresh_token_is_not_an_access_token(client: FlaskClient, user: TestUser) -> None:
    tokens = login(client, user.username).get_json()
    _assert_401(client, tokens["refresh_token"])


def test_access_token_cannot_refresh(client: FlaskClient, user: TestUser) -> None:
    tokens = login(client, user.username).get_json()
    response = client.post("/api/v1/auth/refresh", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401
    body = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert body.status_code == 401


def test_deleted_users_token_is_refused(app: Flask, client: FlaskClient, user: TestUser) -> None:
    with app.app_context():
        db.session.execute(db.delete(User).where(User.id == user.id))
        db.session.commit()
    _assert_401(client, user.headers["Authorization"].split()[1])


def test_deactivated_users_token_stops_at_once(
    client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 401


def test_role_change_takes_effect_at_once(
    client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    assert client.get("/api/v1/users", headers=user.headers).status_code == 403
    client.patch(f"/api/v1/users/{user.id}", json={"role": "admin"}, headers=admin.headers)
    assert client.get("/api/v1/users", headers=user.headers).status_code == 200
    client.patch(f"/api/v1/users/{user.id}", json={"role": "viewer"}, headers=admin.headers)
    assert client.get("/api/v1/users", headers=user.headers).status_code == 403


def test_expired_token_from_codec_is_refused(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    codec = TokenCodec(
        TEST_SECRET, "tasktracker", "tasktracker-api", timedelta(seconds=-1), timedelta(days=1)
    )
    _assert_401(client, codec.issue_pair(user.id).access.token)


# -- refresh rotation and logout -------------------------------------------------------------


def refresh(client: FlaskClient, token: str, in_body: bool = False):
    if in_body:
        return client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    return client.post("/api/v1/auth/refresh", headers=bearer(token))


@pytest.mark.parametrize("in_body", [False, True])
def test_refresh_rotates(client: FlaskClient, user: TestUser, in_body: bool) -> None:
    first = login(client, user.username).get_json()
    second = refresh(client, first["refresh_token"], in_body)
    assert second.status_code == 200, second.get_json()
    pair = second.get_json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/users/me", headers=bearer(pair["access_token"])).status_code == 200
    # The old refresh token stops working ...
    assert refresh(client, first["refresh_token"], in_body).status_code == 401
    # ... and its replay revoked the whole family, the new tokens included.
    assert refresh(client, pair["refresh_token"], in_body).status_code == 401
    _assert_401(client, pair["access_token"])


def test_replay_does_not_touch_other_sessions(client: FlaskClient, user: TestUser) -> None:
    phone = login(client, user.username).get_json()
    laptop = login(client, user.username).get_json()
    rotated = refresh(client, phone["refresh_token"]).get_json()
    refresh(client, phone["refresh_token"])  # replay: the phone's family is revoked
    assert refresh(client, rotated["refresh_token"]).status_code == 401
    assert refresh(client, laptop["refresh_token"]).status_code == 200


def test_refresh_without_token_is_401(client: FlaskClient) -> None:
    assert client.post("/api/v1/auth/refresh").status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "x.y.z"}).status_code == 401


def test_logout_revokes_access_and_refresh(client: FlaskClient, user: TestUser) -> None:
    tokens = login(client, user.username).get_json()
    response = client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    _assert_401(client, tokens["access_token"])
    assert refresh(client, tokens["refresh_token"]).status_code == 401


def test_logout_requires_a_token(client: FlaskClient) -> None:
    assert client.post("/api/v1/auth/logout").status_code == 401


def test_revocation_survives_a_cache_flush(app: Flask, client: FlaskClient, user: TestUser) -> None:
    """The database is the truth: losing Redis' copy never lets a revoked token back in."""
    tokens = login(client, user.username).get_json()
    client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    container = app.extensions["tasktracker"]
    if container.redis is not None:
        container.redis.flushdb()
    else:
        container.cache.clear()
    _assert_401(client, tokens["access_token"])


@pytest.mark.postgres_only
def test_revocation_does_not_depend_on_redis(
    app: Flask, client: FlaskClient, user: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revocation is read from the database with the caller's role: a dead cache changes
    nothing (the live-process version of this is in test_faults)."""
    from tasktracker.cache import RedisCache, redis_client

    tokens = login(client, user.username).get_json()
    client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    dead = RedisCache(redis_client("redis://127.0.0.1:1/0"), "x:")
    monkeypatch.setattr(app.extensions["tasktracker"], "cache", dead)
    _assert_401(client, tokens["access_token"])
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200


def test_tokens_are_not_in_logs(
    client: FlaskClient, user: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    tokens = login(client, user.username).get_json()
    login(client, user.username, "wrong-password-here")
    refresh(client, tokens["refresh_token"])
    text = caplog.text
    assert PASSWORD not in text
    assert "wrong-password-here" not in text
    assert tokens["access_token"] not in text
    assert tokens["refresh_token"] not in text


def test_me_never_shows_the_hash(client: FlaskClient, user: TestUser) -> None:
    body = client.get("/api/v1/users/me", headers=user.headers).get_json()
    assert "password" not in body
    assert "password_hash" not in body
    assert body["role"] == Role.USER.value


def test_nul_characters_are_refused_not_a_500(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "a\x00b", "password": "x"})
    assert response.status_code == 422
    assert "username" in response.get_json()["error"]["details"]


def _count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT checks a signature of (not its unverified peeks at claims)."""
    verified: list[str] = []
    real_decode = pyjwt.decode

    def counting_decode(token: str, *args: object, **kwargs: object) -> object:
        options = kwargs.get("options")
        if not (isinstance(options, dict) and options.get("verify_signature") is False):
            verified.append(token)
        return real_decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pyjwt, "decode", counting_decode)
    return verified


def test_a_token_is_verified_once(
    client: FlaskClient, user: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limiter's key function, the view's check and the next requests share one check."""
    verified = _count_verifications(monkeypatch)
    for _ in range(3):
        assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    assert len(verified) == 1
    # Nothing is remembered from a failed verification: a bad token is checked (and refused)
    # on every request that sends it.
    token = user.headers["Authorization"].removeprefix("Bearer ")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    _assert_401(client, tampered)
    checked = verified.count(tampered)
    _assert_401(client, tampered)
    assert checked >= 1
    assert verified.count(tampered) == 2 * checked


def test_a_remembered_token_still_expires(client: FlaskClient, user: TestUser) -> None:
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16), tick=False):
        response = client.get("/api/v1/users/me", headers=user.headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "The token has expired."
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200


def test_a_remembered_token_is_not_trusted_under_another_secret(
    app: Flask, client: FlaskClient, user: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What was verified is remembered with the key it was verified with."""
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", "another-secret-" + "y" * 40)
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 401
