"""Rate-limit keys: per user when a token names one, else per client address."""

from __future__ import annotations

from flask import current_app, g, request
from flask_limiter.util import get_remote_address


def rate_limit_key() -> str:
    user_id = g.get("user_id")
    if user_id is not None:
        return f"user:{user_id}"
    return f"ip:{get_remote_address()}"


def login_key() -> str:
    """Login attempts count per client address and username together."""
    body = request.get_json(silent=True) if request.is_json else None
    username = body.get("username") if isinstance(body, dict) else None
    name = username.lower()[:64] if isinstance(username, str) else ""
    return f"login:{get_remote_address()}:{name}"


def _settings():  # type: ignore[no-untyped-def]
    return current_app.extensions["tasktracker"].settings


def default_limit() -> str:
    return str(_settings().ratelimit_default)


def login_limit() -> str:
    return str(_settings().ratelimit_login)


def upload_limit() -> str:
    return str(_settings().ratelimit_upload)
