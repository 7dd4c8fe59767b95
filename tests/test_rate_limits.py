"""Rate limits (SPEC section 8): per user by default, per client and username on login, per user
on uploads; moving window, X-RateLimit-* headers, 429 in the envelope with Retry-After; the
client address only from trusted proxies; operations endpoints never limited."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.middleware.proxy_fix import ProxyFix

from tasktracker.auth.limits import login_key, rate_limit_key
from tasktracker.config import Settings

from .conftest import PASSWORD, TestUser

ME = "/api/v1/users/me"
LOGIN_ROUTES = ["/api/v1/auth/login", "/login"]


def assert_429(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == "too_many_requests"
    assert body["error"]["details"]["limit"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    retry_after = int(response.headers["Retry-After"])
    assert 0 <= retry_after <= 3600
    assert response.headers["X-RateLimit-Remaining"] == "0"
    return body


def bad_login(client: FlaskClient, username: str, path: str = LOGIN_ROUTES[0], **kw: Any) -> Any:
    return client.post(path, json={"username": username, "password": "wrong-password"}, **kw)


def test_default_limit_is_one_budget_per_user_across_routes(
    client: FlaskClient,
    override_settings: Callable[..., Settings],
    user: TestUser,
    other_user: TestUser,
) -> None:
    override_settings(ratelimit_default="3/minute")
    for remaining, path in zip((2, 1, 0), (ME, f"/api/v1/users/{user.id}", ME), strict=True):
        response = client.get(path, headers=user.headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert_429(client.get(f"/api/v1/users/{user.id}", headers=user.headers))
    # Another user, and an anonymous caller from the same address, have budgets of their own.
    assert client.get(ME, headers=other_user.headers).status_code == 200
    assert client.get("/").status_code == 200


def test_production_defaults_show_in_the_headers(
    client: FlaskClient, strict_limits: Settings, user: TestUser
) -> None:
    before = time.time()
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "300"
    assert response.headers["X-RateLimit-Remaining"] == "299"
    assert before <= int(response.headers["X-RateLimit-Reset"]) <= before + 62


def test_moving_window_does_not_reset_at_a_boundary(
    client: FlaskClient, override_settings: Callable[..., Settings], user: TestUser
) -> None:
    """A fixed window would allow a burst of 2x the limit across a window edge."""
    override_settings(ratelimit_default="2/2second")
    assert client.get(ME, headers=user.headers).status_code == 200
    time.sleep(1.1)
    assert client.get(ME, headers=user.headers).status_code == 200
    assert client.get(ME, headers=user.headers).status_code == 429
    time.sleep(1.0)  # the first hit left the window, the second is still in it
    assert client.get(ME, headers=user.headers).status_code == 200
    assert client.get(ME, headers=user.headers).status_code == 429


def test_a_forged_token_spends_the_address_budget_not_the_users(
    client: FlaskClient,
    override_settings: Callable[..., Settings],
    settings: Settings,
    user: TestUser,
) -> None:
    override_settings(ratelimit_default="2/minute")
    forged = pyjwt.encode(
        {
            "sub": str(user.id),
            "exp": datetime.now(UTC) + timedelta(minutes=5),
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
        },
        "not-the-server-secret-" * 3,
        algorithm="HS256",
    )
    headers = {"Authorization": f"Bearer {forged}"}
    assert client.get(ME, headers=headers).status_code == 401
    assert client.get(ME, headers=headers).status_code == 401
    assert_429(client.get(ME, headers=headers))
    assert client.get(ME, headers=user.headers).status_code == 200


def test_rate_limit_key_reads_the_verified_token(app: Flask, user: TestUser) -> None:
    codec = app.extensions["tasktracker"].tokens
    expired = replace(codec, access_ttl=timedelta(seconds=-5)).issue_pair(user.id).access.token
    refresh = codec.issue_pair(user.id).refresh.token
    cases = {
        user.headers["Authorization"]: f"user:{user.id}",
        f"Bearer {refresh}": f"user:{user.id}",
        f"Bearer {expired}": "ip:198.51.100.9",
        "Bearer not-a-jwt": "ip:198.51.100.9",
        "Basic dXNlcjpwYXNz": "ip:198.51.100.9",
    }
    for authorization, expected in cases.items():
        with app.test_request_context(
            headers={"Authorization": authorization}, environ_base={"REMOTE_ADDR": "198.51.100.9"}
        ):
            assert rate_limit_key() == expected


def test_login_key_is_address_and_lower_cased_username(app: Flask) -> None:
    with app.test_request_context(
        json={"username": "Alice", "password": "x"}, environ_base={"REMOTE_ADDR": "192.0.2.1"}
    ):
        assert login_key() == "login:192.0.2.1:alice"
    with app.test_request_context(data="not json", environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        assert login_key() == "login:192.0.2.1:"


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/ping", "/openapi.json", "/docs"]
)
def test_operations_endpoints_are_never_limited(
    client: FlaskClient, override_settings: Callable[..., Settings], path: str
) -> None:
    override_settings(ratelimit_default="1/minute")
    for _ in range(3):
        response = client.get(path)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
    # ... and they spent none of the caller's budget.
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429


def test_cors_preflight_is_not_limited(
    client: FlaskClient, override_settings: Callable[..., Settings]
) -> None:
    override_settings(ratelimit_default="1/minute")
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    for _ in range(3):
        assert client.options(ME, headers=preflight).status_code == 200


def test_login_is_limited_per_client_and_username_on_both_routes(
    client: FlaskClient, strict_limits: Settings, user: TestUser
) -> None:
    for attempt in range(5):
        response = bad_login(client, user.username, LOGIN_ROUTES[attempt % 2])
        assert response.status_code == 401
        assert response.headers["X-RateLimit-Limit"] == "5"
    for path in LOGIN_ROUTES:
        assert_429(bad_login(client, user.username, path))
        # Even the right password waits: the limit is on attempts, not on failures.
        right = client.post(path, json={"username": user.username, "password": PASSWORD})
        assert right.status_code == 429
    # The username is matched without regard to case.
    assert bad_login(client, user.username.upper()).status_code == 429
    # Another username from this client, and this username from another client, go on.
    assert bad_login(client, "someone-else").status_code == 401
    elsewhere = client.post(
        LOGIN_ROUTES[0],
        json={"username": user.username, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "203.0.113.50"},
    )
    assert elsewhere.status_code == 200


def test_a_forged_forwarded_for_does_not_reset_a_limit(
    client: FlaskClient, strict_limits: Settings, user: TestUser
) -> None:
    """With no trusted proxy (the default) X-Forwarded-For is ignored."""
    for n in range(5):
        forged = {"X-Forwarded-For": f"198.51.100.{n}"}
        assert bad_login(client, user.username, headers=forged).status_code == 401
    assert_429(bad_login(client, user.username, headers={"X-Forwarded-For": "198.51.100.99"}))


def test_with_one_trusted_proxy_the_right_most_address_counts(
    app: Flask, client: FlaskClient, strict_limits: Settings, user: TestUser, monkeypatch
) -> None:
    """As create_app wires it for TASKTRACKER_TRUSTED_PROXIES=1 (tests/test_security.py checks
    the real wiring in a live server): the proxy appends the address it saw; anything to the
    left of it was written by the client."""
    monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1))
    for n in range(5):
        forged = {"X-Forwarded-For": f"10.9.9.{n}, 203.0.113.7"}
        assert bad_login(client, user.username, headers=forged).status_code == 401
    assert_429(
        bad_login(client, user.username, headers={"X-Forwarded-For": "10.0.0.1, 203.0.113.7"})
    )
    other_client = {"X-Forwarded-For": "10.9.9.0, 203.0.113.8"}
    assert bad_login(client, user.username, headers=other_client).status_code == 401


def test_several_default_limits_show_the_tightest(
    client: FlaskClient, override_settings: Callable[..., Settings], user: TestUser
) -> None:
    """TASKTRACKER_RATELIMIT_DEFAULT accepts several limits; the tightest shows in headers."""
    override_settings(ratelimit_default="100/minute;2/second")
    response = client.get(ME, headers=user.headers)
    assert response.headers["X-RateLimit-Limit"] == "2"


UPLOAD_ROUTES = ["/api/v1/imports", "/upload-csv"]


def _upload(client: FlaskClient, path: str, headers: dict[str, str]) -> Any:
    csv = b"task_name,priority\nWrite docs,high\n"
    return client.post(
        path,
        data={"file": (BytesIO(csv), "tasks.csv"), "dry_run": "true"},
        headers=headers,
        content_type="multipart/form-data",
    )


def test_uploads_are_limited_per_user_across_upload_routes(
    client: FlaskClient,
    override_settings: Callable[..., Settings],
    admin: TestUser,
    make_user: Callable[..., TestUser],
) -> None:
    probe = _upload(client, UPLOAD_ROUTES[0], admin.headers)
    if probe.status_code in (404, 405):
        pytest.skip("the upload routes do not exist yet (CSV import issue)")
    override_settings(ratelimit_upload="2/hour")
    first = _upload(client, UPLOAD_ROUTES[0], admin.headers)
    assert first.status_code != 429
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert _upload(client, UPLOAD_ROUTES[1], admin.headers).status_code != 429
    assert_429(_upload(client, UPLOAD_ROUTES[0], admin.headers))
    assert_429(_upload(client, UPLOAD_ROUTES[1], admin.headers))
    # Another admin uploads on; and the limit is on uploads only, not on other routes.
    other_admin = make_user("admin", username="admin2")
    assert _upload(client, UPLOAD_ROUTES[0], other_admin.headers).status_code != 429
    assert client.get(ME, headers=admin.headers).status_code == 200


# -- the Redis storage: a hit and its window in one round trip --------------------------------


@pytest.fixture
def redis_storage(app: Flask) -> Any:
    from tasktracker.extensions import limiter

    storage = limiter._storage  # the storage Flask-Limiter built from RATELIMIT_STORAGE_URI
    if app.extensions["tasktracker"].settings.redis_url is None:
        pytest.skip("the embedded mode limits in memory")
    return storage


@pytest.mark.postgres_only
def test_the_storage_is_ours_on_redis(redis_storage: Any) -> None:
    from tasktracker.auth.limit_storage import OneTripRedisStorage

    assert isinstance(redis_storage, OneTripRedisStorage)


@pytest.mark.postgres_only
def test_a_hit_answers_the_window_read_of_its_request(app: Flask, redis_storage: Any) -> None:
    """The window remembered from the hit is the window Redis holds after it."""
    from limits.storage import RedisStorage

    key = f"storage-test-{time.time_ns()}"
    with app.test_request_context():
        results = [redis_storage.acquire_entry(key, 3, 60) for _ in range(4)]
        remembered = redis_storage.get_moving_window(key, 3, 60)
        in_redis = RedisStorage.get_moving_window(redis_storage, key, 3, 60)
    assert results == [True, True, True, False]
    assert remembered == in_redis
    assert remembered[1] == 3
    assert time.time() - 5 < remembered[0] <= time.time()
    # Outside the request (or for another key, limit or window) Redis answers.
    assert redis_storage.get_moving_window(key, 3, 60) == in_redis
    with app.test_request_context():
        assert redis_storage.get_moving_window(key, 3, 60) == in_redis
        assert redis_storage.get_moving_window("never-hit", 3, 60)[1] == 0


@pytest.mark.postgres_only
def test_a_limited_request_reads_its_window_once(
    client: FlaskClient,
    override_settings: Callable[..., Settings],
    user: TestUser,
    redis_storage: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One Redis script per limit per request: the headers come from the hit's answer."""
    override_settings(ratelimit_default="2/minute")
    reads: list[object] = []
    real_read = redis_storage.lua_moving_window
    monkeypatch.setattr(
        redis_storage, "lua_moving_window", lambda *a, **kw: reads.append(a) or real_read(*a, **kw)
    )
    for remaining in (1, 0):
        response = client.get(ME, headers=user.headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert_429(client.get(ME, headers=user.headers))
    assert reads == []
