"""HTTP figures: each API route beside its limit, under the same gunicorn, with wrk.

For each bench size: the product (``tasktracker.wsgi:app``) and the bare limits
(``bench.bare_app:app``) run side by side under ``gunicorn.conf.py`` with the same
environment (so the same worker and thread counts); wrk, a separate process, drives one at a
time on loopback with a fixed number of connections, first a short warm-up, then the measured
run. The product is called as a client would: a real access token from
``POST /api/v1/auth/login``; its rate limit is raised for the run. A scenario and its limit
are measured back to back, and the whole set is repeated ``--rounds`` times; the best round
of each side is kept (noise from other processes only ever slows a run down).

    python -m bench.http_bench --sizes 10k --duration 5
"""

from __future__ import annotations

import argparse
import json
import runpy
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from . import datagen
from .common import (
    REPO_ROOT,
    SIZES,
    app_env,
    clear_redis,
    gunicorn,
    load_average,
    log_dir,
    login,
    parse_sizes,
    ratio,
    request,
    save_result,
    warn_if_noisy,
)

FIGURE = "http"
CONNECTIONS = 10
WRK_THREADS = 1
WARMUP_SECONDS = 1
DURATION_SECONDS = 2
ROUNDS = 3
# SPEC section 10: the list and the single task against the same SQL through psycopg, the
# cached date page against a bare JSON endpoint.
DATA_TARGET = 0.5
FRAMEWORK_TARGET = 0.65


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    method: str
    path: str
    limit_path: str
    limit_label: str
    target: float | None
    random_id: bool = False
    body: dict[str, Any] | None = None


DATE = datagen.LAST_LOG_DATE.isoformat()
SCENARIOS = (
    Scenario(
        "list",
        "GET /api/v1/tasks (20 rows, default sort)",
        "GET",
        "/api/v1/tasks",
        "/bare/tasks",
        "same SQL via psycopg",
        DATA_TARGET,
    ),
    Scenario(
        "list_filter",
        "GET /api/v1/tasks?status=in_progress&priority=high",
        "GET",
        "/api/v1/tasks?status=in_progress&priority=high",
        "/bare/tasks?status=in_progress&priority=high",
        "same SQL via psycopg",
        DATA_TARGET,
    ),
    Scenario(
        "list_search",
        f"GET /api/v1/tasks?q={datagen.SEARCH_TERM}",
        "GET",
        f"/api/v1/tasks?q={datagen.SEARCH_TERM}",
        f"/bare/tasks?q={datagen.SEARCH_TERM}",
        "same SQL via psycopg",
        DATA_TARGET,
    ),
    Scenario(
        "task",
        "GET /api/v1/tasks/{id} (random ids)",
        "GET",
        "/api/v1/tasks/",
        "/bare/tasks/",
        "same SQL via psycopg",
        DATA_TARGET,
        random_id=True,
    ),
    # Before "create": every write makes the cached pages stale.
    Scenario(
        "date_cached",
        f"GET /tasks?date={DATE} (cached)",
        "GET",
        f"/tasks?date={DATE}",
        "/bare/json",
        "bare JSON dict",
        FRAMEWORK_TARGET,
    ),
    Scenario(
        "create",
        "POST /api/v1/tasks",
        "POST",
        "/api/v1/tasks",
        "/bare/tasks",
        "same INSERTs via psycopg",
        None,
        body={"task_name": "Bench task", "description": "Made by wrk", "priority": "high"},
    ),
)

