"""The Celery entrypoint: ``celery -A tasktracker.jobs.worker worker`` (and ``beat``).

``tasktracker worker`` runs the same worker with its metrics environment prepared (cli.py).
"""

from __future__ import annotations

from .. import create_app
from .metrics import install_worker_metrics

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
app = celery_app  # what ``celery -A tasktracker.jobs.worker`` looks for
# The metrics endpoint of TASKTRACKER_WORKER_METRICS_PORT (a worker's main process only).
install_worker_metrics(flask_app.config["TASKTRACKER_SETTINGS"])
