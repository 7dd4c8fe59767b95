"""Module-level Flask extensions; ``create_app`` calls their ``init_app``."""

from __future__ import annotations

from flask_cors import CORS
from flask_limiter import Limit, Limiter
from flask_migrate import Migrate

from .api.base import TaskTrackerApi
from .auth.flask import RequestJWTManager
from .auth.limits import (
    default_limit,
    is_exempt_request,
    login_key,
    login_limit,
    rate_limit_key,
    upload_limit,
)
from .models import db

migrate = Migrate()
jwt = RequestJWTManager()
# Limits are callables read from the app's settings on each request, so they are configurable
# without touching the decorators. The default limit is one budget per user across every
# route without a limit of its own ("shared" with one scope), not a budget per route.
limiter = Limiter(
    key_func=rate_limit_key,
    default_limits=[Limit(default_limit, shared=True, scope="api")],
)
limiter.request_filter(is_exempt_request)
# Decorators for the routes with limits of their own. Each is one budget shared by all the
# routes it decorates, so the seed's route and the v1 route do not double an attacker's tries.
login_rate_limit = limiter.shared_limit(
    login_limit, scope="login", key_func=login_key, methods=["POST"]
)
upload_rate_limit = limiter.shared_limit(upload_limit, scope="upload", methods=["POST"])
api = TaskTrackerApi()
cors = CORS()

__all__ = [
    "api",
    "cors",
    "db",
    "jwt",
    "limiter",
    "login_rate_limit",
    "migrate",
    "upload_rate_limit",
]
