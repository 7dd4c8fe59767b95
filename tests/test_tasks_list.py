"""GET /api/v1/tasks: filters, sort allow-list, offset and cursor pages, query count, search."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text, update

from tasktracker.models import Task, db
from tests.conftest import TestUser
from tests.tasks_helpers import assert_error, bulk_tasks, create

LIST = "/api/v1/tasks"
PRIORITY_ORDER = {"low": 0, "medium": 1, "high": 2}
STATUS_ORDER = {"todo": 0, "in_progress": 1, "done": 2}


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [t["task_name"] for t in response.get_json()["items"]]


def walk(client: FlaskClient, headers: dict[str, str], query: str) -> Iterator[dict[str, Any]]:
    """Every page of a cursor walk (the first page by offset, then by cursor)."""
    url = f"{LIST}?{query}"
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        yield body
        cursor = body["next_cursor"]
        url = f"{LIST}?{query}&cursor={cursor}" if cursor else ""


def sort_key(sort: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The server's order in Python: NULLs last ascending and first descending, id last."""
    fields = [(f.removeprefix("-"), f.startswith("-")) for f in sort.split(",")]
    if "id" not in {f for f, _ in fields}:
        fields.append(("id", False))

    def key(task: dict[str, Any]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for field, desc in fields:
            value = task[field]
            if field == "priority":
                value = PRIORITY_ORDER[value]
            elif field == "status":
                value = STATUS_ORDER[value]
            is_null = value is None  # ISO dates and times (one format) sort as text
            if desc:
                # Descending: NULL first, then values from high to low.
                parts.append((0 if is_null else 1, _Reverse(value) if not is_null else 0))
            else:
                parts.append((1 if is_null else 0, value if not is_null else 0))
        return tuple(parts)

    return key


class _Reverse:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reverse) -> bool:
        return bool(self.value > other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


# -- shape and defaults -------------------------------------------------------------------------
def test_list_shape_default_order_and_pages(client: FlaskClient, user: TestUser) -> None:
    for i in range(3):
        create(client, user.headers, task_name=f"t{i}")
    response = client.get(f"{LIST}?per_page=2", headers=user.headers)
    body = response.get_json()
    assert set(body) == {"items", "total", "page", "per_page", "pages", "next_cursor"}
    assert body["total"] == 3
    assert body["page"] == 1
    assert body["per_page"] == 2
    assert body["pages"] == 2
    assert body["next_cursor"]
    # Newest first.
    assert [t["task_name"] for t in body["items"]] == ["t2", "t1"]
    last = client.get(f"{LIST}?per_page=2&page=2", headers=user.headers).get_json()
    assert [t["task_name"] for t in last["items"]] == ["t0"]
    assert last["next_cursor"] is None
    beyond = client.get(f"{LIST}?per_page=2&page=5", headers=user.headers).get_json()
    assert beyond["items"] == []
    assert beyond["total"] == 3


def test_list_empty(client: FlaskClient, viewer: TestUser) -> None:
    body = client.get(LIST, headers=viewer.headers).get_json()
    assert body == {
        "items": [],
        "total": 0,
        "page": 1,
        "per_page": 20,
        "pages": 0,
        "next_cursor": None,
    }


def test_list_needs_a_token(client: FlaskClient) -> None:
    assert_error(client.get(LIST), 401)


# -- filters ------------------------------------------------------------------------------------
@pytest.fixture
def assorted(client: FlaskClient, user: TestUser, other_user: TestUser) -> dict[str, int]:
    """Five tasks with known fields: alice created a-d, bob created e."""
    specs = {
        "a": {"status": "todo", "priority": "low", "due_date": "2030-01-05"},
        "b": {"status": "in_progress", "priority": "high", "due_date": "2030-01-10"},
        "c": {"status": "done", "priority": "medium", "assignee_id": other_user.id},
        "d": {
            "status": "todo",
            "priority": "high",
            "assignee_id": user.id,
            "due_date": "2030-02-01",
        },
    }
    ids = {
        name: create(client, user.headers, task_name=name, **f)["id"] for name, f in specs.items()
    }
    ids["e"] = create(client, other_user.headers, task_name="e", priority="medium")["id"]
    return ids


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=todo", {"a", "d", "e"}),
        ("status=todo,done", {"a", "c", "d", "e"}),
        ("status=IN_PROGRESS", {"b"}),
        ("priority=high", {"b", "d"}),
        ("priority=low,medium", {"a", "c", "e"}),
        ("due_from=2030-01-06", {"b", "d"}),
        ("due_to=2030-01-10", {"a", "b"}),
        ("due_from=2030-01-05&due_to=2030-01-05", {"a"}),
        ("status=todo&priority=high", {"d"}),
        ("priority=high&due_to=2030-01-31", {"b"}),
    ],
)
def test_filters(
    client: FlaskClient, user: TestUser, assorted: dict[str, int], query: str, expected: set[str]
) -> None:
    response = client.get(f"{LIST}?{query}", headers=user.headers)
    assert set(names(response)) == expected
    assert response.get_json()["total"] == len(expected)


