"""Login, refresh and user schemas."""

from __future__ import annotations

import marshmallow as ma

from ..api.base import BaseSchema
from ..auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ..models import Role
from .common import PageMeta, StrictBoolean

USERNAME = ma.validate.Regexp(
    r"^[A-Za-z0-9_.-]{3,50}$", error="3-50 characters of letters, digits, '_', '.' and '-'."
)
PASSWORD = ma.validate.Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH)


class LoginSchema(BaseSchema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=254))
    password = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=1, max=4096)
    )


class RefreshSchema(BaseSchema):
    refresh_token = ma.fields.String(load_default=None)


class TokenSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "seconds"})


class LegacyTokenSchema(TokenSchema):
    token = ma.fields.String(required=True, metadata={"description": "= access_token"})


class UserCreateSchema(BaseSchema):
    username = ma.fields.String(required=True, validate=USERNAME)
    email = ma.fields.Email(required=True, validate=ma.validate.Length(max=254))
    password = ma.fields.String(required=True, load_only=True, validate=PASSWORD)
    role = ma.fields.Enum(Role, by_value=True, load_default=Role.USER)


class UserUpdateSchema(BaseSchema):
    class Meta(BaseSchema.Meta):
        json_schema = {"minProperties": 1}  # see _not_empty

    email = ma.fields.Email(validate=ma.validate.Length(max=254))
    role = ma.fields.Enum(Role, by_value=True)
    is_active = StrictBoolean()
    password = ma.fields.String(load_only=True, validate=PASSWORD)

    @ma.validates_schema
    def _not_empty(self, data: dict[str, object], **kwargs: object) -> None:
        if not data:
            raise ma.ValidationError("Name at least one of role, email, is_active, password.")


class UserSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    username = ma.fields.String(required=True)
    email = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    is_active = ma.fields.Boolean(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class UserPageSchema(PageMeta):
    items = ma.fields.List(ma.fields.Nested(UserSchema), required=True)
