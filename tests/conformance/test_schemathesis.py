"""Stage 1: schemathesis fuzzes every operation of /openapi.json, once per role.

``--checks all`` with positive and negative data (``--mode all``) and the stateful phase, with
a bounded number of examples per operation. The admin run, which reaches every route's logic,
also runs the coverage phase (boundary values of every parameter); the user and viewer runs
skip it, because those values do not depend on the caller, and check what each role is
allowed and refused, with half the examples. Zero failures: a finding is fixed in the code or
the document, never silenced; the few settings in ``schemathesis.toml`` and
``schemathesis_hooks.py`` each say why. The reports (JUnit, and a cassette of every request
and response) are kept under ``build/conformance/<backend>/schemathesis-<role>/``.

``TASKTRACKER_CONFORMANCE_EXAMPLES`` (default 10) and ``TASKTRACKER_CONFORMANCE_SEED``
(default fixed, so that CI is reproducible) tune a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, CONFORMANCE_DIR, REPO_ROOT, Stack, tool_missing

MAX_EXAMPLES = int(os.environ.get("TASKTRACKER_CONFORMANCE_EXAMPLES", "10"))
# role -> (phases, examples per operation)
PLANS = {
    "admin": ("examples,coverage,fuzzing,stateful", MAX_EXAMPLES),
    "user": ("examples,fuzzing,stateful", max(1, MAX_EXAMPLES // 2)),
    "viewer": ("examples,fuzzing,stateful", max(1, MAX_EXAMPLES // 2)),
}
SEED = os.environ.get("TASKTRACKER_CONFORMANCE_SEED", "20240611")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", list(PLANS))
def test_schemathesis(stack: Stack, role: str) -> None:
    if not SCHEMATHESIS.exists():
        tool_missing("schemathesis stage", str(SCHEMATHESIS), "make install")
    account = stack.accounts[role]
    phases, examples = PLANS[role]
    report_dir = stack.artifacts / f"schemathesis-{role}"
    protected = [str(a.id) for a in stack.accounts.values()]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(CONFORMANCE_DIR / "schemathesis_hooks.py"),
        "TT_CONF_URL": stack.url,
        "TT_CONF_USERNAME": account.username,
        "TT_CONF_PASSWORD": account.password,
        "TT_CONF_PROTECTED_IDS": ",".join(protected),
        "TT_CONF_DECOY_ID": str(stack.decoy.id),
        # Hypothesis's own cache goes with the other build artifacts, not into the work tree.
        "HYPOTHESIS_STORAGE_DIRECTORY": str(ARTIFACTS / ".hypothesis"),
    }
    command = [
        str(SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(CONFORMANCE_DIR / "schemathesis.toml"),
        "run",
        f"{stack.url}/openapi.json",
        "--checks",
        "all",
        "--mode",
        "all",
        "--phases",
        phases,
        "--max-examples",
        str(examples),
        # The API answers several requests at once (gunicorn threads): two operations at a
        # time keep it busy and halve the wall time.
        "--workers",
        "2",
        "--seed",
        SEED,
        "--report",
        "junit,vcr",
        "--report-dir",
        str(report_dir),
    ]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = result.stdout + result.stderr
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "output.txt").write_text(output)
    assert result.returncode == 0, (
        f"schemathesis found problems as {role} on {stack.backend} "
        f"(full output: {report_dir / 'output.txt'}):\n{output[-20000:]}"
    )
