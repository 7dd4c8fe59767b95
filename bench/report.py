"""Write the figures in var/bench/*.json into docs/benchmarks.md and docs/benchmarks/*.png.

Only the generated parts of docs/benchmarks.md change: each lies between
``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->``. Text outside the markers (the
analysis of each figure, other benchmarks' sections) is left as it is; a section whose
markers are missing is added before the CSV import section, or at the end.

    python -m bench.report
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from .common import REPO_ROOT, SIZES, load_result

DOC = REPO_ROOT / "docs" / "benchmarks.md"
CHART_DIR = REPO_ROOT / "docs" / "benchmarks"
CHART = "growth.png"
HEADER = "# Benchmarks\n"
ABOUT = """## How these figures are taken

SPEC section 10 states each performance target as a ratio to a physical limit measured on
the same machine in the same run; this page holds the figures of one full run of
`make bench` (it installs wrk and the `bench` extra, then runs `python -m bench.run` and
`python -m bench.import_bench`). Every script also runs on its own: `python -m bench.<name>
--help`. Nothing leaves the loopback interface; every server is killed and every bench
database dropped when its script ends.

- **Data** (`bench/datagen.py`): users, tasks and task logs at 10k / 100k / 1M rows made by
  PostgreSQL (`generate_series`) in the schema of the product's own migrations (secondary
  indexes rebuilt after the load, then `VACUUM ANALYZE`); every task active; CSV files in the
  seed's format at the same sizes.
