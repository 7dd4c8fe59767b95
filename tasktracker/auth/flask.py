"""Flask side of auth: Flask-JWT-Extended configuration, its callbacks, and ``auth_required``.

Every bad, expired, revoked or wrong-type token, and a missing one, is a 401 in the JSON
envelope. The user and the token's revocation are read from the database on every request,
in one statement, so a deactivation, a role change or a logout takes effect at once.

A token's signature is checked once per process (``RequestJWTManager``): the rate limiter's
key function (before the view), Flask-JWT-Extended (in the view) and the caller's next
requests reuse the verified claims; expiry is checked on every use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, g, has_app_context
from flask_jwt_extended import JWTManager, get_jwt, verify_jwt_in_request
from flask_jwt_extended.config import config as jwt_config
from flask_smorest import Blueprint

from ..api.deps import container
from ..api.errors import error_response
from ..config import Settings
from .policy import Actor, Permission, require
from .tokens import ALGORITHM

F = TypeVar("F", bound=Callable[..., Any])


class RequestJWTManager(JWTManager):
    """Flask-JWT-Extended's manager, checking each token's signature once per process.

    Its decode parses a token three times (claims, header, then verified) and checks the HMAC;
    the limiter's key function and the view's check paid that twice a request, every request.
    Whether a token's signature, issuer and audience hold depends only on the token's text and
    the decoding settings, so a verified token's claims are remembered under exactly those
    (bounded, least recently used first out). Time is checked again on every use: a
    remembered token past its ``exp`` (or before its ``nbf``) goes back through the full
    decode, which raises the same error as before. Revocation, the user's role and active
    flag are read per request as always (``check_access``), never remembered here.
    """

    #: Tokens remembered per process (about 1 KB each): a few minutes of distinct callers.
    VERIFIED_TOKENS = 4096

    def __init__(self, app: Flask | None = None, add_context_processor: bool = False) -> None:
        self._verified: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._verified_lock = threading.Lock()
        super().__init__(app, add_context_processor)

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if allow_expired or csrf_value is not None or not has_app_context():
            return self._decode(encoded_token, csrf_value, allow_expired)
        key = (
            encoded_token,
            jwt_config.decode_key,
            tuple(jwt_config.decode_algorithms),
            jwt_config.decode_issuer,
            str(jwt_config.decode_audience),
            jwt_config.leeway,
        )
        with self._verified_lock:
            claims = self._verified.get(key)
            if claims is not None:
                self._verified.move_to_end(key)
        if claims is not None and _in_time(claims, jwt_config.leeway):
            return dict(claims)
        claims = self._decode(encoded_token, csrf_value, allow_expired)
        with self._verified_lock:
            self._verified[key] = dict(claims)
            while len(self._verified) > self.VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return claims

    def _decode(self, encoded_token: str, csrf_value: Any, allow_expired: bool) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired),
        )


def _in_time(claims: dict[str, Any], leeway: float) -> bool:
    """PyJWT's own ``exp``/``nbf`` rule, on its own clock (so a test's fake clock applies)."""
    now = datetime.now(tz=UTC).timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and exp <= now - leeway:
        return False
    return nbf is None or nbf <= now + leeway


def configure_jwt(app: Flask, settings: Settings) -> None:
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM=ALGORITHM,
        JWT_DECODE_ALGORITHMS=[ALGORITHM],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_HEADER_TYPE="Bearer",
        JWT_ENCODE_ISSUER=settings.jwt_issuer,
        JWT_DECODE_ISSUER=settings.jwt_issuer,
        JWT_ENCODE_AUDIENCE=settings.jwt_audience,
        JWT_DECODE_AUDIENCE=settings.jwt_audience,
        JWT_DECODE_LEEWAY=0,
        JWT_ERROR_MESSAGE_KEY="message",
    )


def register_jwt_callbacks(jwt: JWTManager) -> None:
    from ..services import auth as auth_service

    def unauthorized(message: str) -> Response:
        return error_response(
            401, message, code="unauthorized", headers={"WWW-Authenticate": "Bearer"}
        )

    @jwt.unauthorized_loader
    def _missing(reason: str) -> Response:
        return unauthorized("Authentication required: send 'Authorization: Bearer <token>'.")

    @jwt.invalid_token_loader
    def _invalid(reason: str) -> Response:
        return unauthorized("The token is not valid.")

    @jwt.expired_token_loader
    def _expired(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return unauthorized("The token has expired.")

    @jwt.revoked_token_loader
    def _revoked(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return unauthorized("The token has been revoked.")

    @jwt.needs_fresh_token_loader
    def _needs_fresh(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return unauthorized("A fresh login is required.")

    @jwt.user_lookup_error_loader
    def _user_gone(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return unauthorized("The token's user does not exist or is deactivated.")

    @jwt.token_verification_failed_loader
    def _verification_failed(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return unauthorized("The token is not valid.")

    # Flask-JWT-Extended asks for revocation, then for the user: one statement answers both.
    @jwt.token_in_blocklist_loader
    def _is_revoked(header: dict[str, Any], payload: dict[str, Any]) -> bool:
        check = auth_service.check_access(container().uow(), payload)
        g.access_check = (payload, check)
        return check.revoked

    @jwt.user_lookup_loader
    def _load_user(header: dict[str, Any], payload: dict[str, Any]) -> Actor | None:
        seen = g.pop("access_check", None)
        if seen is not None and seen[0] is payload:
            return cast(auth_service.AccessCheck, seen[1]).actor
        return auth_service.check_access(container().uow(), payload).actor


def current_actor() -> Actor:
    """The authenticated caller of this request (after ``auth_required``)."""
    return cast(Actor, g.actor)


def optional_actor() -> Actor | None:
    """The caller when a valid token was sent to an ``auth_required(optional=...)`` route."""
    return cast(Actor | None, g.get("actor"))


def authenticate(*, refresh: bool = False, optional: bool = False) -> Actor | None:
    """Verify the request's token (signature, expiry, type, revocation, user still active)."""
    verify_jwt_in_request(refresh=refresh, optional=optional)
    from flask_jwt_extended import current_user

    actor = cast(Actor | None, current_user) if get_jwt() else None
    g.actor = actor
    g.user_id = actor.id if actor else None
    return actor


def auth_required(
    permission: Permission | None = None,
    *,
    refresh: bool = False,
    optional: Callable[[], bool] | None = None,
) -> Callable[[F], F]:
    """Require a valid token (and optionally a role permission) before anything else runs.

    Put it outermost, so a caller without a token learns nothing from validation errors.
    ``optional`` is asked per request whether an anonymous caller is allowed.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            anonymous_ok = optional() if optional is not None else False
            actor = authenticate(refresh=refresh, optional=anonymous_ok)
            if permission is not None and actor is not None:
                require(actor, permission)
            return view(*args, **kwargs)

        return cast(F, Blueprint.doc(security=[{"bearerAuth": []}])(wrapper))

    return decorator
