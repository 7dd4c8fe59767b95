"""The Celery entrypoint: ``celery -A tasktracker.jobs.worker worker`` (and ``beat``)."""

from __future__ import annotations

from .. import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
app = celery_app  # what ``celery -A tasktracker.jobs.worker`` looks for
