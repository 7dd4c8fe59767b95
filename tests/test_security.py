"""Security hardening (SPEC section 8): headers, CORS allow-list, body size limit, production
start-up refusals, and no secret, token or password in any log line."""

from __future__ import annotations

import io
import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.config import ConfigError, Settings
from tasktracker.observability import JsonFormatter
from tasktracker.security import refuse_unsafe_production

from .conftest import PASSWORD, TEST_SECRET, TestUser
from .live_server import REPO_ROOT, LiveServer, server_env, start_live_server

ALLOWED_ORIGIN = "https://app.example.com"
STRONG_SECRET = secrets.token_urlsafe(48)


def assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


# -- headers ------------------------------------------------------------------------------


def test_security_headers_on_success_and_error_answers(client: FlaskClient, user: TestUser) -> None:
    responses = [
        client.get("/api/v1/users/me", headers=user.headers),  # 200
        client.get("/api/v1/users/me"),  # 401
        client.get("/api/v1/users"),  # 401
        client.get("/no/such/route"),  # 404
        client.post("/api/v1/auth/login", data="{", content_type="application/json"),  # 400
    ]
    for response in responses:
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in headers  # off unless TASKTRACKER_HSTS


def test_docs_get_a_policy_that_lets_swagger_ui_run_from_this_origin(client: FlaskClient) -> None:
    csp = client.get("/docs").headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "http" not in csp  # no CDN


def test_hsts_when_enabled(client: FlaskClient, override_settings: Callable[..., Settings]) -> None:
    override_settings(hsts=True)
    assert client.get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")


