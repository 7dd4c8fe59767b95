"""The first page beside a page deep in the table, by offset and by cursor.

For each bench size the product runs under gunicorn and one client asks, in turn, for the
first page of ``GET /api/v1/tasks``, the page at 90% of the table by ``page=`` (offset) and the
same position by ``cursor=`` (the ``next_cursor`` the server issued for the page before it),
``--requests`` times each on one keep-alive connection; the median latency is kept. The
page query alone (the product's repository, in this process) is timed the same way, since
every list answer also counts the matching rows, which costs the same on every page.

    python -m bench.pages_bench --sizes 10k,100k --requests 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import datagen
from .common import (
    SIZES,
    app_env,
    clear_redis,
    gunicorn,
    load_average,
    log_dir,
    login,
    parse_sizes,
    product_app,
    save_result,
    warn_if_noisy,
)

FIGURE = "pages"
PER_PAGE = 20
DEPTH = 0.9  # the deep page starts 90% into the table
# "As fast as the first": the deep cursor page's median within this factor of the first's.
TARGET = 1.1


def _timed_get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[float, Any]:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed, json.loads(body)


def _http(url: str, token: str, size: str, requests: int) -> dict[str, Any]:
    rows = SIZES[size]
    deep_page = int(rows * DEPTH) // PER_PAGE + 1
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        # The server's own cursor for the deep position: the next_cursor of the page before.
        _, before = _timed_get(
            conn, f"/api/v1/tasks?per_page={PER_PAGE}&page={deep_page - 1}", token
        )
        base = f"/api/v1/tasks?per_page={PER_PAGE}"
        paths = {
            "first": base,
            "offset_deep": f"{base}&page={deep_page}",
            "cursor_deep": f"{base}&cursor={quote(before['next_cursor'])}",
        }
        _, by_offset = _timed_get(conn, paths["offset_deep"], token)
        _, by_cursor = _timed_get(conn, paths["cursor_deep"], token)
        if [t["id"] for t in by_offset["items"]] != [t["id"] for t in by_cursor["items"]]:
            raise RuntimeError("the offset and cursor pages differ: not the same position")
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(2):  # warm-up
            for path in paths.values():
                _timed_get(conn, path, token)
        for _ in range(requests):  # interleaved: noise falls on all three alike
            for name, path in paths.items():
                times[name].append(_timed_get(conn, path, token)[0])
    finally:
        conn.close()
    return {
        "deep_page": deep_page,
        **{f"{name}_ms": round(1000 * statistics.median(ts), 2) for name, ts in times.items()},
        **{f"{name}_p90_ms": round(1000 * _p90(ts), 2) for name, ts in times.items()},
    }


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def _page_query(db_name: str, size: str, requests: int) -> dict[str, Any]:
    """The product's page query alone (no count, no HTTP): first, offset-deep, keyset-deep."""
    from tasktracker.repositories.tasks import TaskFilters
    from tasktracker.services.tasks import parse_sort

    sort = parse_sort(None)
    offset = int(SIZES[size] * DEPTH)
    with product_app(db_name) as app, app.app_context():
        container = app.extensions["tasktracker"]
        with container.uow() as uow:
            anchor = uow.tasks.page(TaskFilters(), sort, limit=1, offset=offset - 1)[0]
        after = [getattr(anchor, key.field) for key in sort]
        calls: dict[str, tuple[int, list[Any] | None]] = {
            "first": (0, None),
            "offset_deep": (offset, None),
            "cursor_deep": (0, after),
        }
        times: dict[str, list[float]] = {name: [] for name in calls}
        with container.uow() as uow:
            for rep in range(requests + 2):
                for name, (skip, keys) in calls.items():
                    started = time.perf_counter()
                    uow.tasks.page(TaskFilters(), sort, limit=PER_PAGE + 1, offset=skip, after=keys)
                    if rep >= 2:
                        times[name].append(time.perf_counter() - started)
    return {f"{name}_ms": round(1000 * statistics.median(ts), 3) for name, ts in times.items()}


def bench_size(size: str, db_name: str, *, requests: int, logs: Path) -> dict[str, Any]:
    load_before = warn_if_noisy(f"pages {size}")
    env = app_env(db_name, TASKTRACKER_RATELIMIT_DEFAULT="1000000/minute")
    with gunicorn("api-pages", "tasktracker.wsgi:app", env, logs) as api:
        try:
            token = login(api.url, datagen.USER, datagen.PASSWORD)
            http_figures = _http(api.url, token, size, requests)
        finally:
            clear_redis()
    query_figures = _page_query(db_name, size, requests)
    share = round(http_figures["cursor_deep_ms"] / http_figures["first_ms"], 3)
    query_share = round(query_figures["cursor_deep_ms"] / query_figures["first_ms"], 3)
    print(f"[pages {size}] http {http_figures} query {query_figures}")
    return {
        "rows": SIZES[size],
        "http": http_figures,
        "query": query_figures,
        "ratio": share,
        "query_ratio": query_share,
        "target": TARGET,
        "pass": share <= TARGET,
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--db", help="an existing, filled bench database (one size only)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    started = time.monotonic()
    for size in parse_sizes(args.sizes):
        if args.db:
            results[size] = bench_size(size, args.db, requests=args.requests, logs=log_dir())
            continue
        with datagen.bench_database(size, "_pages") as db_name:
            results[size] = bench_size(size, db_name, requests=args.requests, logs=log_dir())
    save_result(FIGURE, {"sizes": results, "seconds": round(time.monotonic() - started, 1)})


if __name__ == "__main__":
    main()
