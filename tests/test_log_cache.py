"""The shared cache of date-filtered log pages: hits, freshness after writes, scopes, Redis down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tasktracker.cache import RedisCache, redis_client
from tasktracker.models import db
from tasktracker.services import log_cache

from .conftest import TestUser
from .task_log_factories import Tasks, assert_error, tasks_fixture  # noqa: F401  (the tasks fixture)

DAY = date(2024, 5, 1)
DEAD_REDIS = "redis://127.0.0.1:1/0"
CACHED_URLS = ["/tasks", "/api/v1/task-logs"]


def items(response: Any) -> list[dict[str, Any]]:
    body = response.get_json()
    return body.get("tasks", body.get("items"))


@pytest.fixture
def logged(tasks: Tasks, admin: TestUser) -> int:
    task_id = tasks.add(admin.id, "Original")
    tasks.snapshot(DAY)
    return task_id


@pytest.fixture
def sql(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement run while the test body runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("url", CACHED_URLS)
def test_a_dated_page_is_served_from_the_cache_the_second_time(
    client: FlaskClient, logged: int, user: TestUser, url: str, sql: list[str]
) -> None:
    query = {"date": "2024-05-01", "per_page": "5"}
    first = client.get(url, query_string=query, headers=user.headers)
    assert (first.status_code, first.headers["X-Cache"]) == (200, "MISS")
    sql.clear()
    second = client.get(url, query_string=query, headers=user.headers)
    assert (second.status_code, second.headers["X-Cache"]) == (200, "HIT")
    assert second.mimetype == "application/json"
    assert second.get_data() == first.get_data()
    # A hit costs the token check and nothing else: no log query, no count.
    assert not [s for s in sql if "task_logs" in s]


@pytest.mark.parametrize("url", CACHED_URLS)
def test_undated_pages_are_not_cached(
    client: FlaskClient, logged: int, user: TestUser, url: str
) -> None:
    response = client.get(url, headers=user.headers)
    assert response.status_code == 200
    assert "X-Cache" not in response.headers


def test_a_hit_still_needs_a_valid_token(client: FlaskClient, logged: int, user: TestUser) -> None:
    assert client.get("/tasks?date=2024-05-01", headers=user.headers).status_code == 200
    assert_error(client.get("/tasks?date=2024-05-01"), 401)
    assert_error(client.get("/tasks?date=2024-05-01", headers={"Authorization": "Bearer x"}), 401)


def test_the_key_is_the_whole_normalised_query(
    client: FlaskClient, tasks: Tasks, logged: int, admin: TestUser, user: TestUser
) -> None:
    for i in range(3):
        tasks.add(admin.id, f"more {i}")
    tasks.snapshot(DAY)
    one = client.get("/tasks?date=2024-05-01&per_page=2&page=1", headers=user.headers)
    same = client.get("/tasks?page=1&per_page=2&date=2024-05-01", headers=user.headers)
    assert same.headers["X-Cache"] == "HIT"
    two = client.get("/tasks?date=2024-05-01&per_page=2&page=2", headers=user.headers)
    assert two.headers["X-Cache"] == "MISS"
    assert [log["id"] for log in items(one)] != [log["id"] for log in items(two)]
    # A parameter the route does not know changes nothing, so it cannot multiply entries.
    ignored = client.get("/tasks?date=2024-05-01&per_page=2&page=1&x=1", headers=user.headers)
    assert ignored.headers["X-Cache"] == "HIT"


def test_a_bad_query_is_never_cached(client: FlaskClient, user: TestUser) -> None:
    for _ in range(2):
        assert_error(client.get("/tasks?date=2024-02-30", headers=user.headers), 422, "date")


@pytest.mark.parametrize("url", CACHED_URLS)
def test_no_stale_read_after_a_task_changes(
    client: FlaskClient, tasks: Tasks, logged: int, user: TestUser, url: str
) -> None:
    query = {"date": "2024-05-01"}
    assert (
        items(client.get(url, query_string=query, headers=user.headers))[0]["task"]["task_name"]
        == "Original"
    )
    assert client.get(url, query_string=query, headers=user.headers).headers["X-Cache"] == "HIT"
    tasks.update(logged, task_name="Renamed")
    fresh = client.get(url, query_string=query, headers=user.headers)
    assert fresh.headers["X-Cache"] == "MISS"
    assert items(fresh)[0]["task"]["task_name"] == "Renamed"


def test_no_stale_read_after_a_snapshot(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser
) -> None:
    assert items(client.get("/tasks?date=2024-05-01", headers=user.headers)) == []
    tasks.add(admin.id)
    tasks.snapshot(DAY)
    page = client.get("/tasks?date=2024-05-01", headers=user.headers)
    assert page.headers["X-Cache"] == "MISS"
    assert len(items(page)) == 1


def test_no_stale_read_after_a_run_through_the_api(
    client: FlaskClient, tasks: Tasks, admin: TestUser, settings: Any
) -> None:
    if not settings.celery_eager:
        pytest.skip("asynchronous here: test_snapshot_worker.py runs it on a real worker")
    tasks.add(admin.id)
    assert items(client.get("/tasks?date=2024-05-01", headers=admin.headers)) == []
    client.post("/log-tasks", json={"date": "2024-05-01"}, headers=admin.headers)
    assert len(items(client.get("/tasks?date=2024-05-01", headers=admin.headers))) == 1


def test_what_a_role_may_see_is_cached_apart(
    client: FlaskClient, tasks: Tasks, admin: TestUser, user: TestUser
) -> None:
    """An admin's page (with deleted tasks' logs) is never served to a user, or back."""
    kept = tasks.add(admin.id, "kept")
    gone = tasks.add(admin.id, "gone")
    tasks.snapshot(DAY)
    tasks.delete(gone)
    admin_page = client.get("/tasks?date=2024-05-01", headers=admin.headers)
    assert {log["task_id"] for log in items(admin_page)} == {kept, gone}
    user_page = client.get("/tasks?date=2024-05-01", headers=user.headers)
    assert user_page.headers["X-Cache"] == "MISS"
    assert {log["task_id"] for log in items(user_page)} == {kept}


def test_a_write_makes_every_stored_page_stale(app: Flask) -> None:
    cache = app.extensions["tasktracker"].cache
    first = log_cache.current_version(cache)
    key = log_cache.page_key("r", "s", [("date", "2024-05-01")])
    log_cache.store_page(cache, log_cache.read_page(cache, key), b'{"page": 1}', 60)
    assert log_cache.read_page(cache, key).body == b'{"page": 1}'
    log_cache.tasks_changed(cache)
    assert log_cache.current_version(cache) != first
    assert log_cache.read_page(cache, key).body is None


def test_a_page_built_across_a_write_is_never_served(app: Flask) -> None:
    """The version is read before the page is built; a write in between wins."""
    cache = app.extensions["tasktracker"].cache
    key = log_cache.page_key("r", "s", [("date", "2024-05-01")])
    before = log_cache.read_page(cache, key)
    log_cache.tasks_changed(cache)  # commits while the page is being built
    log_cache.store_page(cache, before, b'{"old": true}', 60)
    assert log_cache.read_page(cache, key).body is None


# -- Redis down ----------------------------------------------------------------------------------


@pytest.fixture
def dead_redis(app: Flask, monkeypatch: pytest.MonkeyPatch) -> RedisCache:
    container = app.extensions["tasktracker"]
    cache = RedisCache(redis_client(DEAD_REDIS), container.settings.redis_prefix)
    monkeypatch.setattr(container, "cache", cache)
    return cache


@pytest.mark.parametrize("url", CACHED_URLS)
def test_with_redis_down_pages_are_served_uncached_and_it_is_logged_once(
    client: FlaskClient,
    logged: int,
    user: TestUser,
    dead_redis: RedisCache,
    caplog: pytest.LogCaptureFixture,
    url: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tasktracker.cache")
    for _ in range(3):
        response = client.get(url, query_string={"date": "2024-05-01"}, headers=user.headers)
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "MISS"
        assert items(response)[0]["task_id"] == logged
    warnings = [r for r in caplog.records if r.name == "tasktracker.cache" and r.levelno >= 30]
    assert len(warnings) == 1
    assert "Redis is unreachable" in warnings[0].getMessage()


def test_a_dead_redis_is_logged_once_per_outage(
    dead_redis: RedisCache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tasktracker.cache")
    monkeypatch.setattr(dead_redis, "RETRY_AFTER_SECONDS", 0.0)  # try the network every call
    for _ in range(5):
        assert dead_redis.get("k") is None
        assert dead_redis.get_many(["a", "b"]) == [None, None]
        dead_redis.set("k", b"v", 10)
        assert dead_redis.incr("k") is None
        dead_redis.delete("k")
    levels = [r.levelno for r in caplog.records if r.name == "tasktracker.cache"]
    assert levels.count(logging.WARNING) == 1
    assert len(levels) == 25  # the rest are debug lines


def test_after_a_failure_reads_skip_redis_for_a_moment(
    dead_redis: RedisCache, caplog: pytest.LogCaptureFixture
) -> None:
    """A dead Redis must cost milliseconds: reads do not retry the connection at once."""
    caplog.set_level(logging.DEBUG, logger="tasktracker.cache")
    assert dead_redis.get("k") is None
    assert dead_redis.get("k") is None
    assert dead_redis.get_many(["k"]) == [None]
    assert len([r for r in caplog.records if r.name == "tasktracker.cache"]) == 1


@pytest.mark.postgres_only
def test_caching_resumes_when_redis_is_back(
    app: Flask,
    dead_redis: RedisCache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tasktracker.cache")
    monkeypatch.setattr(dead_redis, "RETRY_AFTER_SECONDS", 0.0)
    assert dead_redis.get("k") is None
    live = app.extensions["tasktracker"].redis
    monkeypatch.setattr(dead_redis, "_client", live)
    dead_redis.set("k", b"v", 10)
    assert dead_redis.get("k") == b"v"
    messages = [r.getMessage() for r in caplog.records if r.name == "tasktracker.cache"]
    assert messages[-1] == "Redis is reachable again; caching resumed"