def test_unexpected_error_has_security_headers_and_no_trace(
    client: FlaskClient, admin: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasktracker.services import users as user_service

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(user_service, "list_users", explode)
    response = client.get("/api/v1/users", headers=admin.headers)
    assert_envelope(response, 500, "internal_error")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "internal detail" not in response.get_data(as_text=True)


# -- CORS ---------------------------------------------------------------------------------


def test_no_cors_headers_for_an_origin_not_on_the_list(client: FlaskClient) -> None:
    """The test app allows no origin (TASKTRACKER_CORS_ORIGINS unset): browsers are refused."""
    origin = {"Origin": "https://evil.example.net"}
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers=origin).headers
    preflight = client.options(
        "/api/v1/users/me", headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


# -- body size ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/login", "/api/v1/users"])
def test_a_body_over_max_content_length_is_413(
    app: Flask, client: FlaskClient, admin: TestUser, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1024)
    body = {"username": "x" * 2000, "password": "y"}
    response = client.post(path, json=body, headers=admin.headers)
    assert_envelope(response, 413, "payload_too_large")
    # The limiter kept its storage (a failing key function would switch it to memory).
    from tasktracker.extensions import limiter

    assert limiter._storage_dead is False


# -- production start-up ------------------------------------------------------------------


def test_production_refuses_debug_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(env="production", data_dir=tmp_path, jwt_secret_key=STRONG_SECRET)
    refuse_unsafe_production(Flask("probe"), settings)  # strong secret, no debug: fine
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(ConfigError, match="Debug mode"):
        refuse_unsafe_production(Flask("probe"), settings)
    monkeypatch.delenv("FLASK_DEBUG")
    debug_app = Flask("probe")
    debug_app.config["DEBUG"] = True
    with pytest.raises(ConfigError, match="Debug mode"):
        refuse_unsafe_production(debug_app, settings)


@pytest.mark.parametrize("secret", ["", "short-secret", "changeme"])
def test_production_refuses_a_weak_secret_given_in_code(secret: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        refuse_unsafe_production(
            Flask("probe"), Settings(env="production", data_dir=tmp_path, jwt_secret_key=secret)
        )


def test_debug_is_allowed_outside_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    refuse_unsafe_production(Flask("probe"), Settings(env="development", data_dir=tmp_path))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"JWT_SECRET_KEY": ""}, "JWT_SECRET_KEY must be set"),
        ({"JWT_SECRET_KEY": "too-short"}, "JWT_SECRET_KEY must be set"),
        ({"JWT_SECRET_KEY": STRONG_SECRET, "FLASK_DEBUG": "1"}, "Debug mode"),
    ],
)
def test_the_production_app_does_not_start_unsafe(
    tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    env = server_env(
        database_url=f"sqlite:///{tmp_path / 'probe.db'}",
        redis_url=None,
        jwt_secret=STRONG_SECRET,
        port=0,
        data_dir=tmp_path,
        extra={"TASKTRACKER_ENV": "production", **extra},
    )
    result = subprocess.run(
        [sys.executable, "-c", "from tasktracker import create_app; create_app()"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr
    assert message in result.stderr


def test_gunicorn_does_not_start_in_production_with_a_weak_secret(
    settings: Settings, tmp_path: Path
) -> None:
    weak = "weak-" + secrets.token_hex(4)
    with pytest.raises(RuntimeError, match="JWT_SECRET_KEY must be set") as failure:
        start_live_server(
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            jwt_secret=weak,
            log_dir=tmp_path,
            extra_env={"TASKTRACKER_ENV": "production"},
            startup_timeout=30,
            run_migrations=False,  # `flask db upgrade` would refuse to start as well
        )
    assert weak not in str(failure.value)  # the refusal does not print the secret


# -- logs ---------------------------------------------------------------------------------


@pytest.fixture
def json_log(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """Everything logged at any level, as the production JSON formatter writes it."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream.getvalue
    finally:
        root.removeHandler(handler)


def assert_no_secrets(output: str, secrets_: list[str]) -> None:
    for secret in secrets_:
        assert secret not in output, f"a secret leaked into the log: {secret[:12]}..."
    assert "$argon2" not in output  # no password hash either
    assert TEST_SECRET not in output


def test_no_secret_token_or_password_in_any_log_line(
    client: FlaskClient,
    admin: TestUser,
    user: TestUser,
    json_log: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaked: list[str] = [PASSWORD, admin.headers["Authorization"].split()[1]]
    # A login, a failed login (with the password of another account), a refresh.
    login = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
    )
    assert login.status_code == 200
    tokens = login.get_json()
    leaked += [tokens["access_token"], tokens["refresh_token"]]
    wrong = "Wrong-Password-" + secrets.token_hex(8)
    leaked.append(wrong)
    assert (
        client.post("/login", json={"username": user.username, "password": wrong}).status_code
        == 401
    )
    refreshed = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    ).get_json()
    leaked += [refreshed["access_token"], refreshed["refresh_token"]]
    # A user created with a password, one refused for a short one, a password reset.
    new_password = "New-User-Password-" + secrets.token_hex(8)
    leaked.append(new_password)
    created = client.post(
        "/api/v1/users",
        json={"username": "carol", "email": "carol@example.com", "password": new_password},
        headers=admin.headers,
    )
    assert created.status_code == 201
    short = "Sh0rt!"
    refused = client.post(
        "/api/v1/users",
        json={"username": "dave", "email": "dave@example.com", "password": short},
        headers=admin.headers,
    )
    assert refused.status_code == 422
    reset_password = "Reset-Password-" + secrets.token_hex(8)
    leaked.append(reset_password)
    reset = client.patch(
        f"/api/v1/users/{created.get_json()['id']}",
        json={"password": reset_password},
        headers=admin.headers,
    )
    assert reset.status_code == 200
    # A logout, and an unhandled error during a request that carries a token and a password.
    assert (
        client.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
        ).status_code
        == 204
    )
    from tasktracker.services import users as user_service

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(user_service, "create_user", explode)
    crashed = client.post(
        "/api/v1/users",
        json={"username": "erin", "email": "erin@example.com", "password": new_password},
        headers=admin.headers,
    )
    assert crashed.status_code == 500

    output = json_log()
    assert '"unhandled error"' in output  # the error was logged, with its traceback
    assert '"logger": "tasktracker.access"' in output
    assert_no_secrets(output, leaked)
    # Not only masked on the way out: no record carried them in the first place.
    assert_no_secrets(caplog.text, leaked)
    for line in output.splitlines():
        record = json.loads(line)
        assert "authorization" not in {key.lower() for key in record}


@pytest.mark.postgres_only
def test_a_database_error_is_logged_without_its_parameters(
    app: Flask, client: FlaskClient, admin: TestUser, json_log: Callable[[], str]
) -> None:
    """hide_parameters: the failing INSERT's values (a password hash) stay out of the log."""
    from tasktracker.models import db

    with app.app_context():
        db.session.execute(
            db.text(
                "CREATE FUNCTION refuse_user() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by test trigger'; END $$"
            )
        )
        db.session.execute(
            db.text(
                "CREATE TRIGGER refuse_user BEFORE INSERT ON users "
                "FOR EACH ROW EXECUTE FUNCTION refuse_user()"
            )
        )
        db.session.commit()
    try:
        password = "Trigger-Password-" + secrets.token_hex(8)
        response = client.post(
            "/api/v1/users",
            json={"username": "frank", "email": "frank@example.com", "password": password},
            headers=admin.headers,
        )
        assert response.status_code == 500
        output = json_log()
        assert "refused by test trigger" in output
        assert "parameters hidden" in output
        assert_no_secrets(output, [password])
    finally:
        with app.app_context():
            db.session.execute(db.text("DROP TRIGGER IF EXISTS refuse_user ON users"))
            db.session.execute(db.text("DROP FUNCTION IF EXISTS refuse_user()"))
            db.session.commit()


# -- the real wiring, in a live server ----------------------------------------------------


@pytest.fixture(scope="module")
def hardened_server(
    app: Flask, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """gunicorn behind one trusted proxy, with a CORS allow-list and HSTS."""
    server = start_live_server(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        jwt_secret=TEST_SECRET,
        log_dir=tmp_path_factory.mktemp("hardened"),
        extra_env={
            "TASKTRACKER_REDIS_PREFIX": settings.redis_prefix,
            "TASKTRACKER_TRUSTED_PROXIES": "1",
            "TASKTRACKER_CORS_ORIGINS": f"{ALLOWED_ORIGIN}, https://admin.example.com",
            "TASKTRACKER_HSTS": "true",
            "TASKTRACKER_RATELIMIT_LOGIN": "2/minute",
        },
    )
    try:
        yield server
    finally:
        server.stop()


def test_live_cors_preflight_from_an_allowed_origin(hardened_server: LiveServer) -> None:
    response = hardened_server.request(
        "OPTIONS",
        "/api/v1/users",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
    assert response.status == 200
    assert response.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert "POST" in (response.header("Access-Control-Allow-Methods") or "")
    allowed = (response.header("Access-Control-Allow-Headers") or "").lower()
    assert {"authorization", "content-type", "if-match"} <= {h.strip() for h in allowed.split(",")}
    assert response.header("Access-Control-Allow-Credentials") is None  # no cookies
    assert response.header("Access-Control-Max-Age") == "600"
    assert "origin" in (response.header("Vary") or "").lower()


def test_live_cors_answer_exposes_the_api_headers(hardened_server: LiveServer) -> None:
    response = hardened_server.get("/", headers={"Origin": ALLOWED_ORIGIN})
    assert response.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    exposed = (response.header("Access-Control-Expose-Headers") or "").lower()
    for name in ("x-request-id", "x-ratelimit-remaining", "retry-after", "etag", "location"):
        assert name in exposed


def test_live_cors_refuses_other_origins(hardened_server: LiveServer) -> None:
    for origin in ("https://evil.example.net", "https://app.example.com.evil.net", "null"):
        preflight = hardened_server.request(
            "OPTIONS",
            "/api/v1/users/me",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        assert preflight.header("Access-Control-Allow-Origin") is None
        simple = hardened_server.get("/", headers={"Origin": origin})
        assert simple.header("Access-Control-Allow-Origin") is None
    # A request without Origin (not a browser's CORS call) never lists the allowed origins.
    assert hardened_server.get("/").header("Access-Control-Allow-Origin") is None


def test_live_hsts(hardened_server: LiveServer) -> None:
    hsts = hardened_server.get("/healthz").header("Strict-Transport-Security")
    assert hsts == "max-age=31536000; includeSubDomains"


def test_live_trusted_proxy_counts_the_address_it_saw(hardened_server: LiveServer) -> None:
    name = f"nobody-{secrets.token_hex(4)}"

    def attempt(forwarded_for: str) -> int:
        return hardened_server.post(
            "/api/v1/auth/login",
            json_body={"username": name, "password": "wrong-password"},
            headers={"X-Forwarded-For": forwarded_for},
        ).status

    assert attempt("10.0.0.1, 203.0.113.7") == 401
    assert attempt("10.0.0.2, 203.0.113.7") == 401
    assert attempt("10.0.0.3, 203.0.113.7") == 429  # the client's own part changed nothing
    assert attempt("10.0.0.1, 203.0.113.8") == 401  # another client, seen by the proxy
