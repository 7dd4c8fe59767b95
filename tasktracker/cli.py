"""Command line: ``tasktracker run`` (what ``make run`` calls), ``tasktracker worker`` and
``flask`` sub-commands."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import Flask
from flask.cli import AppGroup

from .config import Settings


def prepare(app: Flask) -> None:
    """Migrate the database to head and create the first admin (printing a generated password)."""
    from flask_migrate import upgrade

    from .services.users import ensure_admin

    settings: Settings = app.config["TASKTRACKER_SETTINGS"]
    with app.app_context():
        upgrade()
        user, generated = ensure_admin(
            app.extensions["tasktracker"].uow(),
            settings.admin_username,
            settings.admin_password,
            settings.admin_email,
        )
    if user is not None:
        if generated:
            # Printed once, to the terminal only (never to the log).
            print(
                f"\n  Created admin '{user.username}' with password: {generated}\n"
                "  (set TASKTRACKER_ADMIN_PASSWORD to choose it; it is not shown again)\n",
                flush=True,
            )
        else:
            print(f"  Created admin '{user.username}'.", flush=True)


def register_cli(app: Flask) -> None:
    """``flask users create-admin``, ``flask users ensure-admin`` and ``flask imports sweep``."""
    users = AppGroup("users", help="Manage users.")

    @users.command("create-admin")
    @click.option("--username", required=True, help="3-50 of letters, digits, _ . -")
    @click.option("--email", required=True)
    @click.option(
        "--password",
        envvar="TASKTRACKER_ADMIN_PASSWORD",
        default=None,
        help="Defaults to $TASKTRACKER_ADMIN_PASSWORD; generated and printed once if unset.",
    )
    def create_admin(username: str, email: str, password: str | None) -> None:
        """Create an admin user."""
        from .errors import DomainError
        from .models import Role
        from .services.users import NewUser, create_user

        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(18)
        try:
            user = create_user(
                app.extensions["tasktracker"].uow(),
                None,
                NewUser(username, email, password, Role.ADMIN),
            )
        except DomainError as exc:
            raise click.ClickException(f"{exc.message} {exc.details or ''}".strip()) from exc
        click.echo(f"Created admin '{user.username}' (id {user.id}).")
        if generated:
            click.echo(f"Password (shown once): {generated}")

    @users.command("ensure-admin")
    def ensure_admin_command() -> None:
        """Create the first admin from TASKTRACKER_ADMIN_* unless an admin exists."""
        from .services.users import ensure_admin

        settings: Settings = app.config["TASKTRACKER_SETTINGS"]
        user, generated = ensure_admin(
            app.extensions["tasktracker"].uow(),
            settings.admin_username,
            settings.admin_password,
            settings.admin_email,
        )
        if user is None:
            click.echo("An admin already exists; nothing to do.")
        elif generated:
            click.echo(f"Created admin '{user.username}' with password: {generated}")
        else:
            click.echo(f"Created admin '{user.username}'.")

    app.cli.add_command(users)

    imports = AppGroup("imports", help="CSV imports.")

    @imports.command("sweep")
    def sweep_command() -> None:
        """Fail abandoned imports and delete unused upload files (beat runs it hourly)."""
        from .services.imports import sweep_abandoned

        c = app.extensions["tasktracker"]
        swept = sweep_abandoned(c.uow(), c.settings)
        click.echo(
            f"Failed {swept.failed_jobs} abandoned import(s); "
            f"deleted {swept.deleted_files} unused upload file(s)."
        )

    app.cli.add_command(imports)


def serve(app: Flask, host: str, port: int, workers: int) -> None:
    """Serve with gunicorn (one process in embedded mode: its cache and limits are in memory)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", 4)
            self.cfg.set("accesslog", None)
            self.cfg.set("timeout", 120)

        def load(self) -> Any:
            return app

    Server().run()


WORKER_ARGS = ("-A", "tasktracker.jobs.worker", "worker")


def celery_command() -> list[str]:
    """This interpreter running celery: its ``celery`` script when installed beside it (a
    worker restarts itself on SIGHUP by running its own command line again, which fails for
    ``python -m celery``), else ``python -m celery``."""
    script = Path(sys.executable).with_name("celery")
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "celery"]


def worker_environment(settings: Settings, env: MutableMapping[str, str]) -> None:
    """Prepare ``env`` for a Celery worker that serves its metrics (``tasktracker worker``).

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when the worker first imports it,
    so it is set here, before the worker starts: to a fresh temporary directory when the
    metrics port is set and the variable is not (the worker removes that directory when it
    exits). A directory given is created if missing and cleared of stale files, as
    gunicorn.conf.py does for the API.
    """
    from .jobs.metrics import CREATED_DIR_VAR, MULTIPROC_DIR_VAR

    given = env.get(MULTIPROC_DIR_VAR)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    elif settings.worker_metrics_port is not None:
        created = tempfile.mkdtemp(prefix="tasktracker-worker-metrics-")
        env[MULTIPROC_DIR_VAR] = created
        env[CREATED_DIR_VAR] = created


def worker(celery_args: list[str]) -> NoReturn:
    """``tasktracker worker [celery worker options]``: ``celery -A tasktracker.jobs.worker
    worker`` with the metrics environment prepared; this process becomes the worker."""
    # Loads .env into the environment too; a bad setting stops here rather than in the worker.
    settings = Settings.from_env()
    env = dict(os.environ)
    worker_environment(settings, env)
    sys.stdout.flush()
    sys.stderr.flush()
    command = [*celery_command(), *WORKER_ARGS, *celery_args]
    os.execve(command[0], command, env)  # noqa: S606


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        # Every other argument belongs to celery (``tasktracker worker --help`` shows them).
        worker(argv[1:])
    parser = argparse.ArgumentParser(prog="tasktracker")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="migrate, create the first admin, and serve")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    sub.add_parser("prepare", help="migrate and create the first admin, then exit")
    sub.add_parser(
        "worker",
        help="run a Celery worker (celery worker options follow) that serves its metrics on "
        "TASKTRACKER_WORKER_METRICS_PORT",
    )
    args = parser.parse_args(argv)

    from . import create_app

    app = create_app()
    settings: Settings = app.config["TASKTRACKER_SETTINGS"]
    prepare(app)
    if args.command == "prepare":
        return
    mode = "embedded (SQLite, in-process cache)" if settings.embedded else "PostgreSQL + Redis"
    print(
        f"  TaskTrackerPro on http://{args.host}:{args.port}  (Swagger UI: /docs; {mode})",
        flush=True,
    )
    workers = 1 if settings.embedded else min(4, (os.cpu_count() or 1) * 2 + 1)
    serve(app, args.host, args.port, workers)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
