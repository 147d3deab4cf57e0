"""The file door: streamed uploads and downloads (with Range), signed links, public buckets.

Bodies stream in chunks in both directions and are never held whole in memory, and are metered
as they pass; a download from the local blob store is handed to the server as an open file
instead, when the server offers that (`server/file_sending.py`). The door only speaks HTTP:
which file a request may read, and its bytes, come from `services/storage.py`; context, errors,
request ids and metering from the door kit (`server/dispatch.py`).

A user's file is served from the API's origin (and the dashboard's, at `/_/`), so it must never
run there as a page: every file answer says `Content-Disposition: attachment` (inline only for
raster images, which a browser shows as nothing but an image), `X-Content-Type-Options: nosniff`
and `Content-Security-Policy: default-src 'none'; sandbox`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from roost.errors import RoostError, ValidationError
from roost.server.dispatch import Dispatcher, check_access, error_response, headers_of
from roost.server.file_sending import ZERO_COPY
from roost.server.responses import encoded, request_id, response_codec
from roost.services.context import Context
from roost.services.storage import (
    Download,
    open_download,
    open_public_download,
    open_signed_download,
    store_file,
)
from roost.wire.codec import JSON

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
_PLAIN_NAME = re.compile(r"[^A-Za-z0-9._ -]")
METERED_PIECE = 1024 * 1024  # bytes of a file handed to the server at once, then metered


class _Call(msgspec.Struct):
    """One request through the file door: its id, and its caller once known (for metering)."""

    request: Request
    request_id: str
    headers: dict[str, str]
    ctx: Context | None = None


Endpoint = Callable[[_Call], Awaitable[Response]]


def file_routes(dispatcher: Dispatcher) -> list[Route]:
    door = FileDoor(dispatcher)
    object_path = "/api/v1/storage/buckets/{bucket}/objects/{name:path}"
    return [
        Route(object_path, door.route(door.upload), methods=["PUT"]),
        Route(object_path, door.route(door.download), methods=["GET", "HEAD"]),
        Route("/api/v1/storage/signed/{token}", door.route(door.signed), methods=["GET", "HEAD"]),
        Route(
            "/api/v1/storage/public/{tenant}/{bucket}/{name:path}",
            door.route(door.public),
            methods=["GET", "HEAD"],
        ),
    ]


class FileDoor:
    """HTTP around `services/storage.py`: streamed bodies, Range, ETags, safe headers. Each
    request goes through the door kit (context, errors, request id, metering) like any call."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def route(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            headers = headers_of(request.scope)
            call = _Call(request, request_id(headers.get("x-request-id")), headers)
            try:
                _refuse_nul(request.path_params)
                response = await endpoint(call)
            except Exception as exc:
                codec = response_codec(headers.get("accept"))
                response = error_response(exc, call.request_id, codec).as_response()
            # a streamed body is metered as it goes (`Dispatcher.metered`)
            sent = 0 if isinstance(response, StreamingResponse) else len(response.body)
            self.dispatcher.meter(call.ctx, bytes_out=sent)
            response.headers["X-Request-Id"] = call.request_id
            return response

        return guarded

    async def _identify(self, call: _Call, tenant: str | None = None) -> Context:
        call.ctx = await self.dispatcher.context_from_scope(
            call.request.scope, call.headers, call.request_id, tenant=tenant
        )
        return call.ctx

    async def upload(self, call: _Call) -> Response:
        ctx = await self._identify(call)
        check_access(ctx, "storage:write", "uploading a file")
        request = call.request
        stored = await store_file(
            ctx,
            request.path_params["bucket"],
            request.path_params["name"],
            call.headers.get("content-type", "application/octet-stream"),
            _metadata(request.headers.get("x-roost-metadata")),
            self.dispatcher.metered(ctx, request.stream(), incoming=True),
            sha256=call.headers.get("x-roost-sha256"),
        )
        return encoded(stored, response_codec(call.headers.get("accept"))).as_response()

    async def download(self, call: _Call) -> Response:
        ctx = await self._identify(call)
        check_access(ctx, "storage:read", "downloading a file")
        params = call.request.path_params
        return await self._serve(call, await open_download(ctx, params["bucket"], params["name"]))

    async def signed(self, call: _Call) -> Response:
        token = call.request.path_params["token"]
        found = await open_signed_download(self.dispatcher.platform, token)
        await self._identify(call, found.tenant)
        return await self._serve(call, found)

    async def public(self, call: _Call) -> Response:
        params = call.request.path_params
        found = await open_public_download(
            self.dispatcher.platform, params["tenant"], params["bucket"], params["name"]
        )
        await self._identify(call, found.tenant)
        return await self._serve(call, found)

    async def _serve(self, call: _Call, found: Download) -> Response:
        info = found.info
        headers = {
            "ETag": f'"{info.etag}"',
            "Accept-Ranges": "bytes",
            "X-Roost-Sha256": info.sha256,
            **_contained(info.name, info.content_type),
        }
        if call.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        start, end, status = 0, info.size - 1, 200
        wanted = call.headers.get("range")
        if wanted:
            start, end = _range(wanted, info.size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        headers["Content-Length"] = str(max(end - start + 1, 0))
        if call.request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=info.content_type)
        ctx = call.ctx
        assert ctx is not None
        if ZERO_COPY in call.request.scope.get("extensions", ()):
            file = await found.local_file()
            if file is not None:  # the server sends it (server/file_sending.py)

                def meter(count: int) -> None:
                    self.dispatcher.meter(ctx, bytes_out=count, calls=0)

                return _LocalFileResponse(
                    file,
                    start,
                    end - start + 1,
                    meter,
                    status_code=status,
                    headers=headers,
                    media_type=info.content_type,
                )
        chunks = self.dispatcher.metered(ctx, found.chunks(start, end), incoming=False)
        return StreamingResponse(
            chunks, status_code=status, headers=headers, media_type=info.content_type
        )


class _LocalFileResponse(Response):
    """An answer whose body is `count` bytes of a local file from `offset`, sent by the server
    (the ASGI zero-copy send extension; `server/file_sending.py`) a megabyte at a time,
    each `meter`ed once sent: a transfer cut short is metered for what it moved."""

    def __init__(
        self, file: BinaryIO, offset: int, count: int, meter: Callable[[int], None], **options: Any
    ) -> None:
        super().__init__(**options)
        self.file, self.offset, self.count, self.meter = file, offset, count, meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        offset, left = self.offset, self.count
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            while left > 0:
                count = min(left, METERED_PIECE)
                await send(
                    {
                        "type": ZERO_COPY,
                        "file": self.file,
                        "offset": offset,
                        "count": count,
                        "more_body": left > count,
                    }
                )
                self.meter(count)
                offset, left = offset + count, left - count
        except ConnectionResetError:
            return  # the client went away; what went out is metered
        finally:
            self.file.close()


def _refuse_nul(params: dict[str, str]) -> None:
    """Path parameters are text: none holds NUL, which PostgreSQL text cannot (a lookup of
    one would fail in the driver), on every backend alike."""
    for name, value in params.items():
        if "\x00" in value:
            raise ValidationError(f"{name} may not contain NUL (U+0000)", details={"field": name})


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
