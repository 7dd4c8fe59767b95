"""Every error becomes the SPEC envelope: {"error": {code, message, details}, "request_id"}.

Domain errors, webargs/marshmallow validation errors, HTTP errors from Werkzeug or
flask-smorest's ``abort``, database integrity errors and anything unexpected all end here.
No stack trace or HTML page ever reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError

from ..errors import DomainError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def error_response(
    status: int,
    message: str,
    details: Any = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the JSON error envelope (used by every handler and by auth callbacks)."""
    body = {
        "error": {
            "code": code or HTTP_CODES.get(status, "error"),
            "message": message,
            "details": details,
        },
        "request_id": g.get("request_id"),
    }
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_locations(messages: Any) -> Any:
    """webargs nests errors by location ({"json": {...}}); callers want field names on top."""
    if not isinstance(messages, dict):
        return messages
    locations = {"json", "query", "querystring", "form", "files", "headers", "view_args", "path"}
    if not messages or not set(messages) <= locations:
        return messages
    flat: dict[str, Any] = {}
    for value in messages.values():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat.setdefault("_schema", value)
    return flat


def render_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    for name, value in error.get_headers():
        if name.lower() in {"allow", "retry-after", "www-authenticate"}:
            headers[name] = value
    details = data.get("errors") or data.get("messages")
    details = _flatten_locations(details)
    message = data.get("message")
    if status == 422 and not message:
        message = "The request is not valid: see details for each field."
    elif status == 400 and details and not message:
        message = "The request body is not valid JSON."
    if not message:
        message = error.description or error.name
    if isinstance(error, RateLimitExceeded):
        # Retry-After and X-RateLimit-* are added by the limiter's after_request hook.
        message = f"Too many requests: the limit is {error.description}; see Retry-After."
        details = {"limit": error.description}
    if status >= 500:
        message = "An unexpected error occurred."
        details = None
    return error_response(status, message, details, headers=headers)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers; called by create_app after the Api is initialised."""

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        return error_response(error.status, error.message, error.details, code=error.code)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        if isinstance(error, InternalServerError) and error.original_exception is not None:
            log.error("unhandled error", exc_info=error.original_exception)
        return render_http_exception(error)

    @app.errorhandler(StaleDataError)
    def _stale(error: StaleDataError) -> Response:
        # Two writers raced past the version check; the loser changes nothing.
        return error_response(409, "The record was changed concurrently; read it again and retry.")

    @app.errorhandler(IntegrityError)
    def _integrity(error: IntegrityError) -> Response:
        log.warning("integrity error: %s", error.orig)
        return error_response(409, "The change conflicts with existing data.")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.error("unhandled error", exc_info=error)
        return error_response(500, "An unexpected error occurred.")
