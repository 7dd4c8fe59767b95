"""The WSGI entrypoint: ``gunicorn tasktracker.wsgi:app``; also ``flask --app tasktracker.wsgi``."""

from __future__ import annotations

from . import create_app

app = create_app()
