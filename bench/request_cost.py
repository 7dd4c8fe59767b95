"""CPU per request in the API process: each route beside its limit, in this process.

Both apps are driven by Flask's test client (no sockets, no gunicorn), one request at a time;
``time.process_time`` counts only this process's CPU, so the figure barely moves with the
machine's load, unlike requests/second. On a 2-core machine the API's own CPU per request is
what bounds its throughput, so this is the cost the HTTP ratios are made of. With
``--profile`` py-spy samples the product's requests (GIL holders only: CPU, not waits) and
prints where that CPU goes.

    python -m bench.request_cost --db tasktracker_bench_10k [--profile date_cached]
    python -m bench.request_cost --db tasktracker_bench_10k --cprofile task --count 2000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import datagen
from .common import SIZES, app_env, clear_redis, product_app, results_dir
from .http_bench import SCENARIOS, Scenario


def _measure(
    client: Any, scenario: Scenario, *, limit: bool, headers: dict[str, str], count: int, ids: int
) -> tuple[float, float]:
    """(CPU ms, wall ms) per request over ``count`` requests, after a warm-up."""
    base = scenario.limit_path if limit else scenario.path

    def one(i: int) -> None:
        path = f"{base}{1 + (i * 7919) % ids}" if scenario.random_id else base
        response = client.open(path, method=scenario.method, json=scenario.body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"{scenario.method} {path}: {response.status_code}")

    for i in range(20):
        one(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(count):
        one(i)
    return (
        1000 * (time.process_time() - cpu) / count,
        1000 * (time.perf_counter() - wall) / count,
    )


def _login(client: Any) -> dict[str, str]:
    login = client.post(
        "/api/v1/auth/login", json={"username": datagen.USER, "password": datagen.PASSWORD}
    )
    return {"Authorization": f"Bearer {login.get_json()['access_token']}"}


def costs(
    db_name: str,
    size: str,
    count: int,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    api_env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """CPU and wall ms per request of each scenario and its limit."""
    os.environ["DATABASE_URL"] = app_env(db_name)["DATABASE_URL"]  # read by the bare app
    from .bare_app import app as bare
    from .bare_app import close_connection

    rows: list[dict[str, Any]] = []
    settings = {
        "TASKTRACKER_RATELIMIT_DEFAULT": "1000000/minute",
        "TASKTRACKER_LOG_LEVEL": "INFO",
        **(api_env or {}),
    }
    try:
        with product_app(db_name, **settings) as api:
            client = api.test_client()
            headers = _login(client)
            bare_client = bare.test_client()
            for scenario in scenarios:
                api_cpu, api_wall = _measure(
                    client, scenario, limit=False, headers=headers, count=count, ids=SIZES[size]
                )
                bare_cpu, bare_wall = _measure(
                    bare_client, scenario, limit=True, headers=headers, count=count, ids=SIZES[size]
                )
                rows.append(
                    {
                        "name": scenario.name,
                        "label": scenario.label,
                        "limit_label": scenario.limit_label,
                        "api_cpu_ms": round(api_cpu, 2),
                        "limit_cpu_ms": round(bare_cpu, 2),
                        "api_wall_ms": round(api_wall, 2),
                        "limit_wall_ms": round(bare_wall, 2),
                    }
                )
                print(
                    f"{scenario.name:12} API {api_cpu:6.2f} ms CPU ({api_wall:6.2f} wall)   "
                    f"limit {bare_cpu:6.2f} ms CPU ({bare_wall:6.2f} wall)   "
                    f"CPU ratio {api_cpu / bare_cpu:5.1f}x"
                )
    finally:
        close_connection()
        clear_redis()
    return rows


def profile(db_name: str, size: str, name: str, count: int) -> None:
    """Re-run this script's measurement of one scenario under py-spy, then summarize."""
    from .profile_http import summarize

    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    out = results_dir() / "profiles" / f"{name}-cpu.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(py_spy),
            "record",
            "--gil",
            "--rate",
            "1000",
            "--format",
            "raw",
            "--output",
            str(out),
            "--",
            sys.executable,
            "-m",
            "bench.request_cost",
            "--db",
            db_name,
            "--size",
            size,
            "--only",
            name,
            "--count",
            str(count),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(summarize(out, top=45, root="Flask.wsgi_app"))


def cprofile(db_name: str, size: str, name: str, count: int, top: int = 80) -> None:
    """This scenario's API requests under cProfile on the CPU clock, written and printed.

    The in-process alternative to ``--profile`` (py-spy, which on some VMs stalls the process it
    samples): deterministic, so it inflates pure-Python code against C, but it needs nothing
    installed and its shares are stable from run to run.
    """
    import cProfile
    import io
    import pstats

    scenario = next(s for s in SCENARIOS if s.name == name)
    settings = {
        "TASKTRACKER_RATELIMIT_DEFAULT": "1000000/minute",
        "TASKTRACKER_LOG_LEVEL": "WARNING",
    }
    profiler = cProfile.Profile(time.process_time)
    try:
        with product_app(db_name, **settings) as api:
            client = api.test_client()
            headers = _login(client)
            _measure(client, scenario, limit=False, headers=headers, count=20, ids=SIZES[size])
            profiler.enable()
            _measure(client, scenario, limit=False, headers=headers, count=count, ids=SIZES[size])
            profiler.disable()
    finally:
        clear_redis()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    out = results_dir() / "profiles" / f"{name}-cprofile.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.getvalue())
    print(text.getvalue())
    print(f"[request_cost] wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a filled bench database")
    parser.add_argument("--size", default="10k", choices=SIZES)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--only", help="one scenario (used by --profile)")
    parser.add_argument("--profile", help="profile this scenario's API requests with py-spy")
    parser.add_argument(
        "--cprofile", help="profile this scenario's API requests with cProfile (CPU clock)"
    )
    parser.add_argument(
        "--api-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a product setting for this measurement, e.g. TASKTRACKER_RATELIMIT_ENABLED=false",
    )
    args = parser.parse_args()
    if args.profile:
        profile(args.db, args.size, args.profile, args.count)
        return
    if args.cprofile:
        cprofile(args.db, args.size, args.cprofile, args.count)
        return
    chosen = tuple(s for s in SCENARIOS if args.only in (None, s.name))
    costs(args.db, args.size, args.count, chosen, dict(x.split("=", 1) for x in args.api_env))


if __name__ == "__main__":
    main()
