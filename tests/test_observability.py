"""Observability (SPEC section 9): JSON access lines with request ids, the request id in audit
events and job logs, Prometheus metrics (also summed over several gunicorn workers)."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import shared_task
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tasktracker.config import Settings
from tasktracker.context import request_id_var
from tasktracker.models import AuditEvent
from tasktracker.observability import REDACTED, JsonFormatter, job_headers

from .conftest import PASSWORD, TEST_SECRET, TestUser
from .live_server import live_server


# The app ignores results (job state lives in the database); this probe keeps its result so
# the test can read what the job saw.
@shared_task(name="tests.observability.echo_request_id", ignore_result=False)
def echo_request_id() -> str | None:
    """What a job sees as its request id (and so what its log lines carry)."""
    logging.getLogger("tests.job").warning("job ran")
    return request_id_var.get()


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "tasktracker.access"
    ]


def user_route(app: Flask) -> str:
    """The URL rule of GET /api/v1/users/{id} (e.g. "/api/v1/users/<int:user_id>")."""
    return next(
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/users/<") and rule.rule.endswith("user_id>")
    )


# -- access log ---------------------------------------------------------------------------


def test_one_json_access_line_per_request(
    client: FlaskClient, user: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasktracker.access")
    ok = client.get(f"/api/v1/users/{user.id}?x=secret-query", headers=user.headers)
    anonymous = client.get("/api/v1/users/me", headers={"X-Request-ID": "req-abc-1"})
    missing = client.get("/no/such/route")
    lines = access_lines(caplog)
    assert len(lines) == 3
    first, second, third = lines
    assert first["method"] == "GET"
    assert first["route"] == user_route(client.application)  # the rule: bounded cardinality
    assert first["path"] == f"/api/v1/users/{user.id}"  # no query string
    assert first["status"] == 200
    assert isinstance(first["duration_ms"], float | int)
    assert first["duration_ms"] >= 0
    assert first["request_id"] == ok.headers["X-Request-ID"]
    assert first["user_id"] == user.id
    assert first["client"] == "127.0.0.1"
    assert first["logger"] == "tasktracker.access"
    assert (second["status"], second["user_id"], second["request_id"]) == (401, None, "req-abc-1")
    assert anonymous.headers["X-Request-ID"] == "req-abc-1"
    assert (third["status"], third["route"]) == (404, "<unmatched>")
    assert third["request_id"] == missing.headers["X-Request-ID"]
    for line in lines:
        assert "secret-query" not in json.dumps(line)


def test_a_rate_limited_request_still_gets_a_request_id_and_an_access_line(
    client: FlaskClient,
    override_settings: Callable[..., Settings],
    user: TestUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    override_settings(ratelimit_default="1/minute")
    caplog.set_level(logging.INFO, logger="tasktracker.access")
    assert client.get("/api/v1/users/me", headers=user.headers).status_code == 200
    limited = client.get("/api/v1/users/me", headers=user.headers)
    assert limited.status_code == 429
    assert limited.get_json()["request_id"] == limited.headers["X-Request-ID"]
    line = access_lines(caplog)[-1]
    assert (line["status"], line["request_id"]) == (429, limited.headers["X-Request-ID"])


# -- the JSON formatter -------------------------------------------------------------------


def _format(message: str, *args: Any, exc: bool = False, **extra: Any) -> dict[str, Any]:
    record = logging.LogRecord("tests", logging.INFO, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError(message % args if args else message)
        except ValueError:
            record.exc_info = sys.exc_info()
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_formatter_masks_tokens_and_secret_fields() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    line = _format(
        "header was %s and token %s",
        "Bearer abc.def-ghi",
        jwt_like,
        exc=True,
        password="hunter2",
        refresh_token="r",
        headers={"Authorization": "Bearer x", "Accept": "json"},
        user_id=7,
    )
    text = json.dumps(line)
    assert "abc.def-ghi" not in text
    assert jwt_like not in text
    assert "hunter2" not in text
    assert line["password"] == REDACTED
    assert line["refresh_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert line["user_id"] == 7
    assert "ValueError" in line["exc"]


def test_formatter_adds_the_request_id_of_the_context() -> None:
    token = request_id_var.set("ctx-request-1")
    try:
        assert _format("hello")["request_id"] == "ctx-request-1"
    finally:
        request_id_var.reset(token)
    assert "request_id" not in _format("hello")


# -- the request id in audit events and jobs ----------------------------------------------


def test_audit_events_carry_the_request_id(
    app: Flask, client: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    login = client.post(
        "/api/v1/auth/login",
        json={"username": user.username, "password": PASSWORD},
        headers={"X-Request-ID": "req-login-1"},
    )
    assert login.status_code == 200
    created = client.post(
        "/api/v1/users",
        json={"username": "gina", "email": "gina@example.com", "password": PASSWORD},
        headers=admin.headers,
    )
    assert created.status_code == 201
    with app.app_context():
        uow = app.extensions["tasktracker"].uow()
        with uow:
            events = {
                e.action: e.request_id
                for e in uow.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            }
    assert events["login"] == "req-login-1"
    assert events["create"] == created.headers["X-Request-ID"]


def test_job_headers_carry_the_request_id_into_a_job(app: Flask) -> None:
    assert job_headers() == {}
    token = request_id_var.set("req-job-1")
    try:
        headers = job_headers()
        assert headers == {"request_id": "req-job-1"}
        # Run inline (as embedded mode does): the task sees the request's id.
        with app.app_context():
            result = echo_request_id.apply(headers=headers)
        assert result.get() == "req-job-1"
    finally:
        request_id_var.reset(token)
    # Outside a request the job gets an id of its own (its task id).
    with app.app_context():
        result = echo_request_id.apply()
    assert result.get() == result.id


@pytest.mark.worker
def test_a_queued_job_logs_with_the_request_id_of_the_request_that_queued_it(
    app: Flask, celery_worker: Any
) -> None:
    """No headers passed: the publish hook adds the request id to every job message."""
    token = request_id_var.set("req-worker-1")
    try:
        with app.app_context():
            assert echo_request_id.apply_async().get(timeout=30) == "req-worker-1"
            explicit = echo_request_id.apply_async(headers=job_headers())
            assert explicit.get(timeout=30) == "req-worker-1"
    finally:
        request_id_var.reset(token)


# -- metrics ------------------------------------------------------------------------------

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match["value"])
    return 0.0


def test_metrics_count_requests_by_route_and_status(
    client: FlaskClient, user: TestUser, other_user: TestUser
) -> None:
    route = user_route(client.application)

    def counts() -> tuple[float, float, float]:
        text = client.get("/metrics").get_data(as_text=True)
        series = {"method": "GET", "route": route}
        return (
            sample(text, "tasktracker_http_requests_total", **series, status="200"),
            sample(text, "tasktracker_http_requests_total", **series, status="403"),
            sample(text, "tasktracker_http_request_duration_seconds_count", **series),
        )

    ok, forbidden, observed = counts()
    client.get(f"/api/v1/users/{user.id}", headers=user.headers)
    client.get(f"/api/v1/users/{user.id}", headers=user.headers)
    client.get(f"/api/v1/users/{other_user.id}", headers=user.headers)
    assert counts() == (ok + 2, forbidden + 1, observed + 3)


def test_metrics_exposes_the_job_and_import_series(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    for name in (
        "tasktracker_http_requests_total",
        "tasktracker_job_runs_total",
        "tasktracker_job_duration_seconds",
        "tasktracker_import_rows_total",
        "tasktracker_last_snapshot_timestamp_seconds",
    ):
        assert f"# TYPE {name}" in text


def test_metrics_token_when_configured(
    client: FlaskClient, override_settings: Callable[..., Settings]
) -> None:
    override_settings(metrics_token="scrape-token-0123456789")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-token"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
    good = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert good.status_code == 200
    assert "tasktracker_http_requests_total" in good.get_data(as_text=True)


@pytest.mark.postgres_only
def test_metrics_add_up_across_gunicorn_workers(
    app: Flask, settings: Settings, tmp_path: Path
) -> None:
    """Two workers, one /metrics: the counts of both (prometheus_client multiprocess mode)."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier run")
    with live_server(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        jwt_secret=TEST_SECRET,
        log_dir=tmp_path,
        workers=2,
        extra_env={
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "TASKTRACKER_REDIS_PREFIX": settings.redis_prefix,
        },
    ) as server:
        assert not (metrics_dir / "counter_1.db").exists()  # cleared at start
        sent = 0
        lock = threading.Lock()

        def ping(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                assert server.get("/ping").status == 200
                with lock:
                    sent += 1

        # Concurrent requests until both workers have served some (bounded).
        for _ in range(20):
            threads = [threading.Thread(target=ping, args=(5,)) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            if len(list(metrics_dir.glob("counter_*.db"))) >= 2:
                break
        assert len(list(metrics_dir.glob("counter_*.db"))) >= 2, "one worker served everything"
        # Every scrape, whichever worker answers it, reports the total of both.
        for _ in range(4):
            text = server.get("/metrics").body.decode()
            pings = sample(
                text, "tasktracker_http_requests_total", method="GET", route="/ping", status="200"
            )
            assert pings == sent
        # gunicorn's own lines are JSON too, and no access line comes from gunicorn.
        records = server.log_records()
        assert len(records) == len(server.logs().splitlines())
        assert not [r for r in records if r.get("logger") == "gunicorn.access"]
        assert sum(1 for r in records if r.get("route") == "/ping") == sent
