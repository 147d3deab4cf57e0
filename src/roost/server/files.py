"""The file door: streamed uploads and downloads (with Range), signed links, public buckets.

Bodies stream in chunks in both directions and are never held whole in memory.

A user's file is served from the API's origin (and the dashboard's, at `/_/`), so it must never
run there as a page: every file answer says `Content-Disposition: attachment` (inline only for
raster images, which a browser shows as nothing but an image), `X-Content-Type-Options: nosniff`
and `Content-Security-Policy: default-src 'none'; sandbox`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import RowMapping
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from roost.errors import NotFoundError, RoostError, ValidationError
from roost.server.dispatch import Dispatcher, headers_of, require_scope
from roost.server.responses import as_roost_error, encoded, error_reply, request_id, response_codec
from roost.services.context import Context
from roost.services.storage import blob_key, find_file, read_link, store_file
from roost.services.tenants import ensure_exists
from roost.wire.codec import JSON

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
_PLAIN_NAME = re.compile(r"[^A-Za-z0-9._ -]")
Endpoint = Callable[[Request], Awaitable[Response]]


def file_routes(dispatcher: Dispatcher) -> list[Route]:
    object_path = "/api/v1/storage/buckets/{bucket}/objects/{name:path}"
    return [
        Route(object_path, _guarded(_upload(dispatcher)), methods=["PUT"]),
        Route(object_path, _guarded(_download(dispatcher)), methods=["GET", "HEAD"]),
        Route(
            "/api/v1/storage/signed/{token}", _guarded(_signed(dispatcher)), methods=["GET", "HEAD"]
        ),
        Route(
            "/api/v1/storage/public/{tenant}/{bucket}/{name:path}",
            _guarded(_public(dispatcher)),
            methods=["GET", "HEAD"],
        ),
    ]


def _guarded(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        try:
            _refuse_nul(request.path_params)
            return await endpoint(request)
        except Exception as exc:
            rid = request_id(request.headers.get("x-request-id"))
            codec = response_codec(request.headers.get("accept"))
            return error_reply(as_roost_error(exc, rid), codec, rid).as_response()

    return guarded


def _refuse_nul(params: dict[str, str]) -> None:
    """Path parameters are text: none holds NUL, which PostgreSQL text cannot (a lookup of
    one would fail in the driver), on every backend alike."""
    for name, value in params.items():
        if "\x00" in value:
            raise ValidationError(f"{name} may not contain NUL (U+0000)", details={"field": name})


async def _context(dispatcher: Dispatcher, request: Request) -> Context:
    headers = headers_of(request.scope)
    return await dispatcher.identify(
        headers,
        host=headers.get("host", ""),
        client_address=request.client.host if request.client else "",
    )


def _upload(dispatcher: Dispatcher) -> Endpoint:
    async def upload(request: Request) -> Response:
        ctx = await _context(dispatcher, request)
        require_scope(ctx, "storage:write", "uploading a file")
        metadata = _metadata(request.headers.get("x-roost-metadata"))
        stored = await store_file(
            ctx,
            request.path_params["bucket"],
            request.path_params["name"],
            request.headers.get("content-type", "application/octet-stream"),
            metadata,
            request.stream(),
            sha256=request.headers.get("x-roost-sha256"),
        )
        return encoded(stored, response_codec(request.headers.get("accept"))).as_response()

    return upload


def _download(dispatcher: Dispatcher) -> Endpoint:
    async def download(request: Request) -> Response:
        ctx = await _context(dispatcher, request)
        require_scope(ctx, "storage:read", "downloading a file")
        return await _serve(
            dispatcher,
            request,
            ctx.tenant,
            request.path_params["bucket"],
            request.path_params["name"],
        )

    return download


def _signed(dispatcher: Dispatcher) -> Endpoint:
    async def signed(request: Request) -> Response:
        tenant, bucket, name = read_link(dispatcher.platform, request.path_params["token"])
        await ensure_exists(dispatcher.platform, tenant)  # a deleted tenant's links: 404
        return await _serve(dispatcher, request, tenant, bucket, name)

    return signed


def _public(dispatcher: Dispatcher) -> Endpoint:
    async def public(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        found: tuple[RowMapping, RowMapping] | None
        try:
            await ensure_exists(dispatcher.platform, tenant)
            found = await find_file(
                dispatcher.platform,
                tenant,
                request.path_params["bucket"],
                request.path_params["name"],
            )
        except (NotFoundError, ValidationError):
            found = None
        if found is None or (found[1]["visibility"] or found[0]["visibility"]) != "public":
            # the same answer whether the file is missing or private: nothing to learn here
            raise NotFoundError("no public file here")
        return await _serve(dispatcher, request, tenant, found[0]["name"], found[1]["name"])

    return public


async def _serve(
    dispatcher: Dispatcher, request: Request, tenant: str, bucket_name: str, name: str
) -> Response:
    bucket, row = await find_file(dispatcher.platform, tenant, bucket_name, name)
    size = row["size"]
    headers = {
        "ETag": f'"{row["etag"]}"',
        "Accept-Ranges": "bytes",
        "X-Roost-Sha256": row["sha256"],
        **_contained(name, row["content_type"]),
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size - 1, 200
    wanted = request.headers.get("range")
    if wanted:
        start, end = _range(wanted, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(end - start + 1, 0))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=row["content_type"])
    key = blob_key(tenant, bucket["id"], row["id"])
    chunks = dispatcher.platform.blobs.get(key, start=start, end=end) if size else _nothing()
    return StreamingResponse(
        chunks, status_code=status, headers=headers, media_type=row["content_type"]
    )


def _contained(name: str, content_type: str) -> dict[str, str]:
    """The headers that keep a user's file from acting as a page of the API's origin."""
    essence = content_type.split(";", 1)[0].strip().lower()
    filename = name.rsplit("/", 1)[-1] or "file"
    # an ASCII stand-in for old clients (no quote, backslash or line break can get in), and
    # the exact name percent-encoded (RFC 6266 / 8187)
    plain = _PLAIN_NAME.sub("_", filename)
    disposition = "inline" if essence in _INLINE_TYPES else "attachment"
    return {
        "Content-Disposition": (
            f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


def _range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise _unsatisfiable(header, size)
    if not match.group(1):  # the last N bytes
        start, end = max(size - int(match.group(2)), 0), size - 1
    else:
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    if start > end or start >= size:
        raise _unsatisfiable(header, size)
    return start, end


def _unsatisfiable(header: str, size: int) -> RoostError:
    return ValidationError(
        f"range {header[:40]!r} does not fit a file of {size} bytes",
        code="range_not_satisfiable",
        status_code=416,
        details={"field": "Range", "size": size},
    )


def _metadata(header: str | None) -> dict[str, Any]:
    """The X-Roost-Metadata header, decoded and checked like any request body."""
    if not header:
        return {}
    try:
        # Starlette decodes headers as latin-1: back to the bytes the client sent.
        return JSON.decode_input(header.encode("latin-1"), dict[str, Any], "X-Roost-Metadata")
    except ValidationError as exc:
        field = exc.details.get("field")
        exc.details["field"] = f"metadata.{field}" if field else "metadata"
        raise
