"""Typed settings read from the environment (and an optional ``.env``).

Every variable is listed in README.md's configuration table. ``Settings.from_env`` is the only
place that reads ``os.environ`` for application settings; everything else receives a
``Settings`` object.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The broker's visibility timeout: a message a worker took but never acknowledged (the worker
# was killed) goes back to the queue after this long. It must exceed the longest job and the
# longest retry delay (jobs/snapshot_jobs.py), or a job still running is delivered twice.
DEFAULT_CELERY_VISIBILITY_TIMEOUT = 6 * 3600

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your_jwt_secret", "jwt-secret", "dev"}
MIN_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """Raised when the configuration cannot be used (e.g. a weak secret in production)."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {value!r}")


def _int(name: str, default: int, minimum: int = 0) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from exc
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    return number


def _port(name: str) -> int | None:
    """A TCP port (1-65535), or None when unset."""
    value = _env(name)
    if value is None:
        return None
    number = _int(name, 0, 1)
    if number > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {number}")
    return number


def _list(name: str) -> tuple[str, ...]:
    value = _env(name)
    if not value:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


def normalize_database_url(url: str) -> str:
    """Make ``postgres://``/``postgresql://`` URLs use psycopg 3 (the only driver we ship)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _parse_time(name: str, value: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(f"{name} must be HH:MM (24-hour), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class Settings:
    """Everything the application, the worker and the CLI need to know about their world."""

    env: str = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    redis_prefix: str = "tt:"
    jwt_secret_key: str = ""
    jwt_issuer: str = "tasktracker"
    jwt_audience: str = "tasktracker-api"
    access_token_minutes: int = 15
    refresh_token_days: int = 7
    open_signup: bool = False
    admin_username: str = "admin"
    admin_password: str | None = None
    admin_email: str | None = None
    snapshot_time: time = time(0, 5)
    timezone: str = "UTC"
    cache_ttl_seconds: int = 300
    ratelimit_enabled: bool = True
    ratelimit_login: str = "5/minute"
    ratelimit_upload: str = "10/hour"
    ratelimit_default: str = "300/minute"
    max_content_length: int = 200 * 1024 * 1024
    import_async_rows: int = 50_000
    import_max_errors: int = 1_000
    # An import still queued or running this long after its upload was lost (its message
    # went with a Redis restart, or an API process died after storing it): the hourly
    # sweep marks it failed and deletes its file. Longer than the visibility timeout, so a
    # killed worker's import is redelivered first.
    import_abandon_hours: int = 24
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: int = 0
    metrics_token: str | None = None
    hsts: bool = False
    log_level: str = "INFO"
    celery_eager: bool = False
    celery_queue: str = "tasktracker"
    celery_visibility_timeout: int = DEFAULT_CELERY_VISIBILITY_TIMEOUT
    # The Celery worker's own Prometheus endpoint (``tasktracker worker``); off when None.
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"

    # -- derived ---------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: in-process cache/limits, Celery runs inline."""
        return self.redis_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read the settings from the process environment (after loading ``.env``)."""
        try:
            from dotenv import load_dotenv

            load_dotenv(override=False)
        except ImportError:  # pragma: no cover - python-dotenv is a dependency
            pass

        env = (_env("TASKTRACKER_ENV") or _env("FLASK_ENV") or "development").lower()
        if env not in {"development", "production", "testing"}:
            raise ConfigError("TASKTRACKER_ENV must be development, production or testing")
        data_dir = Path(_env("TASKTRACKER_DATA_DIR", "var") or "var")
        database_url = (
            _env("DATABASE_URL") or f"sqlite:///{(data_dir / 'tasktracker.db').resolve()}"
        )
        redis_url = _env("REDIS_URL")
        timezone = _env("TASKTRACKER_TIMEZONE", "UTC") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"TASKTRACKER_TIMEZONE {timezone!r} is not a known time zone"
            ) from exc

        settings = cls(
            env=env,
            data_dir=data_dir,
            database_url=normalize_database_url(database_url),
            redis_url=redis_url,
            redis_prefix=_env("TASKTRACKER_REDIS_PREFIX", "tt:") or "tt:",
            jwt_secret_key=_env("JWT_SECRET_KEY", "") or "",
            jwt_issuer=_env("TASKTRACKER_JWT_ISSUER", "tasktracker") or "tasktracker",
            jwt_audience=_env("TASKTRACKER_JWT_AUDIENCE", "tasktracker-api") or "tasktracker-api",
            access_token_minutes=_int("TASKTRACKER_ACCESS_TOKEN_MINUTES", 15, 1),
            refresh_token_days=_int("TASKTRACKER_REFRESH_TOKEN_DAYS", 7, 1),
            open_signup=_bool("TASKTRACKER_OPEN_SIGNUP", False),
            admin_username=_env("TASKTRACKER_ADMIN_USERNAME", "admin") or "admin",
            admin_password=_env("TASKTRACKER_ADMIN_PASSWORD"),
            admin_email=_env("TASKTRACKER_ADMIN_EMAIL"),
            snapshot_time=_parse_time(
                "TASKTRACKER_SNAPSHOT_TIME", _env("TASKTRACKER_SNAPSHOT_TIME", "00:05") or "00:05"
            ),
            timezone=timezone,
            cache_ttl_seconds=_int("TASKTRACKER_CACHE_TTL", 300, 1),
            ratelimit_enabled=_bool("TASKTRACKER_RATELIMIT_ENABLED", True),
            ratelimit_login=_env("TASKTRACKER_RATELIMIT_LOGIN", "5/minute") or "5/minute",
            ratelimit_upload=_env("TASKTRACKER_RATELIMIT_UPLOAD", "10/hour") or "10/hour",
            ratelimit_default=_env("TASKTRACKER_RATELIMIT_DEFAULT", "300/minute") or "300/minute",
            max_content_length=_int("MAX_CONTENT_LENGTH", 200 * 1024 * 1024, 1024),
            import_async_rows=_int("TASKTRACKER_IMPORT_ASYNC_ROWS", 50_000, 1),
            import_abandon_hours=_int("TASKTRACKER_IMPORT_ABANDON_HOURS", 24, 1),
            cors_origins=_list("TASKTRACKER_CORS_ORIGINS"),
            trusted_proxies=_int("TASKTRACKER_TRUSTED_PROXIES", 0, 0),
            metrics_token=_env("TASKTRACKER_METRICS_TOKEN"),
            hsts=_bool("TASKTRACKER_HSTS", False),
            log_level=(_env("TASKTRACKER_LOG_LEVEL", "INFO") or "INFO").upper(),
            celery_eager=_bool("TASKTRACKER_CELERY_EAGER", redis_url is None),
            celery_queue=_env("TASKTRACKER_CELERY_QUEUE", "tasktracker") or "tasktracker",
            celery_visibility_timeout=_int(
                "TASKTRACKER_CELERY_VISIBILITY_TIMEOUT", DEFAULT_CELERY_VISIBILITY_TIMEOUT, 1
            ),
            worker_metrics_port=_port("TASKTRACKER_WORKER_METRICS_PORT"),
            worker_metrics_host=_env("TASKTRACKER_WORKER_METRICS_HOST", "127.0.0.1") or "127.0.0.1",
        )
        if overrides:
            settings = replace(settings, **overrides)
        if settings.import_abandon_hours * 3600 <= settings.celery_visibility_timeout:
            raise ConfigError(
                "TASKTRACKER_IMPORT_ABANDON_HOURS must be longer than "
                "TASKTRACKER_CELERY_VISIBILITY_TIMEOUT: an import a killed worker left running "
                "is redelivered after the timeout and must not be given up before"
            )
        return settings.with_secret()

    def with_secret(self) -> Settings:
        """Check the JWT secret; outside production a missing one is made and kept in data_dir.

        Production refuses to start with a missing, placeholder or short secret, because every
        token signed with a guessable key is a forged login.
        """
        secret = self.jwt_secret_key
        weak = (
            not secret
            or secret.lower() in PLACEHOLDER_SECRETS
            or len(secret.encode()) < MIN_SECRET_BYTES
        )
        if not weak:
            return self
        if self.is_production:
            raise ConfigError(
                f"JWT_SECRET_KEY must be set to a random value of at least {MIN_SECRET_BYTES} "
                "bytes in production, e.g. from: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if secret:
            raise ConfigError(
                f"JWT_SECRET_KEY is too short or a placeholder; use at least {MIN_SECRET_BYTES} "
                "random bytes, or unset it to let development mode generate one"
            )
        return replace(self, jwt_secret_key=_local_secret(self.data_dir))


def _local_secret(data_dir: Path) -> str:
    """A per-installation secret for the embedded mode, so tokens survive a restart."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "jwt_secret"
    if path.exists():
        value = path.read_text().strip()
        if len(value.encode()) >= MIN_SECRET_BYTES:
            return value
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
