"""Concurrent writers of one task: none is lost silently (row lock + version column)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text

from tasktracker.models import db
from tests.conftest import BACKEND, TestUser
from tests.tasks_helpers import assert_error, create


def run_together(app: Flask, calls: list[Callable[[Any], Any]]) -> list[Any]:
    """Run each call with its own test client in its own thread, all released at once."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        results[i] = calls[i](client)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_writers_with_the_same_if_match_one_wins(app: Flask, user: TestUser) -> None:
    task = create(app.test_client(), user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    headers = {**user.headers, "If-Match": '"1"'}
    priorities = ["low", "high", "low", "high", "low", "high"]
    responses = run_together(
        app,
        [
            (lambda c, p=p: c.patch(url, json={"priority": p, "task_name": p}, headers=headers))
            for p in priorities
        ],
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 412, 412, 412, 412, 412], [r.get_json() for r in responses]
    winner = next(r.get_json() for r in responses if r.status_code == 200)
    current = app.test_client().get(url, headers=user.headers).get_json()
    assert current["version"] == 2
    assert current["priority"] == winner["priority"] == current["task_name"]
    history = app.test_client().get(f"{url}/history", headers=user.headers).get_json()
    assert [e["action"] for e in history["items"]] == ["create", "update"]


def test_concurrent_writers_without_if_match_are_both_applied(app: Flask, user: TestUser) -> None:
    task = create(app.test_client(), user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    responses = run_together(
        app,
        [
            lambda c: c.patch(url, json={"priority": "high"}, headers=user.headers),
            lambda c: c.patch(url, json={"description": "both"}, headers=user.headers),
        ],
    )
    codes = [r.status_code for r in responses]
    # Each writer either applied its change on top of the other's (row lock), or was told
    # it lost (409 when SQLite's version check caught the race): never a silent loss.
    assert all(code in (200, 409) for code in codes), [r.get_json() for r in responses]
    current = app.test_client().get(url, headers=user.headers).get_json()
    assert current["version"] == 1 + codes.count(200)
    if codes[0] == 200:
        assert current["priority"] == "high"
    if codes[1] == 200:
        assert current["description"] == "both"
    if BACKEND != "embedded":
        assert codes == [200, 200]


@pytest.mark.postgres_only
@pytest.mark.parametrize(("if_match", "status"), [('"1"', 412), (None, 200)])
def test_a_writer_waits_for_the_row_lock_then_sees_the_new_version(
    app: Flask, user: TestUser, if_match: str | None, status: int
) -> None:
    task = create(app.test_client(), user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    headers = {**user.headers, **({"If-Match": if_match} if if_match else {})}
    with app.app_context():
        engine = db.engine
    results: list[Any] = []
    with engine.connect() as other:
        # Another writer holds the row and changes it.
        other.execute(text("SELECT id FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
        other.execute(
            text("UPDATE tasks SET description = 'other', version = 2 WHERE id = :id"),
            {"id": task["id"]},
        )
        thread = threading.Thread(
            target=lambda: results.append(
                app.test_client().patch(url, json={"priority": "high"}, headers=headers)
            )
        )
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the request did not wait for the row lock"
        other.commit()
    thread.join(timeout=30)
    (response,) = results
    assert response.status_code == status, response.get_json()
    current = app.test_client().get(url, headers=user.headers).get_json()
    assert current["description"] == "other"  # the other writer's change survives
    assert current["priority"] == ("high" if status == 200 else "medium")
    assert current["version"] == (3 if status == 200 else 2)


@pytest.mark.skipif(BACKEND != "embedded", reason="SQLite has no row locks; this is its guard")
@pytest.mark.parametrize(("if_match", "status"), [('"1"', 412), (None, 409)])
def test_a_write_that_loses_the_version_race_changes_nothing(
    app: Flask, user: TestUser, if_match: str | None, status: int
) -> None:
    """Between the service's read and its UPDATE another writer commits: the version check
    refuses the UPDATE, and the answer says so (412 with If-Match, else 409)."""
    task = create(app.test_client(), user.headers)
    url = f"/api/v1/tasks/{task['id']}"
    headers = {**user.headers, **({"If-Match": if_match} if if_match else {})}
    with app.app_context():
        engine = db.engine

    def interleave(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE tasks") and not fired:
            fired.append(True)
            with engine.connect() as other:
                other.execute(
                    text("UPDATE tasks SET description = 'other', version = 2 WHERE id = :id"),
                    {"id": task["id"]},
                )
                other.commit()

    fired: list[bool] = []
    event.listen(engine, "before_cursor_execute", interleave)
    try:
        response = app.test_client().patch(url, json={"priority": "high"}, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", interleave)
    assert fired
    assert_error(response, status)
    current = app.test_client().get(url, headers=user.headers).get_json()
    assert current["description"] == "other"
    assert current["priority"] == "medium"
    assert current["version"] == 2
    history = app.test_client().get(f"{url}/history", headers=user.headers).get_json()
    assert [e["action"] for e in history["items"]] == ["create"]
