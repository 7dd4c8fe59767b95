"""Users: /api/v1/users (admin), /api/v1/users/me, and the seed's POST /user."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from ..auth.flask import auth_required, current_actor, optional_actor
from ..auth.policy import Permission
from ..models import User
from ..schemas.auth import UserCreateSchema, UserPageSchema, UserSchema, UserUpdateSchema
from ..schemas.common import PageArgs, pages_for
from ..services import users as user_service
from .base import ApiBlueprint
from .deps import container

blp = ApiBlueprint("users", __name__, url_prefix="/api/v1/users", description="Users (admin)")
seed = ApiBlueprint("seed-users", __name__, description="The seed's original routes")


def _open_signup() -> bool:
    return container().settings.open_signup


def _create(data: dict[str, Any]) -> User:
    """Admins create users of any role; with open sign-up on, anyone may create a plain user."""
    c = container()
    actor = optional_actor()
    new = user_service.NewUser(data["username"], data["email"], data["password"], data["role"])
    if actor is not None and (actor.is_admin or not c.settings.open_signup):
        return user_service.create_user(c.uow(), actor, new)
    # Anonymous (or a non-admin) with open sign-up on: a plain user, nothing more.
    return user_service.sign_up(c.uow(), new)


@blp.route("")
class Users(MethodView):
    @auth_required(Permission.MANAGE_USERS)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, UserPageSchema)
    @blp.errors(401, 403, 422)
    def get(self, args: dict[str, int]) -> dict[str, Any]:
        """List users, by id (admin)"""
        page, per_page = args["page"], args["per_page"]
        users, total = user_service.list_users(container().uow(), current_actor(), page, per_page)
        return {
            "items": users,
            "total": total,
            "page": page,
            "per_page": per_page,
            "pages": pages_for(total, per_page),
        }

    @auth_required(optional=_open_signup)
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    @blp.errors(400, 401, 403, 409, 415, 422)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a user (admin; or anyone when open sign-up is on, as role "user")"""
        user = _create(data)
        return user, 201, {"Location": f"/api/v1/users/{user.id}"}


@blp.route("/me")
class Me(MethodView):
    @auth_required()
    @blp.response(200, UserSchema)
    @blp.errors(401)
    def get(self) -> User:
        """The logged-in user"""
        actor = current_actor()
        return user_service.get_user(container().uow(), actor, actor.id)


@blp.route("/<id:user_id>")
class UserById(MethodView):
    @auth_required()
    @blp.response(200, UserSchema)
    @blp.errors(401, 403, 404)
    def get(self, user_id: int) -> User:
        """One user (admin, or yourself)"""
        return user_service.get_user(container().uow(), current_actor(), user_id)

    @auth_required(Permission.MANAGE_USERS)
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    @blp.errors(400, 401, 403, 404, 409, 415, 422)
    def patch(self, data: dict[str, Any], user_id: int) -> User:
        """Change a user's role, email, active flag or password (admin)"""
        return user_service.update_user(container().uow(), current_actor(), user_id, data)


@seed.route("/user")
class SeedUser(MethodView):
    @auth_required(optional=_open_signup)
    @seed.arguments(UserCreateSchema)
    @seed.response(201, UserSchema)
    @seed.errors(400, 401, 403, 409, 415, 422)
    def post(self, data: dict[str, Any]) -> Any:
        """The seed's create-user route (same rules as POST /api/v1/users)"""
        user = _create(data)
        return user, 201, {"Location": f"/api/v1/users/{user.id}"}


BLUEPRINTS = [blp, seed]
