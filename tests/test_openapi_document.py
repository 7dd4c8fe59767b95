"""The OpenAPI document says what the server enforces (what schemathesis holds it to), and the
server keeps inside what the document says."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasktracker.api.base import NUL_FREE_PATTERN

from .conftest import TestUser

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    return dict(app.test_client().get("/openapi.json").get_json())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_no_catch_all_default_response(document: dict[str, Any]) -> None:
    offenders = [f"{m} {p}" for m, p, op in _operations(document) if "default" in op["responses"]]
    assert offenders == []


def test_every_documented_error_is_the_envelope(document: dict[str, Any]) -> None:
    offenders = []
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("4"):
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") != "#/components/schemas/Error":
                offenders.append(f"{method} {path} {status}")
    assert offenders == []


def test_user_id_path_parameter_is_bounded(document: dict[str, Any]) -> None:
    (parameter,) = document["paths"]["/api/v1/users/{user_id}"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def test_an_id_too_large_for_the_database_is_404(client: FlaskClient, admin: TestUser) -> None:
    response = client.get(f"/api/v1/users/{2**31}", headers=admin.headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_a_page_past_the_database_integers_is_422(client: FlaskClient, admin: TestUser) -> None:
    response = client.get(f"/api/v1/users?page={2**31}", headers=admin.headers)
    assert response.status_code == 422
    assert "page" in response.get_json()["error"]["details"]


@pytest.mark.parametrize("value", [0, 1, "true", "false", "yes", None])
def test_is_active_takes_only_a_json_boolean(
    client: FlaskClient, admin: TestUser, user: TestUser, value: object
) -> None:
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"is_active": value}, headers=admin.headers
    )
    assert response.status_code == 422
    assert "is_active" in response.get_json()["error"]["details"]


def test_a_patch_must_name_a_field_and_says_so(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["UserUpdate"]["minProperties"] == 1


def test_free_text_inputs_document_that_nul_is_refused(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Login"]["properties"]["username"]["pattern"] == NUL_FREE_PATTERN
    assert schemas["UserUpdate"]["properties"]["password"]["pattern"] == NUL_FREE_PATTERN
    # Output schemas promise nothing about input.
    assert "pattern" not in schemas["User"]["properties"]["username"]


def test_the_refresh_body_is_optional(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/auth/refresh"]["post"]["requestBody"]
    assert body["required"] is False


def test_metrics_documents_its_text_format(document: dict[str, Any]) -> None:
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert [media.split(";")[0] for media in content] == ["text/plain"]


def test_the_favicon_is_served_locally(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    response.close()  # a file response holds the file open until closed
    assert response.status_code == 200
    assert response.mimetype == "image/png"


def test_an_out_of_range_id_matches_no_rule_of_any_method() -> None:
    """Where one URL has rules for different methods (the seed's /task/<id>), an id past the
    bound is a 404 for every method, not a 405 from the rules of the other methods."""
    from flask import Flask as App

    from tasktracker.api.base import BigIdConverter, IdConverter

    app = App("ids")
    app.url_map.converters.update(id=IdConverter, bigid=BigIdConverter)
    app.add_url_rule("/t/<id:n>", "read", lambda n: str(n), methods=["GET"])
    app.add_url_rule("/t/<id:n>", "write", lambda n: str(n), methods=["PUT"])
    app.add_url_rule("/log/<bigid:n>", "log", lambda n: str(n), methods=["GET"])
    client = app.test_client()
    assert client.get(f"/t/{2**31 - 1}").status_code == 200
    assert client.put("/t/1").status_code == 200
    for path in (f"/t/{2**31}", "/t/0", "/t/007", f"/t/{10**30}"):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/log/{2**63 - 1}").status_code == 200
    assert client.get(f"/log/{2**63}").status_code == 404
