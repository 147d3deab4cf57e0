"""The REST door: `POST /api/v1/<module>/<op>` for every operation, and `POST /api/v1/batch`."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from roost.errors import (
    APIError,
    PayloadTooLargeError,
    RoostError,
    ValidationError,
)
from roost.server import idempotency
from roost.server.dispatch import Dispatcher, decode_body
from roost.server.responses import as_roost_error, encoded, error_response, response_codec
from roost.services.context import Context
from roost.services.registry import Operation
from roost.wire.codec import JSON, Codec, codec_for, format_of
from roost.wire.common import BatchRequest, BatchResponse, BatchResult, ErrorBody

Outcome = tuple[int, Any]


def api_routes(dispatcher: Dispatcher) -> list[BaseRoute]:
    """One route per operation (and its aliases), then the batch route."""
    routes: list[BaseRoute] = []
    for op in dispatcher.registry:
        methods = ["POST", "GET"] if op.read_only else ["POST"]
        endpoint = _operation_endpoint(dispatcher, op)
        routes.append(
            Route(
                f"/api/v1/{op.module}/{op.name.split('.', 1)[1]}",
                endpoint,
                methods=methods,
                name=op.name,
            )
        )
        for method, path in op.aliases:
            routes.append(Route(f"/api/v1{path}", endpoint, methods=[method]))
    routes.append(Route("/api/v1/batch", _batch_endpoint(dispatcher), methods=["POST"]))
    return routes


def _operation_endpoint(
    dispatcher: Dispatcher, op: Operation
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        async def run(ctx: Context, body: bytes, codec: Codec) -> Outcome:
            return 200, await dispatcher.invoke(ctx, op, body, codec)

        return await _handle(dispatcher, request, run, mutating=not op.read_only)

    return endpoint


def _batch_endpoint(dispatcher: Dispatcher) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        async def run(ctx: Context, body: bytes, codec: Codec) -> Outcome:
            batch = decode_body(body, codec, BatchRequest, "batch")
            results = []
            for item in batch.operations:
                try:
                    op = dispatcher.operation(item.command)
                    payload = await dispatcher.invoke(ctx, op, bytes(item.payload), codec)
                    results.append(BatchResult(status="success", payload=payload))
                except APIError as exc:
                    results.append(
                        BatchResult(
                            status="error",
                            error=ErrorBody(
                                code=exc.code, message=exc.message, details=exc.details
                            ),
                        )
                    )
            return 200, BatchResponse(results=results)

        return await _handle(dispatcher, request, run, mutating=True)

    return endpoint


async def _handle(
    dispatcher: Dispatcher,
    request: Request,
    run: Callable[[Context, bytes, Codec], Awaitable[Outcome]],
    *,
    mutating: bool,
) -> Response:
    request_id: str = request.scope.get("state", {}).get("request_id", "")
    codec = response_codec(request)
    try:
        body = await _read_body(request, dispatcher.platform.settings.max_body_bytes)
        in_codec = _request_codec(request, body)
        codec = response_codec(request, fallback=in_codec)
        ctx = await dispatcher.identify(
            request.headers,
            host=request.headers.get("host", ""),
            client_address=request.client.host if request.client else "",
            request_id=request_id,
        )
        key = request.headers.get("idempotency-key")
        if mutating and key is not None:
            status, payload = await idempotency.run_once(
                ctx,
                key,
                request.url.path.encode() + b"\0" + body,
                lambda: run(ctx, body, in_codec),
            )
        else:
            status, payload = await run(ctx, body, in_codec)
        return encoded(payload, codec, status)
    except Exception as exc:
        return error_response(as_roost_error(exc, request_id), codec)


def _request_codec(request: Request, body: bytes) -> Codec:
    content_type = request.headers.get("content-type")
    fmt = format_of(content_type)
    if fmt is not None:
        return codec_for(fmt)
    if not body:
        return JSON
    raise ValidationError(
        f"unsupported Content-Type {content_type!r}; send application/json or application/msgpack",
        code="unsupported_media_type",
        status_code=415,
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (also after gunzip)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        return _gunzip(body, limit)
    if encoding != "identity":
        raise ValidationError(
            f"unsupported Content-Encoding {encoding!r}; use gzip or none",
            code="unsupported_media_type",
            status_code=415,
        )
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ValidationError("the body is not valid gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    return data


def _too_large(limit: int) -> RoostError:
    return PayloadTooLargeError(
        f"the body is larger than {limit} bytes, the server's limit", details={"limit": limit}
    )
