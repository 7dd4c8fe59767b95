"""Per-request (or per-job) context that crosses layers without Flask: the request id."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
