"""Schemathesis hooks for the conformance stage: authenticate as one role and keep the fuzzer's
own accounts usable for the whole run.

Loaded by the schemathesis CLI (``SCHEMATHESIS_HOOKS``) in a process started by
``test_schemathesis.py``, which passes the run's facts in the environment:
``TT_CONF_URL``, ``TT_CONF_USERNAME``, ``TT_CONF_PASSWORD``, ``TT_CONF_PROTECTED_IDS``
(comma-separated user ids) and ``TT_CONF_DECOY_ID``.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

BASE_URL = os.environ["TT_CONF_URL"]
USERNAME = os.environ["TT_CONF_USERNAME"]
PASSWORD = os.environ["TT_CONF_PASSWORD"]
PROTECTED_IDS = {int(value) for value in os.environ["TT_CONF_PROTECTED_IDS"].split(",")}
DECOY_ID = int(os.environ["TT_CONF_DECOY_ID"])
USER_PATH = "/api/v1/users/{user_id}"
LOGOUT_PATH = "/api/v1/auth/logout"
REFRESH_PATH = "/api/v1/auth/refresh"


def _login() -> dict[str, Any]:
    response = requests.post(
        f"{BASE_URL}/api/v1/auth/login",
        json={"username": USERNAME, "password": PASSWORD},
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json())


def _bearer(case: Any, token: str) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


# One access token for the role, reused (and fetched again after a 401, e.g. a revocation).
@schemathesis.auth(refresh_interval=600).skip_for(path=[LOGOUT_PATH, REFRESH_PATH])
class RoleToken:
    def get(self, case: Any, ctx: Any) -> str:
        return str(_login()["access_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        _bearer(case, data)


# Logout revokes the token it is called with: each call gets its own, so the role's token
# above stays valid for every other operation.
@schemathesis.auth(refresh_interval=None).apply_to(path=LOGOUT_PATH)
class FreshAccessToken:
    def get(self, case: Any, ctx: Any) -> str:
        return str(_login()["access_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        _bearer(case, data)


# Refresh rotates the refresh token (a reused one is refused): each call gets a fresh one, so
# the operation is exercised with a valid Bearer refresh token, not only with bad ones.
@schemathesis.auth(refresh_interval=None).apply_to(path=REFRESH_PATH)
class FreshRefreshToken:
    def get(self, case: Any, ctx: Any) -> str:
        return str(_login()["refresh_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        _bearer(case, data)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    _spare_own_accounts(case)
    _no_forged_cursor_in_positive_cases(case)


def _no_forged_cursor_in_positive_cases(case: Any) -> None:
    """A positive case does not send a ``cursor`` it made up.

    A cursor is an opaque token the server signs and hands out as ``next_cursor``; SPEC 4.3
    answers one it did not issue with 422, and no schema can say "issued by this server", so
    every generated cursor would be "valid data rejected". Negative cases keep theirs, the
    stateful phase passes real ones along its links, and tests/test_tasks_list.py and the
    Postman collection follow next_cursor page by page.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or "cursor" not in (case.query or {}):
        return
    case.query = {name: value for name, value in case.query.items() if name != "cursor"}


def _spare_own_accounts(case: Any) -> None:
    """PATCH /users/{id} on one of the run's own accounts goes to the decoy user instead.

    The fuzzer would otherwise deactivate, demote or re-password the accounts the stages log in
    with, and every later request would be a 401. Changing users is covered by test_users.py.
    """
    if case.operation.path != USER_PATH or case.method.upper() != "PATCH":
        return
    params = case.path_parameters or {}
    try:
        target = int(str(params.get("user_id")))
    except ValueError:  # a negative case's non-number: no account to spare
        return
    if target in PROTECTED_IDS:
        case.path_parameters = {**params, "user_id": DECOY_ID}
