"""The OpenAPI document and the `/docs` pages: a valid document (openapi-spec-validator), one
id per operation, every operation's schemas those of its wire types with an example that
validates, the routes that are not operations (files, the WebSocket), and a docs page that
loads nothing from elsewhere. On the `roost_server` fixture of `roost.testing`."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from roost.services import build_registry
from roost.testing import RoostServer


@pytest.fixture(scope="module")
def document(roost_server: RoostServer) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{roost_server.url}/api/v1/openapi.json").json()
    return answer


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_the_document_is_valid_openapi_with_one_id_per_operation(
    document: dict[str, Any],
) -> None:
    errors = [str(error)[:300] for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    ids = Counter(operation["operationId"] for _, _, operation in _operations(document))
    assert [name for name, count in ids.items() if count > 1] == []


def test_each_operations_schemas_are_its_wire_types(document: dict[str, Any]) -> None:
    for op in build_registry():
        if op.kind == "subscription":
            continue
        path = f"/api/v1/{op.module}/{op.name.split('.', 1)[1]}"
        post = document["paths"][path]["post"]
        request = post["requestBody"]["content"]["application/json"]["schema"]
        expected, _ = msgspec.json.schema_components(
            [op.input_type], ref_template="#/components/schemas/{name}"
        )
        assert request == expected[0], op.name
        assert {"400", "429", "default"} <= set(post["responses"]), op.name
        if op.access != "public":
            assert "401" in post["responses"], op.name
        if op.scope:
            assert op.scope in post["description"], op.name
            assert "403" in post["responses"], op.name


def test_every_example_validates_against_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in _operations(document):
        bodies = [operation.get("requestBody", {}).get("content", {})]
        bodies += [answer.get("content", {}) for answer in operation["responses"].values()]
        for content in bodies:
            for media in content.values():
                if "example" not in media or "chunk" in media["example"]:
                    continue
                schema = {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": document["components"],
                    **media["schema"],
                }
                try:
                    jsonschema.validate(media["example"], schema)
                except jsonschema.ValidationError as exc:
                    pytest.fail(f"{method} {path}: {exc.message}")
                checked += 1
    assert checked > 500  # requests, answers and errors of every operation


def test_file_routes_and_the_websocket_are_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    objects = paths["/api/v1/storage/buckets/{bucket}/objects/{name}"]
    assert {"put", "get", "head"} <= set(objects)
    assert objects["put"]["requestBody"]["content"]["*/*"]["schema"]["format"] == "binary"
    assert "/api/v1/storage/signed/{token}" in paths
    assert "/api/v1/storage/public/{tenant}/{bucket}/{name}" in paths
    websocket = paths["/api/v1/ws"]["get"]
    assert "101" in websocket["responses"]
    subscriptions = set(document["x-roost-subscriptions"])
    assert set(websocket["x-roost-subscriptions"]) == subscriptions
    assert all(f"`{name}`" in websocket["description"] for name in subscriptions)


def test_docs_load_swagger_ui_from_this_server_only(roost_server: RoostServer) -> None:
    with httpx.Client(base_url=roost_server.url) as http:
        page = http.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources
        assert all(source.startswith("/") for source in sources), sources
        assert 'url: "/api/v1/openapi.json"' in page.text
        assert "persistAuthorization: false" in page.text  # no token in local storage
        assert page.headers["x-frame-options"] == "DENY"
        for source in sources:
            if source.startswith("/docs/static/"):
                assert http.get(source).status_code == 200, source
        bundle = http.get("/docs/static/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in bundle.text[:2000]
        listing = http.get("/docs/operations").text
        assert 'id="auth.login"' in listing
        assert 'id="pubsub.subscribe"' in listing


def test_the_docs_files_serve_nothing_outside_their_folder(roost_server: RoostServer) -> None:
    with httpx.Client(base_url=roost_server.url) as http:
        for path in (
            "/docs/static/../../settings.py",
            "/docs/static/%2e%2e/%2e%2e/settings.py",
            "/docs/static/..%2f..%2fsettings.py",
            "/docs/static/%00",
            "/docs/static/",
        ):
            answer = http.get(path)
            assert answer.status_code in (400, 404), (path, answer.status_code)
        assert http.post("/docs/static/swagger-ui.css").status_code == 405
