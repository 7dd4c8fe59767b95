"""Stage 3: Swagger UI at /docs in a real (headless) Chromium.

It must render every operation of /openapi.json, log no console error or uncaught exception,
and fetch nothing from any host but the server itself (its assets are the app's own, and the
browser cannot resolve any other name). A screenshot is kept at build/swagger-ui.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .browser import chromium, find_chromium
from .conftest import REPO_ROOT, Stack, tool_missing

SCREENSHOT = REPO_ROOT / "build" / "swagger-ui.png"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
RENDERED_OPERATIONS = """
Array.from(document.querySelectorAll('.opblock')).map(block => [
  block.querySelector('.opblock-summary-method').textContent.trim().toUpperCase(),
  block.querySelector('.opblock-summary-path').getAttribute('data-path'),
])
"""


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event["method"] == "Runtime.consoleAPICalled" and params["type"] in {"error", "assert"}:
            args = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
            errors.append("console." + params["type"] + ": " + " ".join(args))
        elif event["method"] == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(
                "uncaught: " + str(details.get("exception", {}).get("description", details))
            )
        elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
    return errors


def _outside_requests(events: list[dict[str, Any]], origin: str) -> list[str]:
    urls = [
        event["params"]["request"]["url"]
        for event in events
        if event["method"] == "Network.requestWillBeSent"
    ]
    return [
        url
        for url in urls
        if not url.startswith(origin + "/") and not url.startswith(("data:", "blob:", "about:"))
    ]


@pytest.mark.timeout(180)
def test_swagger_ui(stack: Stack, tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        tool_missing(
            "Swagger UI stage (headless Chromium)", "chromium", "apt-get install -y chromium"
        )
        return
    document = stack.server.get("/openapi.json").json()
    expected = sorted(
        [method.upper(), path]
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    )
    log = stack.artifacts / "chromium.log"
    with chromium(executable, tmp_path / "profile", "127.0.0.1", log) as browser:
        browser.open_page()
        browser.navigate(f"{stack.url}/docs")
        browser.wait_until(
            f"document.querySelectorAll('.opblock').length >= {len(expected)}", timeout=60
        )
        title = browser.evaluate("document.querySelector('.info .title').textContent")
        rendered = sorted(browser.evaluate(RENDERED_OPERATIONS))
        browser.drain(1.0)  # messages logged just after the operations appear
        shot = stack.artifacts / "swagger-ui.png"
        browser.screenshot(shot)
        shutil.copy(shot, SCREENSHOT)
        events = browser.events

    assert document["info"]["title"] in title
    assert rendered == expected, "Swagger UI does not list exactly the document's operations"
    assert _console_errors(events) == []
    assert _outside_requests(events, stack.url) == []
