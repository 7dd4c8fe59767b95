"""The app factory, the error envelope, request ids, health, readiness and the API document."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.config import ConfigError, Settings


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error", "request_id"}
    assert set(body["error"]) >= {"code", "message", "details"}
    assert body["request_id"] == response.headers["X-Request-ID"]
    if code:
        assert body["error"]["code"] == code
    return body


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    assert_envelope(client.get("/no/such/route"), 404, "not_found")


def test_wrong_method_is_json_405_with_allow(client: FlaskClient) -> None:
    response = client.delete("/healthz")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_unexpected_error_is_json_500_without_trace(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasktracker.services import health

    def boom(container: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(health, "readiness", boom)
    response = client.get("/readyz")
    body = assert_envelope(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert body["error"]["details"] is None


def test_request_id_is_taken_from_the_client(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("bad", ["x" * 300, "has space", "<script>"])
def test_unsafe_request_id_is_replaced(client: FlaskClient, bad: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": bad})
    assert response.headers["X-Request-ID"] != bad
    assert len(response.headers["X-Request-ID"]) == 32


def test_ping_healthz_and_root(client: FlaskClient) -> None:
    assert client.get("/ping").get_json() == {"message": "pong"}
    assert client.get("/healthz").get_json() == {"status": "ok"}
    root = client.get("/").get_json()
    assert root["docs"] == "/docs"


def test_readyz_reports_database_redis_and_schema(client: FlaskClient, settings: Settings) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["schema"] == "ok"
    if settings.redis_url:
        assert body["checks"]["redis"] == "ok"


@pytest.mark.postgres_only
def test_readyz_is_503_when_redis_is_down(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasktracker.cache import redis_client

    monkeypatch.setattr(
        app.extensions["tasktracker"], "redis", redis_client("redis://127.0.0.1:1/0")
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"]["status"] == "error"


def test_readyz_is_503_when_schema_is_behind(app: Flask, client: FlaskClient) -> None:
    from tasktracker.models import db

    with app.app_context():
        db.session.execute(db.text("UPDATE alembic_version SET version_num = 'old'"))
        db.session.commit()
        try:
            body = client.get("/readyz")
            assert body.status_code == 503
            assert body.get_json()["checks"]["schema"]["status"] == "not at head"
        finally:
            db.session.execute(db.text("UPDATE alembic_version SET version_num = '0001_initial'"))
            db.session.commit()


def test_openapi_document_and_swagger_ui_served_locally(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/auth/login" in spec["paths"]
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in html
    assert "http" not in html.split("<script>")[0].replace("http-equiv", "")
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


def test_security_headers_on_every_response(client: FlaskClient) -> None:
    for path in ("/healthz", "/no/such/route"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize("secret", [None, "", "short", "your_jwt_secret"])
def test_production_refuses_a_weak_secret(secret: str | None, tmp_path) -> None:
    with pytest.raises(ConfigError):
        Settings(env="production", data_dir=tmp_path, jwt_secret_key=secret or "").with_secret()


def test_development_generates_and_keeps_a_secret(tmp_path) -> None:
    first = Settings(env="development", data_dir=tmp_path).with_secret().jwt_secret_key
    second = Settings(env="development", data_dir=tmp_path).with_secret().jwt_secret_key
    assert len(first) >= 32
    assert first == second


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TASKTRACKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/d")
    monkeypatch.setenv("TASKTRACKER_SNAPSHOT_TIME", "23:59")
    monkeypatch.setenv("TASKTRACKER_TIMEZONE", "Europe/Berlin")
    settings = Settings.from_env()
    assert settings.database_url == "postgresql+psycopg://u@h:5432/d"
    assert settings.snapshot_time.hour == 23
    assert settings.embedded is (settings.redis_url is None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKTRACKER_SNAPSHOT_TIME", "25:00"),
        ("TASKTRACKER_TIMEZONE", "Mars/Olympus"),
        ("TASKTRACKER_ACCESS_TOKEN_MINUTES", "abc"),
        ("TASKTRACKER_OPEN_SIGNUP", "maybe"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path, name, value) -> None:
    monkeypatch.setenv("TASKTRACKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError):
        Settings.from_env()


def test_a_reading_unit_refuses_writes_and_restores_autoflush(app: Flask) -> None:
    uow = app.extensions["tasktracker"].uow()
    with app.app_context():
        with uow.reading():
            assert uow.session.autoflush is False
            with pytest.raises(RuntimeError, match="only reads"):
                uow.commit()
            with pytest.raises(RuntimeError, match="only reads"):
                uow.flush()
        with uow:
            assert uow.session.autoflush is True
            uow.commit()  # a plain unit writes as before