def test_assignee_and_created_by_filters(
    client: FlaskClient, user: TestUser, other_user: TestUser, assorted: dict[str, int]
) -> None:
    assert set(names(client.get(f"{LIST}?assignee=me", headers=user.headers))) == {"d"}
    assert set(names(client.get(f"{LIST}?assignee=me", headers=other_user.headers))) == {"c"}
    by_id = client.get(f"{LIST}?assignee={other_user.id}", headers=user.headers)
    assert set(names(by_id)) == {"c"}
    mine = client.get(f"{LIST}?created_by=me", headers=other_user.headers)
    assert set(names(mine)) == {"e"}
    alices = client.get(f"{LIST}?created_by={user.id}&status=todo", headers=other_user.headers)
    assert set(names(alices)) == {"a", "d"}


def test_created_filters_are_whole_days(
    app: Flask, client: FlaskClient, user: TestUser, assorted: dict[str, int]
) -> None:
    with app.app_context():
        db.session.execute(
            update(Task)
            .where(Task.id == assorted["a"])
            .values(created_at=datetime(2024, 3, 1, 23, 59, tzinfo=UTC))
        )
        db.session.execute(
            update(Task)
            .where(Task.id == assorted["b"])
            .values(created_at=datetime(2024, 3, 2, 0, 0, tzinfo=UTC))
        )
        db.session.commit()
    one_day = client.get(
        f"{LIST}?created_from=2024-03-01&created_to=2024-03-01", headers=user.headers
    )
    assert set(names(one_day)) == {"a"}
    two_days = client.get(
        f"{LIST}?created_from=2024-03-01&created_to=2024-03-02", headers=user.headers
    )
    assert set(names(two_days)) == {"a", "b"}
    before = client.get(f"{LIST}?created_to=2024-12-31", headers=user.headers)
    assert set(names(before)) == {"a", "b"}


