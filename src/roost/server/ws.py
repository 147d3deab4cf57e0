"""The WebSocket door: every operation as RPC on one connection, streamed operations as chunk
frames, plus live subscriptions.

A plain ASGI app. The connection is authenticated like an HTTP request (headers, or the
`access_token` / `api_key` query parameters for browsers) and re-identified at most once a
second, so a revoked credential stops working on open connections too. Calls run
concurrently, at most `ws_max_in_flight` at a time, each started eagerly (a call that needs
no wait answers inline); a run of calls to an operation with a batch handler in one array
frame (a hundred kv.get) goes to the backend once. Everything the server sends goes through
one outbox; when a client reads so slowly that the outbox passes `ws_max_outbound_bytes`, the
server drops the connection (close code 4008) instead of letting its memory grow. A streamed
operation sends `{"id", "chunk"}` frames then `{"id", "end": true}` (or `{"id", "error"}`); it
asks its handler for the next item only while the outbox holds less than a quarter of that
bound, so a slow reader holds the producer back rather than filling the server's memory.
`{"type": "cancel", "id"}` cancels the call of that id (a stream's generator is closed).

Connections and subscriptions count against the caller's limits (`server/limits.py`): a
connection past them gets an error frame and the close code 4429; a subscription past them
is refused (429 `too_many_subscriptions`) and the connection is kept. When a connection ends,
its calls are cancelled and waited for, then every subscription it holds is closed, so that
nothing it opened outlives it. When a tenant is deleted (the bus tells every replica), each
connection of the tenant is closed at once (4404 `tenant_deleted`) and its subscriptions
released: nothing of a tenant made again under the name reaches a socket of the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.types import Receive, Scope, Send

from roost.errors import (
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    RoostError,
    ValidationError,
)
from roost.server.dispatch import Dispatcher, check_operation, decode_body, guard, headers_of
from roost.server.eager import Starter
from roost.server.limits import refusal
from roost.server.responses import request_id
from roost.services.context import Context
from roost.services.feeds import Feed, end_tasks
from roost.services.registry import Operation
from roost.wire.codec import JSON, MSGPACK, Codec
from roost.wire.ws import CallFrame, FrameId, Frames, Subscribed, UnsubscribeRequest

PATH = "/api/v1/ws"
SLOW_CONSUMER = 4008
TENANT_GONE = 4404
TOO_MANY = 4429  # a limit of the caller's (connections) refuses the connection
_CALLS_END = 10.0  # how long a closing connection waits for its cancelled calls

_ending: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly


class WebSocketDoor:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.starter = Starter()
        self.open: dict[str, set[_Connection]] = {}  # the accepted connections, by tenant
        dispatcher.platform.on_tenant_deleted.append(self._end_tenant)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != PATH:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4404, "reason": f"use {PATH}"})
            return
        await _Connection(self.dispatcher, self.starter, scope, receive, send, self.open).serve()

    def _end_tenant(self, name: str) -> None:
        for connection in list(self.open.get(name, ())):
            connection.end(TENANT_GONE, "tenant_deleted")


class _Connection:
    def __init__(
        self,
        dispatcher: Dispatcher,
        starter: Starter,
        scope: Scope,
        receive: Receive,
        send: Send,
        open_connections: dict[str, set[_Connection]],
    ):
        self.dispatcher = dispatcher
        self.open_connections = open_connections
        self.starter = starter
        self.scope, self.receive, self.send = scope, receive, send
        settings = dispatcher.platform.settings
        self.max_in_flight, self.max_outbound = (
            settings.ws_max_in_flight,
            settings.ws_max_outbound_bytes,
        )
        self.max_subscriptions = settings.max_subscriptions_per_connection
        self.limits = dispatcher.limits
        self.headers = _headers(scope)
        self.ctx: Context | None = None
        self.identified_at = 0.0
        self.calls: dict[asyncio.Task[None], int] = {}  # the calls waiting, by how many each runs
        self.by_id: dict[FrameId, asyncio.Task[None]] = {}  # the calls waiting, for cancel frames
        self.in_flight = 0
        self.feeds: dict[str, Feed] = {}
        self.opening = 0  # subscriptions being opened, not in `feeds` yet
        self.outbox: deque[tuple[bytes, Codec]] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        self.stream_window = self.max_outbound // 4
        self.drained = asyncio.Event()  # set while the outbox has room for streamed items
        self.drained.set()
        self.batching = False
        self.closing = False

    async def serve(self) -> None:
        await self.receive()  # websocket.connect
        try:
            release = self.limits.hold_connection(await self._context())
        except Exception as exc:
            rid = request_id(self.headers.get("x-request-id"))
            await self._refuse(guard(exc, rid), rid)
            return
        await self.send({"type": "websocket.accept"})
        tenant = self.ctx.tenant if self.ctx else ""
        of_tenant = self.open_connections.setdefault(tenant, set())
        of_tenant.add(self)
        writer = asyncio.create_task(self._write())
        watcher = asyncio.create_task(self._watch())
        try:
            while not self.closing:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    self._on_frame(message["bytes"], MSGPACK)
                elif message.get("text") is not None:
                    self._on_frame(message["text"].encode(), JSON)
        finally:
            of_tenant.discard(self)
            if not of_tenant:
                self.open_connections.pop(tenant, None)
            self.closing = True
            writer.cancel()
            watcher.cancel()
            # The server may cancel this task once the client is gone: the release runs in a
            # task of its own, to its end.
            ending = asyncio.create_task(self._let_go(release))
            _ending.add(ending)
            ending.add_done_callback(_ending.discard)
            await asyncio.shield(ending)
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def end(self, code: int, reason: str) -> None:
        """Close the connection from outside, at once: nothing more is sent on it, and every
        subscription it holds is released now rather than when the client answers the close."""
        if self.closing:
            return
        self.closing = True
        self.outbox.clear()
        self.drained.set()  # streams waiting for room see the connection end
        ending = asyncio.create_task(self._end(code, reason))
        _ending.add(ending)
        ending.add_done_callback(_ending.discard)

    async def _end(self, code: int, reason: str) -> None:
        await self._close(code, reason)
        await self._close_feeds()

    async def _let_go(self, release: Callable[[], None]) -> None:
        """End the calls still running, close every subscription, release the connection."""
        try:
            await self._end_calls()
            await self._close_feeds()
        finally:
            release()

    async def _refuse(self, error: RoostError, rid: str) -> None:
        """Accept only to say why, then close: 4401 unauthenticated, 4429 past a limit."""
        await self.send({"type": "websocket.accept"})
        frame = {"id": None, "error": error.to_dict(), "request_id": rid}
        await self.send({"type": "websocket.send", "text": JSON.encode(frame).decode()})
        if isinstance(error, AuthenticationError):
            code = 4401
        else:
            code = TOO_MANY if isinstance(error, RateLimitError) else 4403
        await self.send({"type": "websocket.close", "code": code, "reason": error.code})

    async def _end_calls(self) -> None:
        """Cancel the calls still running and wait for them, so that a subscription being
        opened is either in `feeds` or released when this returns."""
        await end_tasks(list(self.calls), patience=_CALLS_END)

    async def _close_feeds(self) -> None:
        """Close every subscription (one at a time off the dict: closing waits, and nothing
        may iterate `feeds` across a wait)."""
        while self.feeds:
            _, feed = self.feeds.popitem()
            await feed.close()

    # -- frames in ---------------------------------------------------------------------------

    def _on_frame(self, data: bytes, codec: Codec) -> None:
        try:
            frames: CallFrame | list[CallFrame] = decode_body(
                data,
                codec,
                Frames,  # type: ignore[arg-type]  # a union is a type to msgspec, not to mypy
                "frame",
            )
        except RoostError as exc:
            exc.code = "invalid_frame" if exc.code == "validation_error" else exc.code
            self._answer(codec, None, error=exc)
            return
        if isinstance(frames, CallFrame):
            self._on_call(frames, codec)
            return
        self.batching = True  # the client reads arrays: answers may leave together too
        for run in self._runs(frames):
            if len(run) == 1:
                self._on_call(run[0], codec)
            else:
                self._on_run(run, codec)

    def _runs(self, frames: list[CallFrame]) -> list[list[CallFrame]]:
        """The calls in order, each run of calls to one operation with a batch handler (a
        hundred kv.get in flight) together, so that it costs one trip to the backend."""
        return [list(run) for _, run in itertools.groupby(frames, key=self._run_of)]

    def _run_of(self, frame: CallFrame) -> object:
        """What a frame groups by: a call to an operation with a batch handler, its method;
        anything else a key of its own, so it stands alone."""
        op = self.dispatcher.registry.get(frame.method) if frame.method else None
        if frame.type is None and op is not None and op.batch is not None:
            return frame.method
        return object()

    def _on_run(self, run: list[CallFrame], codec: Codec) -> None:
        room = max(self.max_in_flight - self.in_flight, 0)
        if room > 1:
            self._start(run[0].method or "", self._call_run(run[:room], codec), min(room, len(run)))
            run = run[room:]
        for frame in run:  # refused, or alone
            self._on_call(frame, codec)

    def _on_call(self, frame: CallFrame, codec: Codec) -> None:
        if frame.type == "ping":
            self._queue(codec, {"type": "pong"})
            return
        if frame.type == "cancel":
            self._cancel(frame.id)
            return
        if frame.method is None:
            self._answer(
                codec,
                frame.id,
                error=ValidationError(
                    "a frame needs a `method` (or type ping)",
                    code="invalid_frame",
                    details={"field": "method"},
                ),
            )
            return
        if self.in_flight >= self.max_in_flight:
            error = RateLimitError(
                f"{self.max_in_flight} calls are in flight on this connection already; "
                "wait for answers before sending more",
                code="too_many_in_flight",
                retry_after=0.1,
            )
            self._answer(codec, frame.id, error=error)
            return
        task = self._start(frame.method, self._call(frame, codec), 1)
        if task is not None and frame.id is not None:
            self.by_id[frame.id] = task
            task.add_done_callback(functools.partial(self._forget, frame.id))

    def _start(
        self, method: str, call: Coroutine[Any, Any, None], size: int
    ) -> asyncio.Task[None] | None:
        task = self.starter.start(method, call)
        if task is not None:  # it waits for something: in flight until it answers
            self.calls[task] = size
            self.in_flight += size
            task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight -= self.calls.pop(task, 0)

    def _forget(self, frame_id: FrameId, task: asyncio.Task[None]) -> None:
        if self.by_id.get(frame_id) is task:
            del self.by_id[frame_id]

    def _cancel(self, frame_id: FrameId) -> None:
        """A cancel frame: end the call of that id, if it still runs (nothing more is sent
        for it; a call that has answered already is not an error)."""
        task = self.by_id.pop(frame_id, None)
        if task is not None:
            task.cancel()

    async def _call(self, frame: CallFrame, codec: Codec) -> None:
        method, params = frame.method or "", bytes(frame.params)
        try:
            ctx = await self._context()
            op = None if method == "unsubscribe" else self.dispatcher.operation(method)
            if op is not None and op.kind == "stream":
                await self._stream(ctx, op, frame, codec)
                return
            if op is None or op.kind == "subscription":
                result: Any = await self._call_subscription(ctx, op, params, codec)
            else:
                result = await self.dispatcher.invoke(ctx, op, params, codec)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            sent = self._answer(codec, frame.id, error=exc)
        else:
            sent = self._answer(codec, frame.id, result=result)
        self.dispatcher.meter(self.ctx, len(params), sent)

    async def _stream(self, ctx: Context, op: Operation, frame: CallFrame, codec: Codec) -> None:
        """A streamed operation: a chunk frame per item, then an end frame (or an error frame
        after the items sent so far). The next item is pulled only when the outbox has room."""
        sent = 0
        items = self.dispatcher.stream(ctx, op, bytes(frame.params), codec)
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    sent += self._queue(codec, {"id": frame.id, "chunk": item})
                    await self._room()
            sent += self._queue(codec, {"id": frame.id, "end": True})
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            sent += self._answer(codec, frame.id, error=exc)
        finally:
            self.dispatcher.meter(ctx, len(frame.params), sent)

    async def _room(self) -> None:
        """Wait until the outbox has room for more streamed items (or the connection ends)."""
        while self.queued > self.stream_window and not self.closing:
            self.drained.clear()
            await self.drained.wait()

    async def _call_run(self, run: list[CallFrame], codec: Codec) -> None:
        """Calls to one operation with a batch handler, run together, each answered alone."""
        rid: str | None = None
        try:
            ctx = await self._context()
            op = self.dispatcher.operation(run[0].method or "")
            bodies = [bytes(frame.params) for frame in run]
            outcomes = await self.dispatcher.invoke_many(ctx, op, bodies, codec)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            rid = request_id(None)  # one failure, logged once: every answer names it
            outcomes = [guard(exc, rid)] * len(run)
        sent = 0
        for frame, outcome in zip(run, outcomes, strict=True):
            if isinstance(outcome, RoostError):
                sent += self._answer(codec, frame.id, error=outcome, rid=rid)
            else:
                sent += self._answer(codec, frame.id, result=outcome)
        bytes_in = sum(len(frame.params) for frame in run)
        self.dispatcher.meter(self.ctx, bytes_in, sent, calls=len(run))

    async def _watch(self) -> None:
        """Subscriptions end when the credential does (revoked, expired, user disabled): the
        connection is closed with 4401 and the reason's code, so the client can sign in again."""
        while True:
            await asyncio.sleep(self.dispatcher.platform.settings.ws_credential_watch_seconds)
            if not self.feeds:
                continue
            try:
                await self._context()
            except AuthenticationError as exc:
                self.closing = True
                await self._close(4401, exc.code)
                return

    async def _context(self) -> Context:
        now = time.monotonic()
        settings = self.dispatcher.platform.settings
        if self.ctx is None or now - self.identified_at > settings.ws_reidentify_seconds:
            self.ctx = await self.dispatcher.context_from_scope(self.scope, self.headers)
            self.identified_at = now
        return self.ctx

    async def _call_subscription(
        self, ctx: Context, op: Operation | None, params: bytes, codec: Codec
    ) -> Subscribed | dict[str, bool]:
        """(Un)subscribe (`op` None), admitted like any call (calls in flight, rate)."""
        who = self.limits.enter(ctx)
        try:
            if op is None:
                return await self._unsubscribe(params, codec)
            return await self._subscribe(ctx, op, params, codec)
        finally:
            self.limits.leave(who, ctx.tenant)

    async def _subscribe(
        self, ctx: Context, op: Operation, params: bytes, codec: Codec
    ) -> Subscribed:
        check_operation(ctx, op, "subscription")
        request = decode_body(params, codec, op.input_type, f"parameters for {op.name}")
        if len(self.feeds) + self.opening >= self.max_subscriptions:
            raise refusal(
                "too_many_subscriptions",
                f"this connection holds {self.max_subscriptions} subscriptions; unsubscribe first",
                "connection",
                self.max_subscriptions,
                "max_subscriptions_per_connection",
            )
        release = self.limits.hold_subscription(ctx)
        sub = secrets.token_hex(6)

        def push(event: Any) -> None:
            self._queue(codec, {"sub": sub, "event": event})

        self.opening += 1
        try:
            feed: Feed = await op.handler(ctx, request, push)
        except BaseException:
            release()
            raise
        finally:
            self.opening -= 1
        feed.on_close(release)
        if self.closing:  # the connection ended while the feed was being opened
            await feed.close()
            raise asyncio.CancelledError
        self.feeds[sub] = feed
        return Subscribed(sub=sub)

    async def _unsubscribe(self, params: bytes, codec: Codec) -> dict[str, bool]:
        request = decode_body(params, codec, UnsubscribeRequest, "parameters for unsubscribe")
        feed = self.feeds.pop(request.sub, None)
        if feed is None:
            raise NotFoundError(
                f"no subscription {request.sub!r} on this connection",
                code="subscription_not_found",
                details={"field": "sub"},
            )
        await feed.close()
        return {"success": True}

    # -- frames out --------------------------------------------------------------------------

    def _answer(
        self,
        codec: Codec,
        frame_id: Any,
        *,
        result: Any = None,
        error: BaseException | None = None,
        rid: str | None = None,
    ) -> int:
        """Queue the answer to a call; returns its size in bytes. An error carries a request
        id (`rid`, else one of its own: frame ids are the client's, and repeat), under which
        the server logs what went wrong."""
        if error is not None:
            rid = rid or request_id(None)
            body = guard(error, rid).to_dict()
            return self._queue(codec, {"id": frame_id, "error": body, "request_id": rid})
        return self._queue(codec, {"id": frame_id, "result": result})

    def _queue(self, codec: Codec, payload: Any) -> int:
        if self.closing:
            return 0
        data = codec.encode(payload)
        self.outbox.append((data, codec))
        self.queued += len(data)
        if self.queued > self.max_outbound:
            self._drop_slow_consumer()
            return len(data)
        self.wake.set()
        return len(data)

    def _drop_slow_consumer(self) -> None:
        self.closing = True
        self.outbox.clear()
        self.drained.set()  # streams waiting for room see the connection end
        reason = f"more than {self.max_outbound} bytes waited to be sent: read faster"
        asyncio.create_task(self._close(SLOW_CONSUMER, reason))  # noqa: RUF006 - ends with the connection

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    async def _write(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox and not self.closing:
                data, codec = self.outbox.popleft()
                self.queued -= len(data)
                if self.batching and self.outbox and self.outbox[0][1] is codec:
                    together = [msgspec.Raw(data)]
                    while self.outbox and self.outbox[0][1] is codec and len(together) < 1000:
                        more, _ = self.outbox.popleft()
                        self.queued -= len(more)
                        together.append(msgspec.Raw(more))
                    encoder = msgspec.json if codec is JSON else msgspec.msgpack
                    data = encoder.encode(together)
                if codec is JSON:
                    await self.send({"type": "websocket.send", "text": data.decode()})
                else:
                    await self.send({"type": "websocket.send", "bytes": data})
                if self.queued <= self.stream_window:
                    self.drained.set()


def _headers(scope: Scope) -> dict[str, str]:
    headers = headers_of(scope)
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    if "authorization" not in headers:
        if "access_token" in query:
            headers["authorization"] = f"Bearer {query['access_token']}"
        elif "api_key" in query:
            headers["authorization"] = f"Api-Key {query['api_key']}"
    if "tenant" in query and "x-roost-tenant" not in headers:
        headers["x-roost-tenant"] = query["tenant"]
    return headers
