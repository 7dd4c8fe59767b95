"""Login, refresh, logout: /api/v1/auth/* and the seed's POST /login."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import decode_token, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from ..auth.flask import auth_required
from ..errors import AuthenticationFailed
from ..extensions import login_rate_limit
from ..schemas.auth import LegacyTokenSchema, LoginSchema, RefreshSchema, TokenSchema
from ..services import auth as auth_service
from .base import ApiBlueprint
from .deps import container

blp = ApiBlueprint("auth", __name__, url_prefix="/api/v1/auth", description="Authentication")
seed = ApiBlueprint("seed-auth", __name__, description="The seed's original routes")


def _token_body(result: auth_service.LoginResult) -> dict[str, Any]:
    pair = result.pair
    return {
        "access_token": pair.access.token,
        "refresh_token": pair.refresh.token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


def _login(data: dict[str, str]) -> dict[str, Any]:
    c = container()
    return _token_body(auth_service.login(c.uow(), c.tokens, data["username"], data["password"]))


@blp.route("/login")
class Login(MethodView):
    decorators = [login_rate_limit]

    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @blp.errors(400, 401, 415, 422, 429)
    def post(self, data: dict[str, str]) -> dict[str, Any]:
        """Log in with username (or email) and password; get access and refresh tokens"""
        return _login(data)


@blp.route("/refresh")
class Refresh(MethodView):
    # The body is optional: the refresh token usually comes as the Bearer token.
    @blp.arguments(RefreshSchema, required=False)
    @blp.response(200, TokenSchema)
    @blp.errors(400, 401, 415, 422)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Exchange a refresh token (Bearer or body) for a new pair; the old one stops working"""
        body_token = data.get("refresh_token")
        if body_token:
            try:
                claims = decode_token(body_token)
            except (JWTExtendedException, PyJWTError) as exc:
                raise AuthenticationFailed("The refresh token is not valid.") from exc
            if claims.get("type") != "refresh":
                raise AuthenticationFailed("A refresh token is required.")
        else:
            verify_jwt_in_request(refresh=True)
            claims = get_jwt()
        c = container()
        return _token_body(auth_service.refresh(c.uow(), c.tokens, claims))


@blp.route("/logout")
class Logout(MethodView):
    @auth_required()
    @blp.response(204)
    @blp.errors(401)
    def post(self) -> None:
        """Revoke this access token and its refresh token"""
        c = container()
        auth_service.logout(c.uow(), c.tokens, get_jwt())


@seed.route("/login")
class SeedLogin(MethodView):
    decorators = [login_rate_limit]

    @seed.arguments(LoginSchema)
    @seed.response(200, LegacyTokenSchema)
    @seed.errors(400, 401, 415, 422, 429)
    def post(self, data: dict[str, str]) -> dict[str, Any]:
        """The seed's login: the v1 answer plus "token" (= the access token)"""
        body = _login(data)
        return {**body, "token": body["access_token"]}


BLUEPRINTS = [blp, seed]
