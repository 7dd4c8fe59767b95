"""Where an API request's time goes: py-spy samples the product's workers under wrk load.

    python -m bench.profile_http --scenario date_cached --db tasktracker_bench_10k

Needs py-spy (``pip install py-spy``; not a project dependency). Writes the collapsed stacks
to var/bench/profiles/<scenario>.txt and prints the functions with the largest share of the
samples, inclusive (the function and what it calls) and by the product's or library's module.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from . import datagen
from .common import app_env, clear_redis, gunicorn, login, request, results_dir
from .http_bench import SCENARIOS, wrk


def summarize(collapsed: Path, top: int = 30, root: str = "Flask.wsgi_app") -> str:
    """Each frame's share of the samples taken inside a request (stacks through ``root``):
    inclusive (the frame and what it calls, counted once per stack) and self (leaf)."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        cut = next((i for i, frame in enumerate(frames) if frame.startswith(root)), None)
        if cut is None:
            continue  # not request time: start-up, idle threads, the gunicorn loop
        count = int(count_text)
        total += count
        for frame in set(frames[cut:]):
            inclusive[frame] += count
        leaf[frames[-1]] += count
    lines = [f"samples inside {root}: {total}", "", "inclusive share (top frames):"]
    for frame, count in inclusive.most_common(top):
        lines.append(f"{100 * count / max(total, 1):5.1f}%  {frame}")
    lines += ["", "self share (leaf frames):"]
    for frame, count in leaf.most_common(15):
        lines.append(f"{100 * count / max(total, 1):5.1f}%  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, choices=[s.name for s in SCENARIOS])
    parser.add_argument("--db", required=True, help="a filled bench database")
    parser.add_argument("--size", default="10k", help="its size (for random ids)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", default="1", help="WEB_CONCURRENCY for the profiled run")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    out_dir = results_dir() / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    collapsed = out_dir / f"{scenario.name}.txt"
    env = app_env(
        args.db,
        TASKTRACKER_RATELIMIT_DEFAULT="1000000/minute",
        WEB_CONCURRENCY=args.workers,
    )
    from .common import SIZES

    with gunicorn("api-profiled", "tasktracker.wsgi:app", env, out_dir) as api:
        try:
            token = login(api.url, datagen.USER, datagen.PASSWORD)
            path = scenario.path + ("1" if scenario.random_id else "")
            request(
                api.url,
                scenario.method,
                path,
                body=scenario.body,
                headers={"Authorization": f"Bearer {token}"},
            )
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(api.process.pid),
                    "--subprocesses",
                    "--duration",
                    str(args.seconds),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--output",
                    str(collapsed),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            workdir = Path(tempfile.mkdtemp(prefix="wrk-", dir=out_dir))
            load = threading.Thread(
                target=wrk,
                args=(api.url, scenario),
                kwargs={
                    "limit": False,
                    "token": token,
                    "seconds": args.seconds,
                    "ids": SIZES[args.size],
                    "workdir": workdir,
                },
            )
            load.start()
            load.join(args.seconds + 60)
            spy.wait(args.seconds + 60)
        finally:
            clear_redis()
    report = summarize(collapsed)
    (out_dir / f"{scenario.name}-summary.txt").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
