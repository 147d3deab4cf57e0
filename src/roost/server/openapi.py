"""The OpenAPI document, generated from the operation registry, and the `/docs` pages.

Unary and streamed operations are paths (a streamed one answers NDJSON lines), their request
and response schemas those of their wire types (`roost.wire`), each with an example made from
the schema (`examples.py`) and the errors it may answer. The routes that are not operations
(file upload and download, signed and public links, the provider callback, the WebSocket) are
written out here by hand. Subscriptions, which only the WebSocket door serves, are listed on
its path and under `x-roost-subscriptions` with their parameters, event and scope.

`/docs` is Swagger UI, served from the `swagger-ui-py` package's files (no CDN: it works
offline); `/docs/operations` is a plain page of every operation, without JavaScript.
"""

from __future__ import annotations

import html
import importlib.util
import json
from pathlib import Path
from typing import Any

import msgspec
from starlette.staticfiles import StaticFiles

from roost._version import __version__
from roost.server.openapi_examples import Examples
from roost.server.openapi_routes import (
    COMMON_HEADERS,
    REF,
    SECURITY,
    error_responses,
    route_paths,
)
from roost.server.ws import PATH as WS_PATH
from roost.services.registry import Operation, Registry
from roost.wire.common import BatchRequest, BatchResponse, ErrorResponse
from roost.wire.storage import StoredObject


