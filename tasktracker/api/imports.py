"""CSV imports: POST /api/v1/imports, GET /api/v1/imports/{id}, and the seed's POST /upload-csv.

Answers: 201 (imported now), 200 (dry run), 202 + Location (queued for a worker), 422 with
the import report as ``error.details`` (atomic mode and bad rows: nothing imported).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Request
from flask.views import MethodView
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict

from ..auth.flask import auth_required, current_actor
from ..auth.policy import Permission
from ..errors import InvalidInput, UnsupportedMediaType
from ..extensions import upload_rate_limit
from ..jobs.import_jobs import enqueue_import
from ..models import ImportJob, ImportMode
from ..schemas.imports import ImportOptionsArgs, ImportReportSchema, ImportUploadForm
from ..services import imports as import_service
from .base import ApiBlueprint, JsonOnlyParser
from .deps import container

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class UploadParser(JsonOnlyParser):
    """Reads the "form" location as the whole multipart/form-data body, fields and files
    together (webargs keeps them apart). Any other body type is a 415."""

    def load_form(self, req: Request, schema: ma.Schema) -> Any:
        has_body = bool(req.content_length) or req.headers.get("Transfer-Encoding") == "chunked"
        if has_body and req.mimetype not in FORM_TYPES:
            raise UnsupportedMediaType(
                "Upload the CSV as multipart/form-data with the file in the 'file' field.",
                {"content_type": req.mimetype or None},
            )
        return MultiDictProxy(CombinedMultiDict([req.form, req.files]), schema)


class UploadBlueprint(ApiBlueprint):
    ARGUMENTS_PARSER = UploadParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **ApiBlueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "form": "multipart/form-data",
    }


blp = UploadBlueprint("imports", __name__, url_prefix="/api/v1/imports", description="CSV import")
seed = UploadBlueprint("seed-imports", __name__, description="The seed's original routes")

UPLOAD_ERRORS = (401, 403, 409, 413, 415, 422, 429, 503)


def _options(query: dict[str, Any], form: dict[str, Any]) -> import_service.ImportOptions:
    given = {**query}
    for name, value in form.items():
        if name in given and given[name] != value:
            raise InvalidInput(
                f"{name} is given twice with different values (query and form).",
                {name: ["Given as a query parameter and as a form field, differently."]},
            )
        given[name] = value
    return import_service.ImportOptions(
        mode=given.get("mode") or ImportMode.ATOMIC,
        dry_run=bool(given.get("dry_run", False)),
        force=bool(given.get("force", False)),
    )


def _upload(query: dict[str, Any], form: dict[str, Any]) -> Any:
    upload = form.pop("file")
    c = container()
    submission = import_service.submit_import(
        c.uow(),
        current_actor(),
        upload.stream,
        upload.filename,
        _options(query, form),
        settings=c.settings,
        cache=c.cache,
        enqueue=enqueue_import,
    )
    job = submission.job
    location = {"Location": f"/api/v1/imports/{job.id}"}
    if submission.rejected:
        raise InvalidInput(job.message or "The file has bad rows.", ImportReportSchema().dump(job))
    if submission.queued:
        return job, 202, location
    return job, 200 if job.dry_run else 201, location


def _documented(bp: UploadBlueprint) -> Any:
    """The decorators both upload routes share (auth outermost)."""

    def decorate(view: Any) -> Any:
        view = bp.errors(*UPLOAD_ERRORS)(view)
        view = bp.alt_response(
            202, schema=ImportReportSchema, description="Queued for a worker (large file)"
        )(view)
        view = bp.alt_response(200, schema=ImportReportSchema, description="Dry run: validated")(
            view
        )
        view = bp.response(201, ImportReportSchema, description="Imported")(view)
        view = bp.arguments(ImportUploadForm, location="form")(view)
        # A misspelt option (dryrun=true) must not be ignored: unknown parameters are a 422.
        view = bp.arguments(ImportOptionsArgs, location="query", unknown=ma.RAISE)(view)
        return auth_required(Permission.IMPORT)(view)

    return decorate


@blp.route("")
class Imports(MethodView):
    decorators = [upload_rate_limit]

    @_documented(blp)
    def post(self, query: dict[str, Any], form: dict[str, Any]) -> Any:
        """Import tasks from a CSV file (admin)

        201: imported (partial mode: the report lists the rows left out). 200: dry run.
        202: a large file was queued; follow the Location. 422 in atomic mode when any row is
        bad: nothing is imported and ``error.details`` is the import report (the same keys
        as a 201, with ``errors`` giving each bad row's line, column and reason). 409: the
        same file was imported before (``error.details.import_id``); send force=true.
        """
        return _upload(query, form)


@blp.route("/<id:import_id>")
class ImportById(MethodView):
    @auth_required()
    @blp.response(200, ImportReportSchema)
    @blp.errors(401, 403, 404, 429)
    def get(self, import_id: int) -> ImportJob:
        """An import's status, progress and report (admin, or the admin who started it)"""
        return import_service.get_import(container().uow(), current_actor(), import_id)


@seed.route("/upload-csv")
class SeedUpload(MethodView):
    decorators = [upload_rate_limit]

    @_documented(seed)
    def post(self, query: dict[str, Any], form: dict[str, Any]) -> Any:
        """The seed's CSV upload (same as POST /api/v1/imports)

        Same body, options and answers as POST /api/v1/imports.
        """
        return _upload(query, form)


BLUEPRINTS = [blp, seed]