- **Limits** (`bench/bare_app.py`): bare Flask endpoints under the same `gunicorn.conf.py`
  (same workers, threads, keep-alive): a small JSON dict (the framework's limit), and the
  statements the API sends, through psycopg, rows to JSON by hand (the data limit).
- **Load** (`bench/http_bench.py`): wrk in its own process, fixed connections, a warm-up, then
  the API and its limit in turns (three short runs each, back to back), the API called with a
  real access token (role `user`), its rate limit raised; the ratio is the median of the
  pairs' ratios, which a change in the machine's speed during the run moves far less than it
  moves either side.
- **Where the time goes** (`bench/request_cost.py`, `bench/profile_http.py`): CPU per request
  of each route beside its limit in one process (robust to the machine's load), and py-spy
  profiles of the API's requests (`pip install py-spy`; not a project dependency), or
  cProfile ones on the CPU clock (`bench.request_cost --cprofile <route>`).

On the 2-core machine, wrk, both gunicorn servers, PostgreSQL and Redis share the same two
cores: a limit's figure is what this machine can do, not what the API alone could. The
load average (1 min) is recorded before and after each figure. It counts the bench's own
processes too (wrk, gunicorn and PostgreSQL push it to 5-10 during an HTTP run), so only the
value at a figure's start shows whether other work was running (above 1.5: noisy).
"""


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _verdict(passed: bool | None) -> str:
    return {True: "**PASS**", False: "**FAIL**", None: "(no target)"}[passed]


# SPEC section 10 sets the snapshot and deep-page targets at 1,000,000 rows; smaller sizes
# show how the cost grows.
TARGET_SIZE = "1m"


def _at_target(size: str, passed: bool | None) -> str:
    return _verdict(passed) if size == TARGET_SIZE else "(target is at 1m)"


def _sizes(result: dict[str, Any]) -> list[str]:
    return [s for s in SIZES if s in result.get("sizes", {})]


def _loads(result: dict[str, Any]) -> str:
    pairs = [
        f"{size}: {r.get('load_before')} -> {r.get('load_after')}"
        for size, r in result["sizes"].items()
        if isinstance(r, dict)
    ]
    return "; ".join(pairs) or "not recorded"


# -- sections ----------------------------------------------------------------------------------
def summary_section(results: dict[str, dict[str, Any] | None]) -> str:
    present = [r for r in results.values() if r]
    if not present:
        return "## Summary\n\nNo results yet: run `make bench`.\n"
    m = present[0]["machine"]
    lines = [
        "## Summary",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}, PostgreSQL {m['postgresql']}; commit "
        f"`{m['commit']}`.",
        "",
        "| figure | size | measured | limit | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    imported = results.get("import")
    if imported:
        for size in _sizes(imported):
            r = imported["sizes"][size]
            lines.append(
                f"| CSV import over HTTP vs COPY (see CSV import) | {size} | "
                f"{_fmt(r['import_seconds'], 1)} s | {_fmt(r['copy_s'], 2)} s | "
                f"{_fmt(r['ratio'])}x | <= {r['target']}x | {_verdict(r['pass'])} |"
            )
    snap = results.get("snapshot")
    if snap:
        for size in _sizes(snap):
            r = snap["sizes"][size]
            lines.append(
                f"| daily snapshot | {size} | {_fmt(r['product_s'], 3)} s | "
                f"{_fmt(r['bare_s'], 3)} s | {_fmt(r['ratio'])}x | <= {r['target']}x | "
                f"{_at_target(size, r['pass'])} |"
            )
    http = results.get("http")
    if http:
        for size in _sizes(http):
            for s in http["sizes"][size]["scenarios"]:
                if s["target"] is None:
                    continue
                lines.append(
                    f"| {s['label']} | {size} | {_fmt(s['api']['rps'], 0)} req/s | "
                    f"{_fmt(s['limit']['rps'], 0)} req/s ({s['limit_label']}) | "
                    f"{_fmt(100 * s['ratio'], 0)}% | >= {100 * s['target']:.0f}% | "
                    f"{_verdict(s['pass'])} |"
                )
    pages = results.get("pages")
    if pages:
        for size in _sizes(pages):
            r = pages["sizes"][size]
            lines.append(
                f"| deep page by cursor vs first page | {size} | "
                f"{_fmt(r['http']['cursor_deep_ms'])} ms | {_fmt(r['http']['first_ms'])} ms | "
                f"{_fmt(r['ratio'])}x | <= {r['target']}x | {_at_target(size, r['pass'])} |"
            )
    lines += ["", f"![How each cost grows with the data](benchmarks/{CHART})", ""]
    return "\n".join(lines)


def _provenance(result: dict[str, Any]) -> list[str]:
    return [
        f"Run {result['finished_at']} with `{result['command']}` "
        f"({result['seconds']} s). Load average (1 min) before -> after each size: "
        f"{_loads(result)}.",
        "",
    ]


def _opening(title: str, result: dict[str, Any] | None, script: str) -> list[str]:
    """A section's heading, then where its figures come from (or that there are none yet)."""
    if not result:
        return [f"## {title}", "", f"Not measured yet: `python -m bench.{script}`.", ""]
    return [f"## {title}", "", *_provenance(result)]


def snapshot_section(result: dict[str, Any] | None) -> str:
    lines = _opening("Daily snapshot vs a bare INSERT ... SELECT", result, "snapshot_bench")
    if not result:
        return "\n".join(lines)
    lines += [
        "The product's snapshot service (run bookkeeping, the per-date lock, the set-based "
        "insert, the count, the cache bump) for a date with no logs, beside one bare "
        "`INSERT ... SELECT ... ON CONFLICT DO NOTHING` into a copy of `task_logs` (same "
        "columns, indexes, unique key, foreign keys and rows). Each after a `CHECKPOINT`, in "
        "alternating order; median of the repetitions.",
        "",
        "| active tasks | product (s) | bare INSERT ... SELECT (s) | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for size in _sizes(result):
        r = result["sizes"][size]
        lines.append(
            f"| {r['active_tasks']:,} | {_fmt(r['product_s'], 3)} | {_fmt(r['bare_s'], 3)} | "
            f"{_fmt(r['ratio'])}x | <= {r['target']}x | {_at_target(size, r['pass'])} |"
        )
    return "\n".join([*lines, ""])


def http_section(result: dict[str, Any] | None) -> str:
    lines = _opening("HTTP routes vs bare Flask endpoints", result, "http_bench")
    if not result:
        return "\n".join(lines)
    st = result["settings"]
    lines += [
        f"gunicorn.conf.py for both servers: {st['workers']} workers x {st['threads']} threads "
        f"(gthread), keep-alive {st['keepalive']} s. wrk: {st['wrk_threads']} thread, "
        f"{st['connections']} connections, {st['warmup_s']} s warm-up, then {st['rounds']} "
        f"turns of {st['duration_s']} s per side, API and limit alternating; req/s and latencies "
        "are each side's median turn, the ratio the median of the back-to-back pairs' ratios "
        "(this shared VM's throughput moves by 2-4x within a minute). The API is called with a "
        "real access token (role `user`), rate limit raised to 1,000,000/minute; limits are bare "
        "Flask endpoints in `bench/bare_app.py`. Latencies are wrk's (ms).",
        "",
    ]
    for size in _sizes(result):
        lines += [
            f"### {size} tasks",
            "",
            "| route | req/s | p50 | p99 | limit | limit req/s | p50 | p99 | ratio (each turn) "
            "| target | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in result["sizes"][size]["scenarios"]:
            a, b = s["api"], s["limit"]
            target = "-" if s["target"] is None else f">= {100 * s['target']:.0f}%"
            flag = "" if s["valid"] else " (errors!)"
            lines.append(
                f"| `{s['label']}` | {_fmt(a['rps'], 0)} | {_fmt(a['p50_ms'])} | "
                f"{_fmt(a['p99_ms'])} | {s['limit_label']} | {_fmt(b['rps'], 0)} | "
                f"{_fmt(b['p50_ms'])} | {_fmt(b['p99_ms'])} | {_fmt(100 * s['ratio'], 0)}%"
                f"{_turns(s.get('pair_ratios'))} | {target} | {_verdict(s['pass'])}{flag} |"
            )
        lines.append("")
    return "\n".join(lines)


def _turns(pairs: list[float | None] | None) -> str:
    if not pairs or len(pairs) < 2:
        return ""
    return " (" + " / ".join("-" if p is None else f"{100 * p:.0f}" for p in pairs) + ")"


def cpu_section(result: dict[str, Any] | None) -> str:
    lines = _opening("CPU per request: where the HTTP ratios come from", result, "request_cost")
    if not result:
        return "\n".join(lines)
    lines += [
        "Each route and its limit driven in one process by Flask's test client, one request at "
        "a time; CPU is this process's own (`time.process_time`), so it barely depends on the "
        "machine's load. On 2 cores the API process's CPU per request bounds its requests/s.",
        "",
    ]
    for size in _sizes(result):
        lines += [
            f"| route ({size}) | API CPU ms | limit | limit CPU ms | API / limit |",
            "|---|---|---|---|---|",
        ]
        for r in result["sizes"][size]:
            lines.append(
                f"| `{r['label']}` | {_fmt(r['api_cpu_ms'])} | {r['limit_label']} | "
                f"{_fmt(r['limit_cpu_ms'])} | {_fmt(r['api_cpu_ms'] / r['limit_cpu_ms'], 1)}x |"
            )
        lines.append("")
    return "\n".join(lines)


def pages_section(result: dict[str, Any] | None) -> str:
    lines = _opening("First page vs a deep page (offset and cursor)", result, "pages_bench")
    if not result:
        return "\n".join(lines)
    lines += [
        "`GET /api/v1/tasks` (20 rows, default sort) from one client on one keep-alive "
        "connection: the first page, the page 90% into the table by `page=`, and the same page "
        "by `cursor=` (the server's `next_cursor` of the page before); median latency in ms. "
        '"query" is the product\'s page query alone (its repository, no count, no HTTP).',
        "",
        "| tasks | first | offset deep | cursor deep | query: first | query: offset deep "
        "| query: cursor deep | cursor deep / first | target | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in _sizes(result):
        r = result["sizes"][size]
        h, q = r["http"], r["query"]
        lines.append(
            f"| {r['rows']:,} | {_fmt(h['first_ms'])} | {_fmt(h['offset_deep_ms'])} | "
            f"{_fmt(h['cursor_deep_ms'])} | {_fmt(q['first_ms'], 3)} | "
            f"{_fmt(q['offset_deep_ms'], 3)} | {_fmt(q['cursor_deep_ms'], 3)} | "
            f"{_fmt(r['ratio'])}x (query {_fmt(r['query_ratio'])}x) | <= {r['target']}x | "
            f"{_at_target(size, r['pass'])} |"
        )
    return "\n".join([*lines, ""])


# -- the chart ----------------------------------------------------------------------------------
def chart(results: dict[str, dict[str, Any] | None], path: Path) -> Path | None:
    """One PNG, a panel per figure: each cost against the number of rows (log-log)."""
    try:
        import matplotlib
    except ImportError:  # the "bench" extra is not installed: tables only
        print("[report] matplotlib is missing (pip install -e '.[bench]'): no chart")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [name for name in ("snapshot", "http", "pages") if results.get(name)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        result = results[name]
        assert result is not None
        sizes = _sizes(result)
        xs = [SIZES[s] for s in sizes]
        if name == "snapshot":
            ax.plot(xs, [result["sizes"][s]["product_s"] for s in sizes], "o-", label="product")
            ax.plot(
                xs,
                [result["sizes"][s]["bare_s"] for s in sizes],
                "s--",
                label="bare INSERT ... SELECT",
            )
            ax.set_title("Daily snapshot")
            ax.set_ylabel("seconds")
        elif name == "http":
            for scenario in result["sizes"][sizes[0]]["scenarios"]:
                ms = []
                limit_ms = []
                for s in sizes:
                    row = next(
                        x for x in result["sizes"][s]["scenarios"] if x["name"] == scenario["name"]
                    )
                    ms.append(row["api"]["p50_ms"])
                    limit_ms.append(row["limit"]["p50_ms"])
                line = ax.plot(xs, ms, "o-", label=scenario["name"])[0]
                ax.plot(xs, limit_ms, "x:", color=line.get_color())
            ax.set_title("HTTP p50 latency (solid: API, dotted: its limit)")
            ax.set_ylabel("ms")
        else:
            for key, label in (
                ("first", "first page"),
                ("offset_deep", "deep, offset"),
                ("cursor_deep", "deep, cursor"),
            ):
                ax.plot(
                    xs,
                    [result["sizes"][s]["http"][f"{key}_ms"] for s in sizes],
                    "o-",
                    label=f"HTTP {label}",
                )
            for key, label in (
                ("first", "first page"),
                ("offset_deep", "deep, offset"),
                ("cursor_deep", "deep, cursor"),
            ):
                ax.plot(
                    xs,
                    [result["sizes"][s]["query"][f"{key}_ms"] for s in sizes],
                    "x:",
                    label=f"query {label}",
                )
            ax.set_title("GET /api/v1/tasks: first vs deep page")
            ax.set_ylabel("ms (median)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows (tasks)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the document -------------------------------------------------------------------------------
def replace_section(text: str, name: str, body: str) -> str:
    """Put ``body`` between the markers of section ``name`` (adding them if missing)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    csv = re.search(r"^## CSV import", text, re.MULTILINE)
    if csv:
        return text[: csv.start()] + block + "\n\n" + text[csv.start() :]
    return text.rstrip() + "\n\n" + block + "\n"


def write(doc: Path = DOC, chart_dir: Path = CHART_DIR) -> None:
    names = ("snapshot", "http", "cpu", "pages", "import")
    results = {name: load_result(name) for name in names}
    text = doc.read_text() if doc.exists() else HEADER
    for name, body in (
        ("about", ABOUT),
        ("summary", summary_section(results)),
        ("snapshot", snapshot_section(results["snapshot"])),
        ("http", http_section(results["http"])),
        ("cpu", cpu_section(results["cpu"])),
        ("pages", pages_section(results["pages"])),
    ):
        text = replace_section(text, name, body)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    written = chart(results, chart_dir / CHART)
    print(f"[report] wrote {doc}" + (f" and {written}" if written else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--chart-dir", type=Path, default=CHART_DIR)
    args = parser.parse_args()
    write(args.doc, args.chart_dir)


if __name__ == "__main__":
    main()
