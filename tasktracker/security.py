"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, Response, request

from .config import Settings

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI runs an inline bootstrap script and its own assets, all from this origin.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)


def init_security(app: Flask, settings: Settings) -> None:
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
            headers.setdefault("Cache-Control", "no-store")
        if settings.hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
