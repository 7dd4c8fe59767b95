"""A headless Chromium driven over the DevTools protocol through a pipe (no websocket, no
driver, no browser download: Debian's ``chromium`` package).

``--remote-debugging-pipe`` makes Chromium read protocol messages from fd 3 and write them to
fd 4, each JSON object ended by a NUL byte. Every wait has a deadline, and the browser (its
whole process group) is always killed on exit.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """One page of a headless Chromium; ``events`` collects every protocol event received."""

    def __init__(
        self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int, log_path: Path
    ):
        self.process = process
        self.log_path = log_path
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self.session_id: str | None = None
        self.events: list[dict[str, Any]] = []

    # -- protocol ------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._in], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise BrowserError(
                    f"Chromium closed the pipe (exit code {self.process.poll()}); "
                    f"its output is in {self.log_path}"
                )
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(raw))

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20) -> Any:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session_id and not method.startswith("Target."):
            message["sessionId"] = self.session_id
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for_event(self, method: str, timeout: float = 20) -> dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                message = self._read_message(deadline)
                if "method" in message:
                    self.events.append(message)
        except BrowserError as exc:
            if "timed out" not in str(exc):
                raise

    # -- page helpers --------------------------------------------------------------------------
    def open_page(self, width: int = 1280, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session_id = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def navigate(self, url: str, timeout: float = 30) -> None:
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_for_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.drain(0.2)
        raise BrowserError(f"timed out waiting for: {expression}")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page."""
        import base64

        metrics = self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            timeout=60,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@contextmanager
def chromium(
    executable: str, profile_dir: Path, allowed_host: str, log_path: Path
) -> Iterator[Browser]:
    """A headless Chromium that can resolve no host but ``allowed_host`` (so any attempt to
    reach another host fails, and shows up in the network events)."""
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    args = [
        executable,
        "--headless",
        "--no-sandbox",  # root in CI; the page is our own
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile_dir}",
        f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {allowed_host}",
        "--remote-debugging-pipe",
        "about:blank",
    ]
    # The protocol pipe must be fds 3 and 4 in the browser: a shell puts it there, then execs.
    # Above 9 first, so that neither end already is fd 3 or 4 when the shell redirects.
    browser_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
    browser_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
    for fd in (to_browser_r, from_browser_w):
        os.close(fd)
    command = f'exec "$0" "$@" 3<&{browser_in} 4>&{browser_out} {browser_in}<&- {browser_out}>&-'
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["/bin/bash", "-c", command, *args],
            pass_fds=(browser_in, browser_out),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    os.close(browser_in)
    os.close(browser_out)
    browser = Browser(process, to_browser_w, from_browser_r, log_path)
    try:
        yield browser
    finally:
        os.close(to_browser_w)
        os.close(from_browser_r)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
