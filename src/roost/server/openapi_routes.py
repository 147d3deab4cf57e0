"""The parts of the OpenAPI document that are not operations of the registry: the errors every
operation may answer, the headers every call takes, and the routes written as Starlette routes
(file upload and download, signed and public links, the provider callback, the WebSocket).

These routes are described by hand because they are hand-written routes, not registry
operations: their bodies are raw bytes, not wire types (only the upload's answer is one).
"""

from __future__ import annotations

from typing import Any

import msgspec

from roost.server.idempotency import KEY_PATTERN
from roost.server.ws import PATH as WS_PATH
from roost.wire.common import TenantName

REF = "#/components/schemas/{name}"
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {"sessionToken": []}]

COMMON_HEADERS: list[dict[str, Any]] = [
    # The headers' own constraints, so that a client (or a fuzzer) can tell a valid value from
    # one the server refuses before it reaches the operation.
    {
        "name": "X-Roost-Tenant",
        "in": "header",
        "required": False,
        "schema": msgspec.json.schema(TenantName),
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": KEY_PATTERN},
    },
]

_ERRORS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "400": (
        "invalid input: the field is named",
        "validation_error",
        "name: too long",
        {"field": "name"},
    ),
    "401": (
        "not signed in, or the credential is no longer valid",
        "not_authenticated",
        "sign in first",
        {},
    ),
    "403": ("the caller lacks the scope", "forbidden", "needs the scope 'kv:write'", {}),
    "404": ("what the call names does not exist", "not_found", "no table 'orders'", {}),
    "429": ("too many calls: retry after `Retry-After` seconds", "rate_limited", "slow down", {}),
}


def _error(status: str) -> dict[str, Any]:
    description, code, message, details = _ERRORS[status]
    example = {"error": {"code": code, "message": message, "details": details}}
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": REF.format(name="ErrorResponse")},
                "example": example,
            }
        },
    }


def error_responses(*, public: bool, scoped: bool) -> dict[str, Any]:
    """The error answers of an operation (each `{"error": {"code", "message", "details"}}`)."""
    statuses = ["400", "404", "429"]
    if not public:
        statuses.insert(1, "401")
    if scoped:
        statuses.insert(2 if not public else 1, "403")
    answers = {status: _error(status) for status in sorted(statuses)}
    answers["default"] = {
        "description": "any other error (5xx: the server's)",
        "content": {"application/json": {"schema": {"$ref": REF.format(name="ErrorResponse")}}},
    }
    return answers


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _file_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "ETag": {"schema": {"type": "string"}},
            "Content-Range": {"schema": {"type": "string"}, "description": "on 206"},
        },
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }


_RANGE = {
    "name": "Range",
    "in": "header",
    "required": False,
    "description": "`bytes=START-END`: part of the file (answered with 206)",
    "schema": {"type": "string", "pattern": r"^bytes=\d*-\d*$"},
}


def _download(
    operation_id: str, summary: str, parameters: list[dict[str, Any]], *, signed_in: bool
) -> dict[str, Any]:
    get: dict[str, Any] = {
        "operationId": operation_id,
        "tags": ["storage"],
        "summary": summary,
        "parameters": [*parameters, _RANGE],
        "responses": {
            "200": _file_answer("the file's bytes, streamed"),
            "206": _file_answer("the part of the file the Range asked for"),
            "304": {"description": "unchanged since the If-None-Match ETag"},
            **error_responses(public=not signed_in, scoped=signed_in),
        },
    }
    if signed_in:
        get["security"] = SECURITY
    head = {**get, "operationId": f"{operation_id}.head", "summary": f"{summary} (headers only)"}
    head["responses"] = {
        "200": {"description": "the file's headers"},
        **error_responses(public=not signed_in, scoped=signed_in),
    }
    return {"get": get, "head": head}


def route_paths(subscriptions: dict[str, Any]) -> dict[str, Any]:
    """Paths of the routes that are not registry operations."""
    bucket = _path_parameter("bucket", "the bucket's name")
    name = _path_parameter("name", "the file's name in the bucket (may hold `/`)")
    objects = {
        "put": {
            "operationId": "storage.upload",
            "tags": ["storage"],
            "summary": "Upload a file: the body's bytes, streamed (scope `storage:write`).",
            "parameters": [
                bucket,
                name,
                {
                    "name": "X-Roost-Metadata",
                    "in": "header",
                    "required": False,
                    "description": "a JSON object kept with the file",
                    "schema": {"type": "string"},
                },
                {
                    "name": "X-Roost-Sha256",
                    "in": "header",
                    "required": False,
                    "description": "the body's sha256 in hex: the upload is refused if it differs",
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "200": {
                    "description": "the stored file",
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(name="StoredObject")}}
                    },
                },
                **error_responses(public=False, scoped=True),
            },
            "security": SECURITY,
        },
        **_download(
            "storage.download",
            "Download a file (scope `storage:read`), whole or a Range of it.",
            [bucket, name],
            signed_in=True,
        ),
    }
    signed = _download(
        "storage.download_signed",
        "Download a file by a signed link (`storage.create_signed_url`): no credentials.",
        [_path_parameter("token", "the link's token")],
        signed_in=False,
    )
    public = _download(
        "storage.download_public",
        "Download a file of a public bucket: no credentials.",
        [_path_parameter("tenant", "the tenant's name"), bucket, name],
        signed_in=False,
    )
    callback = {
        "get": {
            "operationId": "auth.provider_callback",
            "tags": ["auth"],
            "summary": "Where an OAuth2 / OpenID Connect provider sends the browser back; "
            "redirects to the app's page with `?roost_code=` or `?roost_error=`.",
            "parameters": [
                _path_parameter("tenant", "the tenant's name"),
                {"name": "state", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "code", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "error", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "303": {"description": "to the app's return page"},
                **error_responses(public=True, scoped=False),
            },
        }
    }
    listed = "\n".join(
        f"- `{name}` (scope `{item['scope']}`): {item['summary']}"
        for name, item in subscriptions.items()
    )
    websocket = {
        "get": {
            "operationId": "websocket",
            "tags": ["realtime"],
            "summary": "The WebSocket door: every operation by name, streams and subscriptions.",
            "description": "Upgrade to a WebSocket, with the credential as for HTTP (or "
            "`?access_token=` / `?api_key=`, and `?tenant=`, where a browser cannot set "
            'headers). Frames: `{"id", "method", "params"}` calls, answered `{"id", '
            '"result"}` or `{"id", "error"}`; streamed operations answer `{"id", "chunk"}` '
            'frames then `{"id", "end": true}`; subscriptions answer `{"sub", "event"}` '
            "frames. Subscriptions (their params and events are in `x-roost-subscriptions`):\n"
            + listed,
            "parameters": [COMMON_HEADERS[0]],
            "responses": {
                "101": {"description": "switching to the WebSocket protocol"},
                **error_responses(public=False, scoped=False),
            },
            "security": SECURITY,
            "x-roost-subscriptions": sorted(subscriptions),
        }
    }
    return {
        "/api/v1/storage/buckets/{bucket}/objects/{name}": objects,
        "/api/v1/storage/signed/{token}": signed,
        "/api/v1/storage/public/{tenant}/{bucket}/{name}": public,
        "/api/v1/auth/providers/{tenant}/callback": callback,
        WS_PATH: websocket,
    }