def openapi_document(registry: Registry) -> dict[str, Any]:
    ops = list(registry)
    types = [t for op in ops for t in (op.input_type, op.output_type)]
    types += [ErrorResponse, BatchRequest, BatchResponse, StoredObject]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    examples = Examples(components)
    by_type = iter(schemas)
    paths: dict[str, Any] = {}
    subscriptions: dict[str, Any] = {}
    for op in ops:
        input_schema, output_schema = next(by_type), next(by_type)
        if op.kind == "subscription":
            subscriptions[op.name] = _subscription_item(op, input_schema, output_schema)
            continue
        item = _path_item(op, input_schema, output_schema, examples)
        paths[f"/api/v1/{op.module}/{op.name.split('.', 1)[1]}"] = item
        for method, path in op.aliases:
            # the same operation at another path and method: an operation id of its own
            alias = {**item["post"], "operationId": f"{op.name}.{method.lower()}"}
            if method.upper() in ("GET", "HEAD"):
                alias.pop("requestBody", None)
            paths[f"/api/v1{path}"] = {method.lower(): alias}
    next(by_type)  # ErrorResponse, referred to by name (as StoredObject, after the batch)
    batch_in, batch_out = next(by_type), next(by_type)
    paths["/api/v1/batch"] = {
        "post": {
            "operationId": "batch",
            "tags": ["batch"],
            "summary": "Run several operations in one request, each with its own status.",
            "requestBody": {"required": True, "content": _content(batch_in, examples)},
            "responses": {
                "200": {"description": "results", "content": _content(batch_out, examples)},
                **error_responses(public=False, scoped=False),
            },
        }
    }
    paths.update(route_paths(subscriptions))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Roost",
            "version": __version__,
            "description": "Every operation of the platform. Errors are "
            '`{"error": {"code", "message", "details"}}`.',
        },
        "paths": paths,
        "x-roost-subscriptions": subscriptions,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Api-Key <key>`",
                },
                "sessionToken": {"type": "apiKey", "in": "header", "name": "X-Session-Token"},
            },
        },
    }


def _subscription_item(op: Operation, params: Any, event: Any) -> dict[str, Any]:
    return {
        "summary": op.summary.split("\n", 1)[0],
        "description": op.summary,
        "scope": op.scope,
        "frame": f'{{"id", "method": "{op.name}", "params"}} on {WS_PATH}; events come as '
        '{"sub", "event"} frames',
        "params": params,
        "event": event,
    }


def _path_item(
    op: Operation, input_schema: Any, output_schema: Any, examples: Examples
) -> dict[str, Any]:
    answer = {"description": "success", "content": _content(output_schema, examples)}
    if op.kind == "stream":
        answer = {
            "description": 'one JSON line per item, `{"chunk": item}`, then `{"end": true}`, or '
            '`{"error": {...}}` after the items sent so far. On the WebSocket door: '
            '`{"id", "chunk"}` frames, then `{"id", "end": true}`.',
            "content": {
                "application/x-ndjson": {
                    "schema": _line(output_schema),
                    "example": {"chunk": examples.of(output_schema)},
                }
            },
        }
    post: dict[str, Any] = {
        "operationId": op.name,
        "tags": [op.module],
        "summary": op.summary.split("\n", 1)[0],
        "description": op.summary + (f"\n\nScope: `{op.scope}`" if op.scope else ""),
        "requestBody": {"required": False, "content": _content(input_schema, examples)},
        "responses": {
            "200": answer,
            **error_responses(public=op.access == "public", scoped=bool(op.scope)),
        },
        "parameters": COMMON_HEADERS,
    }
    if op.kind != "unary":
        post["x-roost-kind"] = op.kind
    if op.access != "public":
        post["security"] = SECURITY
    return {"post": post}


def _line(item: Any) -> dict[str, Any]:
    """One NDJSON line of a streamed answer."""
    return {
        "type": "object",
        "properties": {
            "chunk": item,
            "end": {"type": "boolean"},
            "error": {"$ref": REF.format(name="ErrorBody")},
        },
    }


def _content(schema: Any, examples: Examples) -> dict[str, Any]:
    example = examples.of(schema)
    return {
        "application/json": {"schema": schema, "example": example},
        "application/msgpack": {"schema": schema},
    }


def operations_page(registry: Registry) -> str:
    """A self-contained HTML page of every operation, without JavaScript."""
    document = openapi_document(registry)
    sections = []
    for op in registry:
        path = f"/api/v1/{op.module}/{op.name.split('.', 1)[1]}"
        access = (
            "public"
            if op.access == "public"
            else (f"scope <code>{op.scope}</code>" if op.scope else "signed in")
        )
        if op.kind == "subscription":
            where = f"<b>subscription</b> on <code>{WS_PATH}</code>: events as sub frames"
            schema = document["x-roost-subscriptions"][op.name]["params"]
        else:
            where = f"<b>POST</b> <code>{path}</code>"
            if op.kind == "stream":
                where += " · <b>streamed</b>: NDJSON lines, or chunk frames on the WebSocket"
            body = document["paths"][path]["post"]["requestBody"]
            schema = body["content"]["application/json"]["schema"]
        sections.append(
            f'<section id="{op.name}"><h3><code>{op.name}</code></h3>'
            f"<p>{where} · {access}</p>"
            f"<p>{html.escape(op.summary)}</p><details><summary>parameters</summary>"
            f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre></details></section>"
        )
    return _PAGE.format(version=__version__, count=len(registry), body="\n".join(sections))


def swagger_static() -> StaticFiles:
    """Swagger UI's files, as the `swagger-ui-py` package ships them (Swagger UI 5: OpenAPI
    3.1), served from this server: the docs load nothing from elsewhere. Found without
    importing the package: its module loads jinja2 (~0.1 s of every start) for nothing used."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("swagger-ui-py is not installed")
    return StaticFiles(directory=str(Path(spec.submodule_search_locations[0]) / "static"))


def swagger_page() -> str:
    """The `/docs` page: Swagger UI over `/api/v1/openapi.json`, "Try it out" on. The token
    typed in Authorize lives in the page only (not kept in the browser's local storage, where
    any script of the API's origin could read it): a reload asks for it again."""
    return _SWAGGER.format(version=__version__)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Roost API</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
code,pre{{background:#f4f4f4;padding:.1rem .3rem}}section{{border-top:1px solid #ddd}}</style>
</head><body><h1>Roost API {version}</h1>
<p>{count} operations (streamed ones answer NDJSON; subscriptions are served on the
WebSocket door only). Each of the others is
<code>POST /api/v1/&lt;module&gt;/&lt;operation&gt;</code> with a JSON or MessagePack body; the
machine-readable form is
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>. Authenticate with
<code>Authorization: Bearer &lt;jwt&gt;</code>, <code>Authorization: Api-Key &lt;key&gt;</code> or
<code>X-Session-Token</code>; choose a tenant with <code>X-Roost-Tenant</code>.
<a href="/docs">/docs</a> shows each one's fields and examples, and tries a call.</p>
{body}</body></html>"""

_SWAGGER = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Roost API {version}</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png" sizes="32x32">
</head><body>
<p style="font:14px system-ui,sans-serif;margin:1rem 2rem">Every operation, without
JavaScript: <a href="/docs/operations">/docs/operations</a>. Authorize with
<code>Bearer &lt;jwt&gt;</code> (bearer), <code>Api-Key &lt;key&gt;</code> (apiKey) or a
session token.</p>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
<script>
window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: true,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  }});
}};
</script>
</body></html>"""
