"""The OpenAPI document, generated from the operation registry, and the `/docs` page.

Unary and streamed operations are paths (a streamed one answers NDJSON lines); subscriptions,
which only the WebSocket door serves, are listed under `x-roost-subscriptions` with their
parameters, event and scope.
"""

from __future__ import annotations

import html
import json
from typing import Any

import msgspec

from roost._version import __version__
from roost.server.idempotency import KEY_PATTERN
from roost.server.ws import PATH as WS_PATH
from roost.services.registry import Operation, Registry
from roost.wire.common import BatchRequest, BatchResponse, ErrorResponse, TenantName

_REF = "#/components/schemas/{name}"


def openapi_document(registry: Registry) -> dict[str, Any]:
    ops = list(registry)
    types = [t for op in ops for t in (op.input_type, op.output_type)]
    types += [ErrorResponse, BatchRequest, BatchResponse]
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    by_type = iter(schemas)
    paths: dict[str, Any] = {}
    subscriptions: dict[str, Any] = {}
    for op in ops:
        input_schema, output_schema = next(by_type), next(by_type)
        if op.kind == "subscription":
            subscriptions[op.name] = _subscription_item(op, input_schema, output_schema)
            continue
        item = _path_item(op, input_schema, output_schema)
        paths[f"/api/v1/{op.module}/{op.name.split('.', 1)[1]}"] = item
        for method, path in op.aliases:
            paths[f"/api/v1{path}"] = {method.lower(): item["post"]}
    error_ref, batch_in, batch_out = next(by_type), next(by_type), next(by_type)
    paths["/api/v1/batch"] = {
        "post": {
            "operationId": "batch",
            "tags": ["batch"],
            "summary": "Run several operations in one request, each with its own status.",
            "requestBody": {"required": True, "content": _content(batch_in)},
            "responses": {
                "200": {"description": "results", "content": _content(batch_out)},
                "default": {"description": "error", "content": _content(error_ref)},
            },
        }
    }
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


def _path_item(op: Operation, input_schema: Any, output_schema: Any) -> dict[str, Any]:
    answer = {"description": "success", "content": _content(output_schema)}
    if op.kind == "stream":
        answer = {
            "description": 'one JSON line per item, `{"chunk": item}`, then `{"end": true}`, or '
            '`{"error": {...}}` after the items sent so far. On the WebSocket door: '
            '`{"id", "chunk"}` frames, then `{"id", "end": true}`.',
            "content": {"application/x-ndjson": {"schema": _line(output_schema)}},
        }
    post: dict[str, Any] = {
        "operationId": op.name,
        "tags": [op.module],
        "summary": op.summary.split("\n", 1)[0],
        "description": op.summary + (f"\n\nScope: `{op.scope}`" if op.scope else ""),
        "requestBody": {"required": False, "content": _content(input_schema)},
        "responses": {
            "200": answer,
            "default": {
                "description": "error",
                "content": _content({"$ref": _REF.format(name="ErrorResponse")}),
            },
        },
        "parameters": [
            # The headers' own constraints, so that a client (or a fuzzer) can tell a valid
            # value from one the server refuses before it reaches the operation.
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
        ],
    }
    if op.kind != "unary":
        post["x-roost-kind"] = op.kind
    if op.access != "public":
        post["security"] = [{"bearer": []}, {"apiKey": []}, {"sessionToken": []}]
    return {"post": post}


def _line(item: Any) -> dict[str, Any]:
    """One NDJSON line of a streamed answer."""
    return {
        "type": "object",
        "properties": {
            "chunk": item,
            "end": {"type": "boolean"},
            "error": {"$ref": _REF.format(name="ErrorBody")},
        },
    }


def _content(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}, "application/msgpack": {"schema": schema}}


def docs_page(registry: Registry) -> str:
    """A self-contained HTML page of every operation (no CDN: it works offline)."""
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
<code>X-Session-Token</code>; choose a tenant with <code>X-Roost-Tenant</code>.</p>
{body}</body></html>"""
