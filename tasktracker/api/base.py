"""flask-smorest glue: our Api (error envelope schema) and Blueprint (JSON-only bodies)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import marshmallow as ma
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask import Flask, Request, Response, send_from_directory
from flask_smorest import Api, Blueprint
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter, Map

from ..errors import UnsupportedMediaType

F = TypeVar("F", bound=Callable[..., Any])


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "not_found"})
    message = ma.fields.String(required=True)
    details = ma.fields.Raw(allow_none=True)


class ErrorSchema(ma.Schema):
    """The one error envelope of every 4xx and 5xx answer."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)
    request_id = ma.fields.String(allow_none=True)


class JsonOnlyParser(FlaskParser):
    """A body sent as anything but JSON where JSON is expected is 415, not a silent ``{}``."""

    def load_json(self, req: Request, schema: ma.Schema) -> Any:
        has_body = bool(req.content_length) or req.headers.get("Transfer-Encoding") == "chunked"
        if has_body and not req.is_json:
            raise UnsupportedMediaType(
                "The request body must be JSON (Content-Type: application/json).",
                {"content_type": req.mimetype or None},
            )
        return super().load_json(req, schema)


ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or request",
    401: "Missing, bad, expired or revoked token",
    403: "Your role may not do this",
    404: "No such resource (or it is deleted)",
    409: "Conflicts with existing data",
    412: "If-Match names an older version",
    413: "Body too large",
    415: "Body is not of the expected media type",
    422: "A field or parameter breaks a rule (see details)",
    428: "If-Match is required",
    429: "Rate limit exceeded",
    503: "Service not ready",
}


class ApiBlueprint(Blueprint):
    """Blueprint whose ``arguments`` use :class:`JsonOnlyParser`, with ``errors`` to document
    the error statuses a route answers (in the shared envelope)."""

    ARGUMENTS_PARSER = JsonOnlyParser()

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """flask-smorest's, with a schema class made into its one instance here: given a class,
        webargs builds a schema (deep-copying every field) on every request. A marshmallow
        schema keeps no state between loads, so one instance serves every request."""
        if isinstance(schema, type):
            schema = schema()
        return cast(Callable[[F], F], super().arguments(schema, *args, **kwargs))

    def errors(self, *statuses: int) -> Callable[[F], F]:
        """Document each status in ``statuses`` as an error-envelope response."""

        def decorator(func: F) -> F:
            for status in statuses:
                func = self.alt_response(
                    status, schema=ErrorSchema, description=ERROR_DESCRIPTIONS[status]
                )(func)
            return func

        return decorator


def _numbers_up_to(limit: int) -> str:
    """A regex of the decimal numbers 1..``limit``, without leading zeros."""
    digits = str(limit)
    choices = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        lowest = 1 if i == 0 else 0
        if int(digit) > lowest:
            rest = len(digits) - i - 1
            choices.append(
                f"{digits[:i]}[{lowest}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else "")
            )
    choices.append(digits)
    return "(?:" + "|".join(choices) + ")"


class IdConverter(IntegerConverter):
    """``<id:name>``: a row id, 1 to 2**31 - 1 (PostgreSQL ``integer``).

    A larger number cannot name a row, and sent to the database it is an out-of-range error
    (a 500). Here it does not match the URL at all, so it is a 404, also where one URL has
    rules for different methods (a number refused by a converter would make it a 405). The
    bounds are documented (minimum, maximum).
    """

    MAX = 2**31 - 1

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=self.MAX)
        self.regex = _numbers_up_to(self.MAX)


class BigIdConverter(IdConverter):
    """``<bigid:name>``: an id of a ``bigint`` column (task logs), 1 to 2**63 - 1."""

    MAX = 2**63 - 1


# What BaseSchema._refuse_nul enforces, said in the document (ECMA and Python regex syntax).
NUL_FREE_PATTERN = "^[^\\u0000]*$"


class DocumentedConverter(OpenAPIConverter):
    """apispec's converter, plus the rules our input schemas enforce beyond their fields:
    strings without NUL, and schema-level keywords from ``Meta.json_schema``
    (e.g. ``{"minProperties": 1}`` for a PATCH body that must name a field)."""

    def init_attribute_functions(self) -> None:
        super().init_attribute_functions()
        self.add_attribute_function(_nul_free)

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().schema2jsonschema(schema)
        jsonschema.update(getattr(getattr(schema, "Meta", None), "json_schema", {}))
        return jsonschema


def _nul_free(
    self: OpenAPIConverter, field: ma.fields.Field, ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """``pattern`` for the free-text strings of an input (BaseSchema) schema."""
    if not isinstance(field, ma.fields.String) or {"pattern", "format", "enum"} & set(ret):
        return {}
    owner: Any = field.parent
    while isinstance(owner, ma.fields.Field):
        owner = owner.parent
    return {"pattern": NUL_FREE_PATTERN} if isinstance(owner, BaseSchema) else {}


class DocumentedMarshmallowPlugin(MarshmallowPlugin):
    Converter = DocumentedConverter


class TaskTrackerApi(Api):
    """flask-smorest Api documenting our error envelope; errors are rendered in api.errors."""

    ERROR_SCHEMA = ErrorSchema
    # No catch-all "default" response: every error a route can answer is listed explicitly,
    # so the document says exactly which statuses to expect.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        """Also install the ``id``/``bigid`` URL converters (before any blueprint) and the
        documenting marshmallow plugin."""
        app.url_map.converters["id"] = IdConverter
        app.url_map.converters["bigid"] = BigIdConverter
        spec_kwargs = {"marshmallow_plugin": DocumentedMarshmallowPlugin(), **(spec_kwargs or {})}
        super().init_app(app, spec_kwargs=spec_kwargs)
        # Browsers ask every site for /favicon.ico; without one, Swagger UI's page logs a 404
        # error in the console. Swagger UI's own icon, from the same local copy as its assets.
        app.add_url_rule("/favicon.ico", "favicon", _favicon)


def _favicon() -> Response:
    import flask_swagger_ui

    assets = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
    return send_from_directory(assets, "favicon-32x32.png", mimetype="image/png", max_age=86400)

    def handle_http_exception(self, error: Any) -> Any:  # pragma: no cover - replaced
        from .errors import render_http_exception

        return render_http_exception(error)


class BaseSchema(ma.Schema):
    """Every input schema refuses fields it does not know, and NUL characters anywhere
    (PostgreSQL cannot store them; they are never legitimate text)."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load(pass_collection=True)
    def _refuse_nul(self, data: Any, **kwargs: Any) -> Any:
        if hasattr(data, "items"):
            bad = {
                key: ["NUL characters are not allowed."]
                for key, value in data.items()
                if _has_nul(value)
            }
            if bad:
                raise ma.ValidationError(bad)
        return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(item) for item in value.values())
    return False
