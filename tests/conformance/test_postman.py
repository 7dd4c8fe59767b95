"""Stage 2: the Postman collection in docs/postman, run by newman against the live server.

The collection covers every operation of /openapi.json (checked here, so a new route without a
request fails), and its requests test status and shape and walk the flow login -> create ->
update -> snapshot -> logs -> delete. newman is pinned in package.json (``npm ci``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO_ROOT, Stack, tool_missing

POSTMAN_DIR = REPO_ROOT / "docs" / "postman"
COLLECTION = POSTMAN_DIR / "TaskTrackerPro.postman_collection.json"
ENVIRONMENT = POSTMAN_DIR / "local.postman_environment.json"
NEWMAN = REPO_ROOT / "node_modules" / ".bin" / "newman"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


def _requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in items:
        if "item" in item:
            found.extend(_requests(item["item"]))
        else:
            found.append(item["request"])
    return found


def _operations_of(request: dict[str, Any], paths: dict[str, Any]) -> set[tuple[str, str]]:
    """The OpenAPI operations a request's method and URL fall under (a literal path wins)."""
    method = request["method"].lower()
    path = "/" + "/".join(request["url"].get("path", []))
    if method in paths.get(path, {}):
        return {(method.upper(), path)}
    found = set()
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"
        if method in item and re.match(pattern, path):
            found.add((method.upper(), template))
    return found


def test_collection_covers_every_operation(stack: Stack) -> None:
    document = stack.server.get("/openapi.json").json()
    paths = document["paths"]
    operations = {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in METHODS
    }
    covered: set[tuple[str, str]] = set()
    for request in _requests(json.loads(COLLECTION.read_text())["item"]):
        covered |= _operations_of(request, paths)
    missing = sorted(operations - covered)
    assert not missing, f"operations without a request in {COLLECTION.name}: {missing}"


@pytest.mark.timeout(300)
def test_newman(stack: Stack) -> None:
    if shutil.which("node") is None:
        tool_missing("Postman stage (newman)", "node", "apt-get install -y nodejs npm")
    if not NEWMAN.exists():
        tool_missing("Postman stage (newman)", "node_modules/.bin/newman", "npm ci")
    report: Path = stack.artifacts / "newman.xml"
    admin = stack.admin
    result = subprocess.run(
        [
            str(NEWMAN),
            "run",
            str(COLLECTION),
            "--environment",
            str(ENVIRONMENT),
            "--env-var",
            f"baseUrl={stack.url}",
            "--env-var",
            f"adminUsername={admin.username}",
            "--env-var",
            f"adminPassword={admin.password}",
            # The multipart requests name their CSV files relative to docs/postman.
            "--working-dir",
            str(POSTMAN_DIR),
            "--reporters",
            "cli,junit",
            "--reporter-junit-export",
            str(report),
            "--timeout-request",
            "30000",
            "--color",
            "off",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = result.stdout + result.stderr
    (stack.artifacts / "newman.txt").write_text(output)
    assert result.returncode == 0, f"newman failed on {stack.backend}:\n{output[-15000:]}"
