"""The WebSocket door's protocol without its socket: an `RpcSession` takes the frames a
connection receives and queues the frames it must send, as h11 keeps HTTP apart from I/O.

Calls run concurrently, at most `ws_max_in_flight` at a time (429 `too_many_in_flight` past
it), each started eagerly (`server/eager.py`: a call that needs no wait answers inline); a run
of calls to an operation with a batch handler in one array frame (a hundred kv.get) goes to the
backend once. Everything to send goes through one outbox; when it holds more than
`ws_max_outbound_bytes` (a client reading too slowly), the session stops and asks its door to
close with 4008 rather than let the server's memory grow. A streamed operation queues
`{"id", "chunk"}` frames then `{"id", "end": true}` (or `{"id", "error"}`), and asks its
handler for the next item only while the outbox holds less than a quarter of that bound, so a
slow reader holds the producer back. `{"type": "cancel", "id"}` cancels the call of that id (a
stream's generator is closed). Subscriptions are held per session, at most
`max_subscriptions_per_connection`; the caller is re-identified at most once per
`ws_reidentify_seconds`, so a revoked credential stops working on an open session too.

The door feeds the session what it receives (`receive`), sends what `take` hands out whenever
`wake` is set, and closes the socket when the session asks (the `close` it is built with). The
session does no socket I/O; it still runs each call through the dispatcher, the service side.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import msgspec
from starlette.types import Scope

from roost.errors import NotFoundError, RateLimitError, RoostError, ValidationError
from roost.server.dispatch import Dispatcher, check_operation, decode_body, guard
from roost.server.eager import Starter
from roost.server.limits import refusal
from roost.server.pushed import event_frame
from roost.server.responses import request_id
from roost.services.context import Context
from roost.services.feeds import Feed, end_tasks
from roost.services.functions.invocations import RPC_PREFIX
from roost.services.registry import Operation
from roost.wire.codec import JSON, Codec
from roost.wire.limits import passes_screen
from roost.wire.ws import CallFrame, FrameId, Frames, Subscribed, UnsubscribeRequest

SLOW_CONSUMER = 4008  # the close code of a client that reads too slowly
_CALLS_END = 10.0  # how long a closing session waits for its cancelled calls
_JOINED = 1000  # at most this many answers leave in one array frame

Close = Callable[[int, str], None]
"""How a session asks its door to close the connection (code, reason); it has stopped already."""

Count = Callable[[str, str, int, float], None]
"""Where a session counts each call for `/metrics`: (operation, door, status, seconds). The
metrics hook puts it in the connection's scope under `COUNT_KEY` (absent: nothing counted)."""
COUNT_KEY = "roost.count"


