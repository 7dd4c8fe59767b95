"""Security headers on every response, the CORS allow-list, and production start-up checks."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request
from flask.helpers import get_debug_flag

from .config import ConfigError, Settings

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI runs an inline bootstrap script and its own assets, all from this origin.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"

# Response headers a browser client may read across origins (CORS hides all others).
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "ETag",
    "Location",
]
ALLOWED_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
]


def refuse_unsafe_production(app: Flask, settings: Settings) -> None:
    """Production does not start with a weak JWT secret or with debug mode on.

    Debug mode shows tracebacks and, under ``flask run``, an interactive debugger: remote code
    execution for anyone who reaches the port. A weak secret lets anyone mint tokens.
    ``Settings.from_env`` already checks the secret; settings built in code are checked here.
    """
    if not settings.is_production:
        return
    settings.with_secret()  # raises ConfigError for a missing, placeholder or short secret
    if get_debug_flag() or app.debug:
        raise ConfigError(
            "Debug mode is on (FLASK_DEBUG or DEBUG) with TASKTRACKER_ENV=production; "
            "unset FLASK_DEBUG: the debugger must never be reachable in production."
        )


def cors_options(settings: Settings) -> dict[str, Any]:
    """flask-cors options: only the allow-listed origins (TASKTRACKER_CORS_ORIGINS), no cookies.

    With no origins configured, no cross-origin browser call is allowed.
    """
    return {
        "resources": {r"/*": {"origins": list(settings.cors_origins)}},
        # Tokens travel in the Authorization header, never in cookies.
        "supports_credentials": False,
        "allow_headers": ALLOWED_REQUEST_HEADERS,
        "expose_headers": EXPOSED_HEADERS,
        "max_age": 600,
        # Only answer CORS requests (with an Origin): never list the allowed origins to others.
        "always_send": False,
    }


def init_security(app: Flask, settings: Settings) -> None:
    """Add the security headers to every response, errors included."""
    container = app.extensions["tasktracker"]

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        is_docs = request.path == "/docs" or request.path.startswith("/docs/")
        headers.setdefault("Content-Security-Policy", DOCS_CSP if is_docs else JSON_CSP)
        if not is_docs:
            # Answers carry per-user data: no shared or browser cache keeps them.
            headers.setdefault("Cache-Control", "no-store")
        if container.settings.hsts:
            # Only behind TLS (TASKTRACKER_HSTS): over plain HTTP it would lock browsers out.
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
