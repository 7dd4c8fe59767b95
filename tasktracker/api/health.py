"""Service routes: root, ping, liveness, readiness (database, Redis, schema head), metrics."""

from __future__ import annotations

import hmac
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import AuthenticationFailed
from ..observability import metrics_response
from ..services import health as health_service
from .base import ApiBlueprint
from .deps import container

blp = ApiBlueprint("health", __name__, description="Service status and operations")


class InfoSchema(ma.Schema):
    name = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    docs = ma.fields.String(required=True)
    openapi = ma.fields.String(required=True)


class PingSchema(ma.Schema):
    message = ma.fields.String(required=True, metadata={"example": "pong"})


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ready"})
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(), required=True)
    last_snapshot_date = ma.fields.Date(allow_none=True)


@blp.route("/")
class Root(MethodView):
    @blp.response(200, InfoSchema)
    def get(self) -> dict[str, str]:
        """What this service is, and where its documentation lives"""
        from .. import __version__

        return {
            "name": "TaskTrackerPro",
            "version": __version__,
            "docs": "/docs",
            "openapi": "/openapi.json",
        }


@blp.route("/ping")
class Ping(MethodView):
    @blp.response(200, PingSchema)
    def get(self) -> dict[str, str]:
        """Answer pong (the seed's liveness check)"""
        return {"message": "pong"}


@blp.route("/healthz")
class Healthz(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """Liveness: the process answers"""
        return {"status": "ok"}


@blp.route("/readyz")
class Readyz(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="A dependency is not ready")
    def get(self) -> Any:
        """Readiness: the database answers, Redis answers, the schema is at the migration head"""
        report = health_service.readiness(container())
        return report, 200 if report["status"] == "ready" else 503


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(
        200,
        {"type": "string"},
        content_type=CONTENT_TYPE_LATEST,
        description="Prometheus text exposition format",
    )
    @blp.errors(401)  # only when TASKTRACKER_METRICS_TOKEN is set and not given
    def get(self) -> Response:
        """Prometheus metrics (requests, jobs, imports, last snapshot)"""
        token = container().settings.metrics_token
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise AuthenticationFailed("A valid metrics token is required.")
        return metrics_response()


BLUEPRINTS = [blp]
