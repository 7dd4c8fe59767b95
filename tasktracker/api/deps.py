"""What views need from the application: the container and a fresh unit of work."""

from __future__ import annotations

from flask import current_app

from ..bootstrap import Container
from ..unit_of_work import UnitOfWork


def container() -> Container:
    return current_app.extensions["tasktracker"]


def uow() -> UnitOfWork:
    return container().uow()
