"""All of this harness's figures in one run (what ``make bench`` calls), then the report.

Each size's database is made once and shared by the figures that need it, in an order where
none disturbs the next: pages (reads), snapshot (adds logs for dates nobody reads), HTTP
(its POSTs add tasks). Every database is dropped at the end, whatever happened.

    python -m bench.run                      # 10k, 100k, 1m; HTTP at 10k and 1m
    python -m bench.run --smoke              # seconds: the harness works (CI)
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

from . import datagen, http_bench, pages_bench, report, request_cost, snapshot_bench
from .common import load_average, log_dir, parse_sizes, save_result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--http-sizes", default="10k,1m")
    parser.add_argument("--http-duration", type=int, default=http_bench.DURATION_SECONDS)
    parser.add_argument("--http-rounds", type=int, default=http_bench.ROUNDS)
    parser.add_argument("--snapshot-reps", type=int, default=3)
    parser.add_argument("--page-requests", type=int, default=15)
    parser.add_argument("--cpu-requests", type=int, default=100)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="smallest size, one short run of everything (checks the harness)",
    )
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--db-suffix", default="", help="appended to the bench database names")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes = args.http_sizes = "10k"
        args.http_duration, args.http_rounds = 1, 1
        args.snapshot_reps, args.page_requests = 1, 2
        args.cpu_requests = 5
    warmup = 0 if args.smoke else http_bench.WARMUP_SECONDS
    sizes = parse_sizes(args.sizes)
    http_sizes = set(parse_sizes(args.http_sizes)) & set(sizes)
    if http_sizes and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does)")
    print(f"[bench] load average at start: {load_average()}")

    results: dict[str, dict[str, Any]] = {"pages": {}, "snapshot": {}, "http": {}, "cpu": {}}
    timings: dict[str, float] = {}
    started = time.monotonic()
    for size in sizes:
        t0 = time.monotonic()
        with datagen.bench_database(size, args.db_suffix) as db_name:
            timings[f"datagen {size}"] = round(time.monotonic() - t0, 1)
            t0 = time.monotonic()
            results["pages"][size] = pages_bench.bench_size(
                size, db_name, requests=args.page_requests, logs=log_dir()
            )
            timings[f"pages {size}"] = round(time.monotonic() - t0, 1)
            t0 = time.monotonic()
            # At 1m one insert of a million logs takes most of a minute on 2 cores (half of it
            # the foreign-key checks): one repetition there keeps the run near ten minutes.
            reps = 1 if size == "1m" else args.snapshot_reps
            results["snapshot"][size] = snapshot_bench.bench_size(size, db_name, reps=reps)
            timings[f"snapshot {size}"] = round(time.monotonic() - t0, 1)
            if size in http_sizes:
                t0 = time.monotonic()
                results["http"][size] = http_bench.bench_size(
                    size,
                    db_name,
                    seconds=args.http_duration,
                    rounds=args.http_rounds,
                    only=None,
                    logs=log_dir(),
                    warmup=warmup,
                )
                timings[f"http {size}"] = round(time.monotonic() - t0, 1)
            if size == sizes[0]:
                # Where the HTTP ratios come from: CPU per request, robust to the load.
                t0 = time.monotonic()
                results["cpu"][size] = request_cost.costs(db_name, size, args.cpu_requests)
                timings[f"cpu {size}"] = round(time.monotonic() - t0, 1)
    total = round(time.monotonic() - started, 1)
    save_result("pages", {"sizes": results["pages"], "seconds": total, "timings": timings})
    save_result("snapshot", {"sizes": results["snapshot"], "seconds": total, "timings": timings})
    if results["http"]:
        save_result(
            "http",
            {
                "sizes": results["http"],
                "settings": http_bench.settings(args.http_duration, args.http_rounds, warmup),
                "seconds": total,
                "timings": timings,
            },
        )
    save_result("cpu", {"sizes": results["cpu"], "seconds": total, "timings": timings})
    print(f"[bench] done in {total} s: {timings}")
    if not args.no_report:
        report.write()


if __name__ == "__main__":
    main()
