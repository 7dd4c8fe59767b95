"""Celery: the app (wired to Flask) and its tasks, which only call services."""