LUA = """
local method = %(method)s
local path = %(path)s
local body = %(body)s
local id_max = %(id_max)d
wrk.headers["Authorization"] = %(auth)s
if body then wrk.headers["Content-Type"] = "application/json" end

request = function()
  local p = path
  if id_max > 0 then p = path .. math.random(1, id_max) end
  return wrk.format(method, p, nil, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "status_errors": %%d, ' ..
    '"socket_errors": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _lua_string(value: str | None) -> str:
    return "nil" if value is None else json.dumps(value)  # a JSON string is a Lua string here


def wrk(
    url: str, scenario: Scenario, *, limit: bool, token: str, seconds: int, ids: int, workdir: Path
) -> dict[str, Any]:
    """One wrk run; requests/s, p50/p99 in ms, and the error counts."""
    script = workdir / f"{scenario.name}-{'limit' if limit else 'api'}.lua"
    script.write_text(
        LUA
        % {
            "method": _lua_string(scenario.method),
            "path": _lua_string(scenario.limit_path if limit else scenario.path),
            "body": _lua_string(json.dumps(scenario.body) if scenario.body else None),
            "id_max": ids if scenario.random_id else 0,
            "auth": _lua_string(f"Bearer {token}"),
        }
    )
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "requests": raw["requests"],
        "errors": raw["status_errors"] + raw["socket_errors"],
    }


def gunicorn_settings() -> dict[str, Any]:
    """The worker and thread counts gunicorn.conf.py gives both servers in this environment."""
    conf = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    return {"workers": conf["workers"], "threads": conf["threads"], "keepalive": conf["keepalive"]}


def _check(url: str, scenario: Scenario, token: str, *, limit: bool) -> None:
    """One request before measuring: a route that does not answer 2xx is no figure."""
    path = scenario.limit_path if limit else scenario.path
    if scenario.random_id:
        path += "1"
    status, body = request(
        url,
        scenario.method,
        path,
        body=scenario.body,
        headers={"Authorization": f"Bearer {token}"},
    )
    if not 200 <= status < 300:
        raise RuntimeError(f"{scenario.method} {path}: {status} {body[:300]!r}")


def settings(seconds: int, rounds: int, warmup: int = WARMUP_SECONDS) -> dict[str, Any]:
    """How the figures were taken (for the report)."""
    return {
        **gunicorn_settings(),
        "wrk_threads": WRK_THREADS,
        "connections": CONNECTIONS,
        "duration_s": seconds,
        "warmup_s": warmup,
        "rounds": rounds,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median requests/s (the lower middle of an even count)."""
    return sorted(runs, key=lambda run: run["rps"])[(len(runs) - 1) // 2]


def _row(
    scenario: Scenario, api_runs: list[dict[str, Any]], limit_runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """One scenario's figures: the median run of each side and the median of the ratios of
    the pairs measured back to back."""
    api_fig, limit_fig = _median_run(api_runs), _median_run(limit_runs)
    pairs = [ratio(a["rps"], b["rps"]) for a, b in zip(api_runs, limit_runs, strict=True)]
    known = [p for p in pairs if p is not None]
    share = round(statistics.median(known), 3) if known else None
    valid = all(run["errors"] == 0 for run in api_runs + limit_runs)
    return {
        "name": scenario.name,
        "label": scenario.label,
        "limit_label": scenario.limit_label,
        "limit_path": scenario.limit_path,
        "api": api_fig,
        "limit": limit_fig,
        "pair_ratios": pairs,
        "ratio": share,
        "target": scenario.target,
        "pass": None
        if scenario.target is None
        else bool(valid and share is not None and share >= scenario.target),
        "valid": valid,
    }


def bench_size(
    size: str,
    db_name: str,
    *,
    seconds: int,
    rounds: int,
    only: set[str] | None,
    logs: Path,
    api_env: dict[str, str] | None = None,
    warmup: int = WARMUP_SECONDS,
) -> dict[str, Any]:
    """Every scenario beside its limit on one database, the two taking turns ``rounds``
    times; ``api_env`` changes the product's settings only (to measure what a setting costs)."""
    scenarios = [s for s in SCENARIOS if only is None or s.name in only]
    load_before = warn_if_noisy(f"http {size}")
    # Raised limits: the bench measures throughput, not the limiter's refusals.
    env = app_env(db_name, TASKTRACKER_RATELIMIT_DEFAULT="1000000/minute")
    product_env = {**env, **(api_env or {})}
    rows = []
    with ExitStack() as stack:
        api = stack.enter_context(gunicorn("api", "tasktracker.wsgi:app", product_env, logs))
        bare = stack.enter_context(gunicorn("bare", "bench.bare_app:app", env, logs))
        stack.callback(clear_redis)
        token = login(api.url, datagen.USER, datagen.PASSWORD)
        workdir = Path(tempfile.mkdtemp(prefix="wrk-", dir=logs))
        for scenario in scenarios:
            sides = ((False, api), (True, bare))
            runners = {
                limit: partial(
                    wrk,
                    server.url,
                    scenario,
                    limit=limit,
                    token=token,
                    ids=SIZES[size],
                    workdir=workdir,
                )
                for limit, server in sides
            }
            for limit, server in sides:
                _check(server.url, scenario, token, limit=limit)
                if warmup:
                    runners[limit](seconds=warmup)
            # The two sides take turns, so a change in the machine's speed (a shared VM's
            # throughput here moves by 2-4x within a minute) hits both sides of each pair.
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for round_no in range(rounds):
                for limit, _server in sides:
                    figures = runners[limit](seconds=seconds)
                    figures["round"] = round_no + 1
                    figures["load"] = load_average()
                    runs[limit].append(figures)
                    side = "limit" if limit else "api  "
                    print(
                        f"[http {size}] {scenario.name:12} {side} {figures['rps']:8.1f} req/s "
                        f"p50 {figures['p50_ms']:6.2f} ms p99 {figures['p99_ms']:7.2f} ms "
                        f"errors {figures['errors']} (load {figures['load']})"
                    )
            rows.append(_row(scenario, runs[False], runs[True]))
    return {
        "scenarios": rows,
        "api_env": api_env or {},
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k", help="comma-separated: 10k,100k,1m")
    parser.add_argument("--duration", type=int, default=DURATION_SECONDS, help="seconds a run")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="turns of each side")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--db", help="an existing, filled bench database (one size only)")
    parser.add_argument(
        "--api-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the product only, e.g. TASKTRACKER_RATELIMIT_ENABLED=false",
    )
    parser.add_argument("--figure", default=FIGURE, help="results name (var/bench/<figure>.json)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    api_env = dict(item.split("=", 1) for item in args.api_env)
    sizes = parse_sizes(args.sizes)
    only = set(args.only.split(",")) if args.only else None
    results: dict[str, Any] = {}
    started = time.monotonic()
    options = {
        "seconds": args.duration,
        "rounds": args.rounds,
        "only": only,
        "logs": log_dir(),
        "api_env": api_env,
    }
    for size in sizes:
        if args.db:
            results[size] = bench_size(size, args.db, **options)
            continue
        with datagen.bench_database(size, "_http") as db_name:
            results[size] = bench_size(size, db_name, **options)
    save_result(
        args.figure,
        {
            "sizes": results,
            "settings": settings(args.duration, args.rounds),
            "seconds": round(time.monotonic() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
