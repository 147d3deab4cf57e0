"""The REST door: `POST /api/v1/<module>/<op>` for every operation, `POST /api/v1/fn/<name>`
for every deployed function, and `POST /api/v1/batch`.

A plain ASGI app in front of Starlette: an operation's path is found in a dict and its body read
straight from `receive`, so an API call pays for no Request, Response or route matching.
Anything else (docs, OpenAPI, unknown paths, lifespan) goes on to the Starlette app behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NoReturn

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from roost.errors import PayloadTooLargeError, RoostError, ValidationError
from roost.server import idempotency
from roost.server.dispatch import (
    Dispatcher,
    check_access,
    check_operation,
    decode_body,
    error_response,
    guard,
    headers_of,
)
from roost.server.responses import (
    ANSWERED,
    NOSNIFF,
    Reply,
    encoded,
    request_id,
    response_codec,
)
from roost.services.context import Context
from roost.services.registry import Operation
from roost.wire.codec import JSON, Codec, codec_for, format_of
from roost.wire.common import BatchRequest, BatchResponse, BatchResult, ErrorBody

Outcome = tuple[int, Any]
Runner = Callable[[Context, bytes, Codec], Awaitable[Outcome]]
Admit = Callable[[Context, bytes, Codec], None]


class _Route(msgspec.Struct, frozen=True):
    run: Runner
    admit: Admit  # the access check, run before an Idempotency-Key's recorded answer is read
    methods: frozenset[str]
    mutating: bool
    name: str
    streamed: Operation | None = None  # a streamed operation: NDJSON lines, not one answer
    # the operation `run` invokes (None for the batch): `_handle` invokes it itself, without
    # the coroutine layer of `run`, when no Idempotency-Key asks for `run` to be recorded
    op: Operation | None = None


class RestDoor:
    """Serves the registry's operations over HTTP; passes every other request to `fallback`."""

    def __init__(self, dispatcher: Dispatcher, fallback: ASGIApp) -> None:
        self.dispatcher = dispatcher
        self.fallback = fallback
        self.routes: dict[str, _Route] = {
            "/api/v1/batch": _Route(
                self._run_batch, self._admit_batch, frozenset({"POST"}), True, "batch"
            )
        }
        for op in dispatcher.registry:
            if op.kind == "subscription":
                continue  # served on the WebSocket door only
            methods = frozenset({"POST", "GET"} if op.read_only else {"POST"})
            streamed = op if op.kind == "stream" else None
            route = _Route(
                _runner(dispatcher, op),
                _admitter(op),
                methods,
                not op.read_only,
                op.name,
                streamed,
                op,
            )
            self.routes[f"/api/v1/{op.module}/{op.name.split('.', 1)[1]}"] = route
            for method, path in op.aliases:
                self.routes[f"/api/v1{path}"] = _Route(
                    route.run, route.admit, frozenset({method}), route.mutating, op.name, op=op
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            if scope["type"] == "http" and scope["path"].startswith(_FUNCTIONS):
                await self._function(scope, receive, send)
            else:
                await self.fallback(scope, receive, send)
            return
        if route.streamed is not None:
            await self._stream(route, route.streamed, scope, receive, send)
            return
        reply = await self._handle(route, scope, receive)
        scope[ANSWERED] = (reply.status, reply.headers.get("X-Request-Id", ""))
        # `reply.send` written out: one coroutine layer less for every call
        await send(reply.start_message())
        await send({"type": "http.response.body", "body": reply.body})

    async def _function(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /api/v1/fn/<name>`: the deployed function `name` of the caller's tenant,
        answered as a unary call or as NDJSON lines if its handler is a generator."""
        headers = headers_of(scope)
        rid = request_id(headers.get("x-request-id"))
        method = "fn." + scope["path"].removeprefix(_FUNCTIONS)
        try:
            ctx = await self.dispatcher.context_from_scope(scope, headers, rid)
            op = await self.dispatcher.resolve(ctx, method)
        except Exception as exc:
            await error_response(exc, rid, response_codec(headers.get("accept"))).send(send)
            return
        streamed = op if op.kind == "stream" else None
        run, admit = _runner(self.dispatcher, op), _admitter(op)
        route = _Route(run, admit, frozenset({"POST"}), True, op.name, streamed, op)
        if streamed is not None:
            await self._stream(route, streamed, scope, receive, send)
            return
        reply = await self._handle(route, scope, receive)
        await reply.send(send)

    async def _handle(self, route: _Route, scope: Scope, receive: Receive) -> Reply:
        headers = headers_of(scope)
        rid = request_id(headers.get("x-request-id"))
        # `response_codec` written out: the Accept header read once for every call
        accepted = format_of(headers.get("accept"))
        codec = JSON if accepted is None else codec_for(accepted)
        ctx: Context | None = None
        body = b""
        try:
            if scope["method"] not in route.methods:
                _refuse_method(route, scope)
            body = await _read_body(
                receive, headers, self.dispatcher.platform.settings.max_body_bytes
            )
            in_codec = _request_codec(headers.get("content-type"), body)
            if accepted is None:  # the answer in the format of the request
                codec = in_codec
            ctx = await self.dispatcher.context_from_scope(scope, headers, rid)
            key = headers.get("idempotency-key")
            if route.mutating and key is not None:
                # a replay answers only a caller who may make the request: a narrow key
                # replaying an admin's api_keys.create must not get the admin's key
                route.admit(ctx, body, in_codec)
                request = scope["path"].encode() + b"\0" + body
                status, payload = await idempotency.run_once(
                    ctx,
                    key,
                    request,
                    lambda: route.run(ctx, body, in_codec),
                    in_write=route.op is not None and route.op.answered_in_write,
                )
            elif route.op is not None:  # `route.run` written out (a coroutine layer less)
                status, payload = 200, await self.dispatcher.invoke(ctx, route.op, body, in_codec)
            else:
                status, payload = await route.run(ctx, body, in_codec)
            reply = encoded(
                payload,
                codec,
                status,
                request_id=rid,
                accept_encoding=headers.get("accept-encoding"),
            )
        except Exception as exc:
            reply = error_response(exc, rid, codec)
        self.dispatcher.meter(ctx, len(body), len(reply.body))
        return reply

    async def _stream(
        self, route: _Route, op: Operation, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A streamed operation as NDJSON: `{"chunk": item}` lines, then `{"end": true}` or
        `{"error": {...}}`. A refusal before the first item is an ordinary error answer. The
        next item is asked for only once the last one is written (the server's flow control),
        and the handler's generator is closed when the client goes away."""
        headers = headers_of(scope)
        rid = request_id(headers.get("x-request-id"))
        ctx: Context | None = None
        body = b""
        try:
            if scope["method"] not in route.methods:
                _refuse_method(route, scope)
            body = await _read_body(
                receive, headers, self.dispatcher.platform.settings.max_body_bytes
            )
            in_codec = _request_codec(headers.get("content-type"), body)
            ctx = await self.dispatcher.context_from_scope(scope, headers, rid)
            items = self.dispatcher.stream(ctx, op, body, in_codec)
            first = await anext(items, _NOTHING)
        except Exception as exc:
            codec = response_codec(headers.get("accept"))
            reply = error_response(exc, rid, codec)
            self.dispatcher.meter(ctx, len(body), len(reply.body))
            scope[ANSWERED] = (reply.status, rid)
            await reply.send(send)
            return
        scope[ANSWERED] = (200, rid)
        lines = _Lines(send, rid)
        pump = asyncio.create_task(lines.write(first, items))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, gone):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            self.dispatcher.meter(ctx, len(body), lines.sent)

    def _admit_batch(self, ctx: Context, body: bytes, codec: Codec) -> None:
        """With an Idempotency-Key a batch is admitted whole: every operation in it must be
        one the caller may run (without one, each refusal answers for its own item). An
        unknown operation, or one of another kind, still answers for its own item."""
        for item in decode_body(body, codec, BatchRequest, "batch").operations:
            op = self.dispatcher.registry.get(item.command)
            if op is not None:
                check_access(ctx, op.scope, op.name, public=op.access == "public")

    async def _run_batch(self, ctx: Context, body: bytes, codec: Codec) -> Outcome:
        batch = decode_body(body, codec, BatchRequest, "batch")
        results = []
        for item in batch.operations:
            try:
                op = self.dispatcher.operation(item.command)
                payload = await self.dispatcher.invoke(ctx, op, bytes(item.payload), codec)
                results.append(BatchResult(status="success", payload=payload))
            except Exception as exc:  # the calls before it ran: each answers for itself
                error = ErrorBody(**guard(exc, ctx.request_id).to_dict())
                results.append(BatchResult(status="error", error=error))
        return 200, BatchResponse(results=results)


_NOTHING: Any = object()
_FUNCTIONS = "/api/v1/fn/"  # + a function's name: the RPC method fn.<name> over HTTP


class _Lines:
    """Writes a stream's items as NDJSON lines, counting the bytes sent."""

    def __init__(self, send: Send, rid: str) -> None:
        self.send, self.rid, self.sent = send, rid, 0

    async def write(self, first: Any, items: AsyncGenerator[Any, None]) -> None:
        raw = [
            (b"content-type", b"application/x-ndjson"),
            (b"x-request-id", self.rid.encode()),
            *((name.lower().encode(), value.encode()) for name, value in NOSNIFF.items()),
        ]
        await self.send({"type": "http.response.start", "status": 200, "headers": raw})
        async with contextlib.aclosing(items):
            try:
                if first is not _NOTHING:
                    await self._line({"chunk": first})
                    async for item in items:
                        await self._line({"chunk": item})
                last: dict[str, Any] = {"end": True}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # after some items: the last line says why it stopped
                last = {"error": guard(exc, self.rid).to_dict()}
        await self._line(last)
        await self.send({"type": "http.response.body", "body": b""})

    async def _line(self, payload: Any) -> None:
        data = JSON.encode(payload) + b"\n"
        self.sent += len(data)
        await self.send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _refuse_method(route: _Route, scope: Scope) -> NoReturn:
    """Raise the 405 of a method `route` does not serve (the doors test `route.methods`)."""
    raise ValidationError(
        f"{scope['method']} is not allowed on {scope['path']}; use "
        f"{' or '.join(sorted(route.methods))}",
        code="method_not_allowed",
        status_code=405,
    )


def _admitter(op: Operation) -> Admit:
    def admit(ctx: Context, body: bytes, codec: Codec) -> None:
        check_operation(ctx, op, "unary")

    return admit


def _runner(dispatcher: Dispatcher, op: Operation) -> Runner:
    async def run(ctx: Context, body: bytes, codec: Codec) -> Outcome:
        return 200, await dispatcher.invoke(ctx, op, body, codec)

    return run


def _request_codec(content_type: str | None, body: bytes) -> Codec:
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


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (also after gunzip)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValidationError("the client went away before sending its whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = headers.get("content-encoding", "identity").lower()
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
