"""Schemas shared by several resources: pagination arguments and page envelopes."""

from __future__ import annotations

import marshmallow as ma

from ..api.base import BaseSchema

MAX_PER_PAGE = 100
# Past this the row offset stops fitting the database's integers (a 500, not an empty page).
MAX_PAGE = 2**31 - 1


class StrictBoolean(ma.fields.Boolean):
    """A JSON boolean: ``true`` or ``false`` only, not ``1``, ``"yes"`` or ``"true"``.

    marshmallow's Boolean takes all of those, which the document (``type: boolean``) does
    not promise; query strings and forms, where every value is text, keep using Boolean.
    """

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class PageArgs(BaseSchema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE))
    per_page = ma.fields.Integer(
        load_default=20, validate=ma.validate.Range(min=1, max=MAX_PER_PAGE)
    )


class PageMeta(ma.Schema):
    total = ma.fields.Integer(required=True)
    page = ma.fields.Integer(required=True)
    per_page = ma.fields.Integer(required=True)
    pages = ma.fields.Integer(required=True)


class UserRef(ma.Schema):
    id = ma.fields.Integer(required=True)
    username = ma.fields.String(required=True)


class MessageSchema(ma.Schema):
    message = ma.fields.String(required=True)


def pages_for(total: int, per_page: int) -> int:
    return (total + per_page - 1) // per_page if total else 0
