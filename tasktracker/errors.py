"""Domain errors. Services raise these; ``api.errors`` turns each into its HTTP answer.

This module imports nothing from Flask, so services, jobs and the CLI can use it.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a rule of the domain was broken. ``status`` is the HTTP mapping."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status = 403
    code = "forbidden"


class AuthenticationFailed(DomainError):
    status = 401
    code = "unauthorized"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class StaleVersion(DomainError):
    """The caller's If-Match named an older version than the stored one."""

    status = 412
    code = "precondition_failed"


class PreconditionRequired(DomainError):
    status = 428
    code = "precondition_required"


class InvalidInput(DomainError):
    """Input that passed the schema but breaks a rule (details maps field -> messages)."""

    status = 422
    code = "validation_error"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(DomainError):
    """A dependency (e.g. the job broker) is down: the request was not carried out."""

    status = 503
    code = "service_unavailable"
