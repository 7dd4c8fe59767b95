"""Rate-limit keys and limits (SPEC section 8), for Flask-Limiter.

Key functions run in ``before_request``, before any view or ``auth_required``, so the default
key reads the caller from the Bearer token itself: Flask-JWT-Extended's signature, expiry,
issuer and audience check (no database, no Redis), remembered for the view's own check of
the same token. A token that does not verify counts against the client address instead; it
will be refused with 401 by the view anyway.
Revocation is not checked here: a revoked token still names its user, and counting its
requests against that user is exactly right.
"""

from __future__ import annotations

from typing import Any, cast

from flask import g, request
from flask_jwt_extended import decode_token
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from ..api.deps import container

# Operations endpoints are never throttled: load-balancer and orchestrator probes and the
# Prometheus scraper call them at a fixed rate from a few addresses (often the same address
# as many users behind the proxy). Throttling them would take a healthy instance out of
# rotation or drop metrics, exactly when traffic is high. They are cheap and hold no data.
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/ping", "/openapi.json"})
DOCS_PREFIX = "/docs"


def bearer_subject() -> str | None:
    """The ``sub`` of a valid Bearer token on this request, else None (cached per request)."""
    if "rate_limit_subject" in g:
        return cast(str | None, g.rate_limit_subject)
    subject = None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            subject = str(decode_token(token.strip())["sub"])[:64]
        except Exception:  # any bad token; a key function must never raise
            subject = None
    g.rate_limit_subject = subject
    return subject


def rate_limit_key() -> str:
    """Default and upload limits: per user when a valid token names one, else per client."""
    user_id = g.get("user_id")
    if user_id is not None:
        return f"user:{user_id}"
    subject = bearer_subject()
    if subject is not None:
        return f"user:{subject}"
    return f"ip:{get_remote_address()}"


def login_key() -> str:
    """Login attempts count per client address and username together."""
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except HTTPException:
        # E.g. a body over MAX_CONTENT_LENGTH: the view answers it (413). A key function must
        # never raise: Flask-Limiter would take it for a storage failure and fall back.
        body = None
    username = body.get("username") if isinstance(body, dict) else None
    name = username.lower()[:64] if isinstance(username, str) else ""
    return f"login:{get_remote_address()}:{name}"


def is_exempt_request() -> bool:
    """Requests no limit applies to: operations endpoints, API docs and CORS preflights.

    A preflight (OPTIONS) carries no credentials and is answered without running a view; a
    browser sends one before many calls, so counting them would spend a user's budget twice.
    """
    path = request.path
    return (
        request.method == "OPTIONS"
        or path in OPERATIONS_PATHS
        or path == DOCS_PREFIX
        or path.startswith(DOCS_PREFIX + "/")
    )


def _settings() -> Any:
    return container().settings


def default_limit() -> str:
    """Every route without its own limit, per user: TASKTRACKER_RATELIMIT_DEFAULT."""
    return str(_settings().ratelimit_default)


def login_limit() -> str:
    """Login attempts per client address and username: TASKTRACKER_RATELIMIT_LOGIN."""
    return str(_settings().ratelimit_login)


def upload_limit() -> str:
    """CSV uploads per user, all upload routes together: TASKTRACKER_RATELIMIT_UPLOAD."""
    return str(_settings().ratelimit_upload)