@pytest.mark.parametrize(
    ("query", "total"),
    [
        ("created_from=0001-01-01", 5),
        ("created_to=9999-12-31", 5),
        ("due_from=0001-01-01&due_to=9999-12-31", 3),  # c and e have no due date
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_no_error(
    client: FlaskClient, user: TestUser, assorted: dict[str, int], query: str, total: int
) -> None:
    assert client.get(f"{LIST}?{query}", headers=user.headers).get_json()["total"] == total


def test_deleted_filter_is_for_admins(
    client: FlaskClient, admin: TestUser, user: TestUser, assorted: dict[str, int]
) -> None:
    client.delete(f"{LIST}/{assorted['a']}", headers=admin.headers)
    assert "a" not in names(client.get(LIST, headers=user.headers))
    assert "a" not in names(client.get(LIST, headers=admin.headers))
    included = client.get(f"{LIST}?deleted=include", headers=admin.headers)
    assert set(names(included)) == {"a", "b", "c", "d", "e"}
    assert names(client.get(f"{LIST}?deleted=only", headers=admin.headers)) == ["a"]
    assert_error(client.get(f"{LIST}?deleted=include", headers=user.headers), 403)
    assert_error(client.get(f"{LIST}?deleted=only", headers=user.headers), 403)
    assert names(client.get(f"{LIST}?deleted=exclude", headers=user.headers))


def test_search_finds_words_in_name_or_description(client: FlaskClient, user: TestUser) -> None:
    create(client, user.headers, task_name="Quarterly report", description="numbers for Q3")
    create(client, user.headers, task_name="Fix login", description="The REPORT button fails")
    create(client, user.headers, task_name="Water plants", description=None)
    create(client, user.headers, task_name="100% done_ish", description="literal wildcards")
    assert set(names(client.get(f"{LIST}?q=report", headers=user.headers))) == {
        "Quarterly report",
        "Fix login",
    }
    assert names(client.get(f"{LIST}?q=quarterly numbers", headers=user.headers)) == [
        "Quarterly report"
    ]
    assert names(client.get(f"{LIST}?q=plants", headers=user.headers)) == ["Water plants"]
    assert names(client.get(f"{LIST}?q=nothing-like-it", headers=user.headers)) == []
    # % and _ are text, not wildcards (and no error on PostgreSQL either).
    assert client.get(f"{LIST}?q=%25", headers=user.headers).status_code == 200
    assert client.get(f"{LIST}?q=_", headers=user.headers).status_code == 200
    assert client.get(f"{LIST}?q=%20", headers=user.headers).get_json()["total"] == 4


@pytest.mark.postgres_only
def test_search_uses_the_gin_index(app: Flask, client: FlaskClient, user: TestUser) -> None:
    """The list's WHERE is the indexed expression, so PostgreSQL can use ix_tasks_search."""
    from tasktracker.repositories.tasks import _VIEW, Deleted, TaskFilters, TaskRepository

    with app.app_context():
        repo = TaskRepository(db.session)
        filters = TaskFilters(search="report", deleted=Deleted.INCLUDE)
        query = _VIEW.where(*repo._conditions(filters))
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        with db.engine.begin() as conn:
            # Leave the planner only bitmap scans: a tiny table would rather scan it all.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_indexscan = off"))
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_tasks_search" in plan, plan
    assert "websearch_to_tsquery" in str(compiled)


# -- sort ---------------------------------------------------------------------------------------
def test_sort_by_priority_and_status_follows_the_domain_order(
    client: FlaskClient, user: TestUser, assorted: dict[str, int]
) -> None:
    by_priority = client.get(f"{LIST}?sort=priority", headers=user.headers)
    assert [t["priority"] for t in by_priority.get_json()["items"]] == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    desc = client.get(f"{LIST}?sort=-priority,task_name", headers=user.headers)
    assert names(desc) == ["b", "d", "c", "e", "a"]
    by_status = client.get(f"{LIST}?sort=status,-task_name", headers=user.headers)
    assert names(by_status) == ["e", "d", "a", "b", "c"]


def test_sort_by_due_date_puts_missing_dates_last_then_first(
    client: FlaskClient, user: TestUser, assorted: dict[str, int]
) -> None:
    assert names(client.get(f"{LIST}?sort=due_date", headers=user.headers)) == [
        "a",
        "b",
        "d",
        "c",
        "e",
    ]
    assert names(client.get(f"{LIST}?sort=-due_date", headers=user.headers)) == [
        "c",
        "e",
        "d",
        "b",
        "a",
    ]


def test_sort_with_filters_combined(
    client: FlaskClient, user: TestUser, assorted: dict[str, int]
) -> None:
    response = client.get(
        f"{LIST}?status=todo,in_progress&priority=high,low&sort=-due_date,task_name",
        headers=user.headers,
    )
    assert names(response) == ["d", "b", "a"]
    response = client.get(f"{LIST}?created_by=me&sort=id&per_page=2&page=2", headers=user.headers)
    assert names(response) == ["c", "d"]


# -- bad parameters -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=1.5", "per_page"),
        ("status=started", "status"),
        ("status=todo,bogus", "status"),
        ("priority=urgent", "priority"),
        ("assignee=someone", "assignee"),
        ("assignee=-3", "assignee"),
        ("created_by=12345678901", "created_by"),
        ("due_from=tomorrow", "due_from"),
        ("due_from=2030-02-01&due_to=2030-01-01", "due_to"),
        ("created_from=2030-02-01&created_to=2030-01-01", "created_to"),
        ("deleted=all", "deleted"),
        ("sort=name", "sort"),
        ("sort=-priority,password_hash", "sort"),
        ("sort=priority, -due_date", "sort"),
        ("sort=", "sort"),
        ("sort=due_date,,id", "sort"),
        ("color=red", "color"),
        ("cursor=not-a-cursor", "cursor"),
        ("q=" + "x" * 501, "q"),
    ],
)
def test_bad_parameters_are_422(
    client: FlaskClient, user: TestUser, query: str, field: str
) -> None:
    assert_error(client.get(f"{LIST}?{query}", headers=user.headers), 422, field)


