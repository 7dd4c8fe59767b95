"""The benchmark harness works: every figure once on the smallest size, and the report.

Not a benchmark (no figure is checked against a target): it proves ``make bench`` can run,
i.e. the bench data loads into the real schema, every route and its limit answer 2xx under
gunicorn, the snapshot and page scripts run against the product, and the report renders.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres_only, pytest.mark.timeout(600)]


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bench"
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(directory))
    # One worker per server: the smoke checks that everything answers, not how fast.
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    return directory


def test_harness_runs_every_figure_on_the_smallest_size(results: Path, tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is missing: apt-get install -y wrk (make bench installs it)")
    from bench import report, run

    run.main(["--smoke", "--no-report", "--db-suffix", f"_smoke_{os.getpid()}"])

    snapshot = json.loads((results / "snapshot.json").read_text())["sizes"]["10k"]
    assert snapshot["active_tasks"] == 10_000
    assert snapshot["product_s"] > 0
    assert snapshot["bare_s"] > 0
    pages = json.loads((results / "pages.json").read_text())["sizes"]["10k"]
    assert pages["http"]["cursor_deep_ms"] > 0
    assert pages["query"]["offset_deep_ms"] > 0
    http = json.loads((results / "http.json").read_text())["sizes"]["10k"]
    names = {s["name"] for s in http["scenarios"]}
    assert names == {"list", "list_filter", "list_search", "task", "date_cached", "create"}
    for scenario in http["scenarios"]:
        assert scenario["valid"], scenario  # no non-2xx answer, no socket error
        assert scenario["api"]["rps"] > 0
        assert scenario["limit"]["rps"] > 0

    cpu = json.loads((results / "cpu.json").read_text())["sizes"]["10k"]
    assert {r["name"] for r in cpu} == names
    assert all(r["api_cpu_ms"] > 0 for r in cpu)

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## CSV import\n\nkept as it is\n")
    report.write(doc, tmp_path / "charts")
    text = doc.read_text()
    for section in ("about", "summary", "snapshot", "http", "cpu", "pages"):
        assert f"<!-- bench:{section}:start -->" in text
    assert "| GET /api/v1/tasks (20 rows, default sort) | 10k |" in text
    # Generated sections go before the import section, which is left alone.
    assert text.index("bench:pages:end") < text.index("## CSV import")
    assert text.endswith("## CSV import\n\nkept as it is\n")
