"""The declarative base and the Flask-SQLAlchemy handle every model and repository shares."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names, so Alembic can drop and alter them on PostgreSQL and
# SQLite alike (SQLite's batch mode needs a name for every constraint it recreates).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# expire_on_commit=False: services return the objects they committed, and serialising them
# must not cost one SELECT per object.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
