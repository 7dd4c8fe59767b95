"""TaskTrackerPro: a self-hostable task-tracking backend."""

from __future__ import annotations

from typing import Any

from flask import Flask, send_from_directory
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Settings

__version__ = "0.1.0"


def create_app(settings: Settings | None = None, **flask_config: Any) -> Flask:
    """The app factory: configuration, extensions, blueprints, error handlers. Nothing else."""
    from .api import register_blueprints
    from .api.errors import register_error_handlers
    from .auth.flask import configure_jwt, register_jwt_callbacks
    from .bootstrap import build_container
    from .db_pool import check_connections_on_checkout
    from .extensions import api, cors, db, jwt, limiter, migrate
    from .jobs.celery_app import init_celery
    from .observability import configure_logging, init_request_tracking
    from .security import cors_options, init_security, refuse_unsafe_production
    from .services.health import MIGRATIONS_DIR

    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__)
    app.config.update(_flask_config(settings))
    app.config.update(flask_config)
    refuse_unsafe_production(app, settings)
    if settings.trusted_proxies:
        # Trust exactly this many proxies' X-Forwarded-* headers; a client cannot forge more.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    configure_jwt(app, settings)
    jwt.init_app(app)
    register_jwt_callbacks(jwt)
    # Request tracking first: its before_request must run before the limiter's, so a 429
    # still carries a request id, is counted in the metrics and gets an access-log line.
    init_request_tracking(app)
    limiter.init_app(app)
    cors.init_app(app, **cors_options(settings))
    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )

    with app.app_context():
        if not settings.is_sqlite:
            check_connections_on_checkout(db.engine)
        app.extensions["tasktracker"] = build_container(settings, db.session)
    init_security(app, settings)
    register_blueprints(api)
    register_error_handlers(app)
    init_celery(app)
    _serve_swagger_assets(app)

    from .cli import register_cli

    register_cli(app)
    return app


def _flask_config(settings: Settings) -> dict[str, Any]:
    from .auth import limit_storage  # registers the limiter's storage scheme

    # hide_parameters: a database error's text (which ends up in logs) never carries bound
    # values such as password hashes or token ids.
    # No pool_pre_ping: db_pool checks a connection's socket at checkout without a round trip.
    engine_options: dict[str, Any] = {"hide_parameters": True}
    if settings.is_sqlite:
        engine_options = {"connect_args": {"timeout": 30}, "hide_parameters": True}
    else:
        engine_options.update(pool_size=10, max_overflow=10, pool_recycle=1800)
    return {
        "TASKTRACKER_SETTINGS": settings,
        "SECRET_KEY": settings.jwt_secret_key,
        "DEBUG": False,
        "TESTING": settings.env == "testing",
        "PROPAGATE_EXCEPTIONS": False,
        "MAX_CONTENT_LENGTH": settings.max_content_length,
        "JSON_SORT_KEYS": False,
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        # flask-smorest / OpenAPI
        "API_TITLE": "TaskTrackerPro API",
        "API_VERSION": __version__,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
        "API_SPEC_OPTIONS": {
            "info": {
                "description": "Role-based task tracking: tasks, daily task logs, reports, "
                "CSV import and export. Authenticate with POST /api/v1/auth/login and send "
                "'Authorization: Bearer <access_token>'."
            }
        },
        # Flask-Limiter
        "RATELIMIT_ENABLED": settings.ratelimit_enabled,
        # Redis: limits' Redis storage counting a hit and reading its window in one round trip
        # (auth/limit_storage.py).
        "RATELIMIT_STORAGE_URI": limit_storage.SCHEME_PREFIX + settings.redis_url
        if settings.redis_url
        else "memory://",
        # The storage's own key prefix (default "LIMITS") is what a reset deletes: make it this
        # installation's prefix, so a reset never touches another installation's limits.
        "RATELIMIT_STORAGE_OPTIONS": {
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "key_prefix": settings.redis_prefix + "rl",
        }
        if settings.redis_url
        else {},
        "RATELIMIT_STRATEGY": "moving-window",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
    }


def _serve_swagger_assets(app: Flask) -> None:
    """Swagger UI's files come from this app (flask-swagger-ui's copy), never from a CDN."""
    from pathlib import Path

    import flask_swagger_ui

    assets = Path(flask_swagger_ui.__file__).resolve().parent / "dist"

    @app.get("/docs/assets/<path:filename>")
    def swagger_assets(filename: str) -> Any:
        return send_from_directory(assets, filename, max_age=86400)