def test_a_cursor_is_only_good_for_its_sort_and_cannot_be_forged(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    bulk_tasks(app, user.id, 5)
    first = client.get(f"{LIST}?per_page=2&sort=priority", headers=user.headers).get_json()
    cursor = first["next_cursor"]
    assert (
        client.get(
            f"{LIST}?per_page=2&sort=priority&cursor={cursor}", headers=user.headers
        ).status_code
        == 200
    )
    other_sort = client.get(
        f"{LIST}?per_page=2&sort=-priority&cursor={cursor}", headers=user.headers
    )
    assert_error(other_sort, 422, "cursor")
    # Edit the payload (keep the signature): refused.
    body, _, signature = cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["k"][-1] = 1
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    forged = client.get(
        f"{LIST}?per_page=2&sort=priority&cursor={forged_body}.{signature}", headers=user.headers
    )
    assert_error(forged, 422, "cursor")


# -- cursor walks -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sort",
    [
        "-created_at,id",
        "priority,-due_date",
        "-priority,due_date,-id",
        "due_date,-updated_at",
        "status,task_name",
        "-task_name",
    ],
)
def test_cursor_walk_visits_every_row_once_in_order(
    app: Flask, client: FlaskClient, user: TestUser, sort: str
) -> None:
    ids = bulk_tasks(app, user.id, 2500)
    seen: list[dict[str, Any]] = []
    pages = 0
    for body in walk(client, user.headers, f"per_page=100&sort={sort}"):
        pages += 1
        assert body["total"] == 2500
        seen.extend(body["items"])
    assert pages == 25
    assert sorted(t["id"] for t in seen) == sorted(ids)
    assert seen == sorted(seen, key=sort_key(sort))


def test_cursor_walk_is_stable_under_inserts(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    original = set(bulk_tasks(app, user.id, 600))
    seen: list[int] = []
    for i, body in enumerate(walk(client, user.headers, "per_page=50&sort=-created_at")):
        seen.extend(t["id"] for t in body["items"])
        if i in (2, 5):
            # New tasks land both before and after the walk's position.
            bulk_tasks(app, user.id, 40, seed=100 + i)
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert original <= set(seen), "a row that existed all along was skipped"


def test_cursor_walk_with_filters(app: Flask, client: FlaskClient, user: TestUser) -> None:
    bulk_tasks(app, user.id, 900)
    everything = [
        t
        for body in walk(client, user.headers, "per_page=100&sort=due_date&priority=high,low")
        for t in body["items"]
    ]
    assert everything
    assert {t["priority"] for t in everything} == {"high", "low"}
    total = client.get(f"{LIST}?priority=high,low", headers=user.headers).get_json()["total"]
    assert len(everything) == len({t["id"] for t in everything}) == total


def test_cursor_pages_report_no_page_number(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    bulk_tasks(app, user.id, 3)
    first = client.get(f"{LIST}?per_page=2", headers=user.headers).get_json()
    second = client.get(
        f"{LIST}?per_page=2&page=7&cursor={first['next_cursor']}", headers=user.headers
    ).get_json()
    assert second["page"] is None
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    assert second["total"] == 3


# -- constant number of queries -----------------------------------------------------------------
def test_the_list_costs_the_same_queries_whatever_the_page_size(
    app: Flask, client: FlaskClient, admin: TestUser, make_user: Callable[..., TestUser]
) -> None:
    assignees = [make_user("user") for _ in range(4)]
    for i in range(60):
        ids = bulk_tasks(app, assignees[i % 4].id, 1, seed=i)
        with app.app_context():
            db.session.execute(
                update(Task).where(Task.id == ids[0]).values(assignee_id=assignees[(i + 1) % 4].id)
            )
            db.session.commit()

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def queries(url: str) -> list[str]:
        statements.clear()
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(url, headers=admin.headers)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        return list(statements)

    queries(LIST)  # warm up: the first request of a token checks its revocation in the database
    small = queries(f"{LIST}?per_page=5")
    large = queries(f"{LIST}?per_page=60&sort=-priority,due_date")
    assert len(small) == len(large)
    on_tasks = [s for s in large if "FROM tasks" in s]
    assert len(on_tasks) == 2, on_tasks  # the count and the page (users joined in)
    assert len(queries(f"{LIST}?per_page=60&q=task")) == len(small)


def test_due_dates_compare_as_dates(client: FlaskClient, user: TestUser) -> None:
    today = date.today()
    create(client, user.headers, task_name="soon", due_date=(today + timedelta(days=1)).isoformat())
    create(
        client, user.headers, task_name="late", due_date=(today + timedelta(days=40)).isoformat()
    )
    response = client.get(
        f"{LIST}?due_to={(today + timedelta(days=7)).isoformat()}", headers=user.headers
    )
    assert names(response) == ["soon"]