class RpcSession:
    """The calls, streams, subscriptions and outbox of one WebSocket connection.

    `scope` and `headers` identify the caller (`headers` as the door read them, a credential
    from the query string included); `close` is called, at most once, when the session decides
    the connection must end (a slow consumer)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        starter: Starter,
        scope: Scope,
        headers: Mapping[str, str],
        close: Close,
    ) -> None:
        self.dispatcher = dispatcher
        self.starter = starter
        self.scope, self.headers = scope, headers
        self._ask_close = close
        settings = dispatcher.platform.settings
        self.max_in_flight = settings.ws_max_in_flight
        self.max_outbound = settings.ws_max_outbound_bytes
        self.max_subscriptions = settings.max_subscriptions_per_connection
        self.limits = dispatcher.limits
        self.ctx: Context | None = None
        self.identified_at = 0.0
        self.reidentify_seconds = settings.ws_reidentify_seconds
        self.calls: dict[asyncio.Task[None], int] = {}  # the calls waiting, by how many each runs
        self.by_id: dict[FrameId, asyncio.Task[None]] = {}  # the calls waiting, for cancel frames
        self.in_flight = 0
        self.feeds: dict[str, Feed] = {}
        self.opening = 0  # subscriptions being opened, not in `feeds` yet
        self.outbox: deque[tuple[bytes, Codec]] = deque()
        self.queued = 0  # bytes in the outbox
        self.wake = asyncio.Event()  # set when the outbox has something to send
        self.stream_window = self.max_outbound // 4
        self.drained = asyncio.Event()  # set while the outbox has room for streamed items
        self.drained.set()
        self.batching = False  # the client sends arrays: answers may leave together too
        self.closing = False
        self._count: Count | None = scope.get(COUNT_KEY)
        self._operation = dispatcher.registry.get

    async def identify(self) -> Context:
        """The caller's Context, checked again once `ws_reidentify_seconds` have passed; a
        running function's (runtime token), for every call: its token ends with its run, and
        a socket kept in a warm worker's globals must not act for the next caller's run (a
        principal cache hit while the run goes on)."""
        now = time.monotonic()
        if self.ctx is None or now - self.identified_at > self.reidentify_seconds:
            self.ctx = await self.dispatcher.context_from_scope(self.scope, self.headers)
            principal = self.ctx.principal
            # a function's context is stale at once, so every check (here and the one
            # written out in `_call`) identifies it again
            function = principal is not None and principal.kind == "function"
            self.identified_at = -math.inf if function else now
        return self.ctx

    async def check_credential(self) -> None:
        """Subscriptions end when the credential does (revoked, expired, user disabled): a
        session holding any identifies its caller again, and raises the AuthenticationError
        once the credential no longer holds."""
        if self.feeds:
            await self.identify()

    def stop(self) -> None:
        """Nothing more is queued or sent; streams waiting for room see the session end."""
        self.closing = True
        self.outbox.clear()
        self.drained.set()

    async def wind_down(self) -> None:
        """Cancel the calls still running and wait for them (so that a subscription being
        opened is either in `feeds` or released), then close every subscription."""
        await end_tasks(list(self.calls), patience=_CALLS_END)
        await self.close_feeds()

    async def close_feeds(self) -> None:
        """Close every subscription (one at a time off the dict: closing waits, and nothing
        may iterate `feeds` across a wait)."""
        while self.feeds:
            _, feed = self.feeds.popitem()
            await feed.close()

    # -- frames in ---------------------------------------------------------------------------

    def receive(self, data: bytes, codec: Codec) -> None:
        """A frame the client sent (`codec` tells JSON text from MessagePack binary): a call,
        an array of calls, a cancel or a ping. Answers go to the outbox, never raised."""
        # One scan of the whole frame; when it passes, neither the frame nor any call's
        # parameters (slices of it) need the walk of `roost.wire.limits`.
        screened = passes_screen(data, codec.format)
        try:
            frames: CallFrame | list[CallFrame] = decode_body(
                data,
                codec,
                Frames,  # type: ignore[arg-type]  # a union is a type to msgspec, not to mypy
                "frame",
                screened=screened,
            )
        except RoostError as exc:
            exc.code = "invalid_frame" if exc.code == "validation_error" else exc.code
            self._answer_error(codec, None, exc)
            return
        if isinstance(frames, CallFrame):
            self._on_call(frames, codec, screened)
            return
        self.batching = True
        for run in self._runs(frames):
            if len(run) == 1:
                self._on_call(run[0], codec, screened)
            else:
                self._on_run(run, codec, screened)

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

    def _on_run(self, run: list[CallFrame], codec: Codec, screened: bool) -> None:
        room = max(self.max_in_flight - self.in_flight, 0)
        if room > 1:
            call = self._call_run(run[:room], codec, screened)
            self._start(run[0].method or "", call, min(room, len(run)))
            run = run[room:]
        for frame in run:  # refused, or alone
            self._on_call(frame, codec, screened)

    def _on_call(self, frame: CallFrame, codec: Codec, screened: bool) -> None:
        """`screened`: the frame passed `limits.passes_screen` (see `receive`)."""
        if frame.type == "ping":
            self._queue(codec, {"type": "pong"})
            return
        if frame.type == "cancel":
            self._cancel(frame.id)
            return
        if frame.method is None:
            self._answer_error(
                codec,
                frame.id,
                ValidationError(
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
            self._answer_error(codec, frame.id, error)
            return
        task = self._start(frame.method, self._call(frame, codec, screened), 1)
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

    # -- calls -------------------------------------------------------------------------------

    async def _call(self, frame: CallFrame, codec: Codec, screened: bool) -> None:
        method, params = frame.method or "", bytes(frame.params)
        started, status = time.perf_counter(), 200
        try:
            ctx = self.ctx  # `identify` written out: a call pays no coroutine for it
            if ctx is None or time.monotonic() - self.identified_at > self.reidentify_seconds:
                ctx = await self.identify()
            op = None
            if method != "unsubscribe":  # a registry operation, or a function (`fn.<name>`)
                op = self._operation(method) or await self.dispatcher.resolve(ctx, method)
            if op is not None and op.kind == "stream":
                await self._stream(ctx, op, frame, codec, screened)
                return
            if op is None or op.kind == "subscription":
                result: Any = await self._call_subscription(ctx, op, params, codec)
            else:
                result = await self.dispatcher.invoke(ctx, op, params, codec, screened=screened)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            sent, status = self._answer_error(codec, frame.id, exc)
        else:
            sent = self._answer(codec, frame.id, result=result)
        self.dispatcher.meter(self.ctx, len(params), sent)
        if self._count is not None:
            self._count(self._label(method), "ws", status, time.perf_counter() - started)

    async def _stream(
        self, ctx: Context, op: Operation, frame: CallFrame, codec: Codec, screened: bool
    ) -> None:
        """A streamed operation: a chunk frame per item, then an end frame (or an error frame
        after the items sent so far). The next item is pulled only when the outbox has room,
        and none once the session has stopped (the generator is closed then)."""
        sent, started, status = 0, time.perf_counter(), 200
        items = self.dispatcher.stream(ctx, op, bytes(frame.params), codec, screened=screened)
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    sent += self._queue(codec, {"id": frame.id, "chunk": item})
                    await self._room()
                    if self.closing:  # nothing more can be sent: stop asking for items
                        return
            sent += self._queue(codec, {"id": frame.id, "end": True})
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            size, status = self._answer_error(codec, frame.id, exc)
            sent += size
        finally:
            self.dispatcher.meter(ctx, len(frame.params), sent)
            if self._count is not None:
                self._count(self._label(op.name), "ws", status, time.perf_counter() - started)

    async def _room(self) -> None:
        """Wait until the outbox has room for more streamed items (or the session ends)."""
        while self.queued > self.stream_window and not self.closing:
            self.drained.clear()
            await self.drained.wait()

    async def _call_run(self, run: list[CallFrame], codec: Codec, screened: bool) -> None:
        """Calls to one operation with a batch handler, run together, each answered alone."""
        rid: str | None = None
        started = time.perf_counter()
        try:
            ctx = await self.identify()
            op = self.dispatcher.operation(run[0].method or "")
            bodies = [bytes(frame.params) for frame in run]
            outcomes = await self.dispatcher.invoke_many(ctx, op, bodies, codec, screened=screened)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            rid = request_id(None)  # one failure, logged once: every answer names it
            outcomes = [guard(exc, rid)] * len(run)
        sent = 0
        statuses: list[int] = []
        for frame, outcome in zip(run, outcomes, strict=True):
            if isinstance(outcome, RoostError):
                size, status = self._answer_error(codec, frame.id, outcome, rid)
                sent += size
                statuses.append(status)
            else:
                sent += self._answer(codec, frame.id, result=outcome)
                statuses.append(200)
        bytes_in = sum(len(frame.params) for frame in run)
        self.dispatcher.meter(self.ctx, bytes_in, sent, calls=len(run))
        if self._count is not None:
            label, elapsed = self._label(run[0].method or ""), time.perf_counter() - started
            for status in statuses:
                self._count(label, "ws", status, elapsed)

    def _label(self, method: str) -> str:
        """The operation label of a call: a registry name, `function` for any `fn.<name>`, or
        `other`, never the caller's own string (the series stay bounded)."""
        if method == "unsubscribe" or self._operation(method) is not None:
            return method
        return "function" if method.startswith(RPC_PREFIX) else "other"

    # -- subscriptions -----------------------------------------------------------------------

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
            if not self.closing:
                self._queue_encoded(event_frame(codec, sub, event), codec)

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

    def take(self) -> tuple[bytes, Codec] | None:
        """The next frame to send and its codec (JSON: a text frame, else binary), or None
        when there is nothing (more) to send. To a client that sends arrays, the answers ready
        together leave as one array. Call it again only once what it gave has been sent: that
        is when streams waiting for room in the outbox go on."""
        if self.queued <= self.stream_window:
            self.drained.set()
        outbox = self.outbox
        if not outbox or self.closing:
            return None
        frame = outbox.popleft()
        data, codec = frame
        self.queued -= len(data)
        if not self.batching or not outbox or outbox[0][1] is not codec:
            return frame
        together = [msgspec.Raw(data)]
        while outbox and outbox[0][1] is codec and len(together) < _JOINED:
            more, _ = outbox.popleft()
            self.queued -= len(more)
            together.append(msgspec.Raw(more))
        encoder = msgspec.json if codec is JSON else msgspec.msgpack
        return encoder.encode(together), codec

    def _answer(self, codec: Codec, frame_id: Any, *, result: Any) -> int:
        """Queue the answer to a call; returns its size in bytes."""
        return self._queue(codec, {"id": frame_id, "result": result})

    def _answer_error(
        self, codec: Codec, frame_id: Any, exc: BaseException, rid: str | None = None
    ) -> tuple[int, int]:
        """Queue an error answer; returns its size and its HTTP status. It carries the status
        (the SDK picks the error class by code, else by status, as over HTTP) and a request id
        (`rid`, else one of its own: frame ids are the client's, and repeat), under which the
        server logs what went wrong."""
        rid = rid or request_id(None)
        error = guard(exc, rid)
        status = error.status_code or 500
        frame = {"id": frame_id, "error": error.to_dict(), "status": status, "request_id": rid}
        return self._queue(codec, frame), status

    def _queue(self, codec: Codec, payload: Any) -> int:
        if self.closing:
            return 0
        return self._queue_encoded(codec.encode(payload), codec)

    def _queue_encoded(self, data: bytes, codec: Codec) -> int:
        self.outbox.append((data, codec))
        self.queued += len(data)
        if self.queued > self.max_outbound:
            self._drop_slow_consumer()
            return len(data)
        self.wake.set()
        return len(data)

    def _drop_slow_consumer(self) -> None:
        self.stop()
        reason = f"more than {self.max_outbound} bytes waited to be sent: read faster"
        self._ask_close(SLOW_CONSUMER, reason)
