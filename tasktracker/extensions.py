"""Module-level Flask extensions; ``create_app`` calls their ``init_app``."""

from __future__ import annotations

from flask_cors import CORS
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_migrate import Migrate

from .api.base import TaskTrackerApi
from .auth.limits import default_limit, rate_limit_key
from .models import db

migrate = Migrate()
jwt = JWTManager()
# Limits are callables read from the app's settings on each request, so they are configurable
# without touching the decorators.
limiter = Limiter(key_func=rate_limit_key, default_limits=[default_limit])
api = TaskTrackerApi()
cors = CORS()

__all__ = ["api", "cors", "db", "jwt", "limiter", "migrate"]
