"""The realtime connection: one WebSocket per client for subscriptions and RPC calls.

`AsyncRealtime` is the engine, on asyncio. It connects on first use, answers calls by frame id,
hands each subscription's events to its callback in order (plain or async callbacks), and when
the connection drops it reconnects with backoff and subscribes again. A subscription whose
events carry an `offset` (streams, table changes) resumes after the last offset it received,
so a reconnect neither loses nor repeats an event.

The sync client runs this same engine on a loop of its own (`portal.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from roost.errors import AuthenticationError, ConnectionError, RoostError, error_from_payload

logger = logging.getLogger("roost.realtime")

Event = Literal["connected", "disconnected", "error"]
EVENTS: tuple[Event, ...] = ("connected", "disconnected", "error")
HeaderSource = Callable[[], Awaitable[dict[str, str]] | dict[str, str]]


def websocket_url(api_url: str) -> str:
    """`http(s)://host` → `ws(s)://host/api/v1/ws`."""
    return api_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/api/v1/ws"


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass
class _Subscription:
    method: str
    params: dict[str, Any]
    on_event: Callable[[Any], Any]
    room: str
    server_id: str | None = None
    last_offset: int | None = None
    inbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    def resume_params(self) -> dict[str, Any]:
        """Subscribe again from just after the last event received, if events are offset."""
        if self.last_offset is None:
            return self.params
        return {**self.params, "from_offset": self.last_offset + 1}

    def accept(self, event: Any) -> bool:
        """Whether to deliver `event`: an offset at or below the last one is a repeat."""
        offset = event.get("offset") if isinstance(event, dict) else None
        if isinstance(offset, int):
            if self.last_offset is not None and offset <= self.last_offset:
                return False
            self.last_offset = offset
        return True


class AsyncSubscription:
    """A live subscription; `unsubscribe()` ends it."""

    def __init__(self, realtime: AsyncRealtime, state: _Subscription) -> None:
        self._realtime = realtime
        self._state = state

    @property
    def room(self) -> str:
        """The room, table or patterns this subscription follows."""
        return self._state.room

    @property
    def active(self) -> bool:
        return self._state in self._realtime._subscriptions

    async def unsubscribe(self) -> None:
        """Stop receiving events (safe to call twice)."""
        await self._realtime._unsubscribe(self._state)

    def __repr__(self) -> str:
        return f"<Subscription {self._state.method} {self.room!r}>"


class AsyncRealtime:
    """The WebSocket engine of one client."""

    def __init__(
        self,
        url: str,
        headers: HeaderSource,
        *,
        binary: bool = False,
        timeout: float = 30.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self._headers = headers
        self._binary = binary
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._hooks: dict[Event, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[int, asyncio.Queue[Any]] = {}  # the frames of streams being read
        self._subscriptions: list[_Subscription] = []
        self._by_server_id: dict[str, _Subscription] = {}
        self._opening: dict[int, _Subscription] = {}
        self._outgoing: list[dict[str, Any]] = []
        self._ws: ClientConnection | None = None
        self._dropped: asyncio.Event | None = None  # set once the current connection is gone
        self._ready: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._fatal: RoostError | None = None
        self._last_error: str = ""
        self._closed = False
        self.disconnect_reason = ""  # why the last connection ended, for "disconnected" hooks

    # -- public -------------------------------------------------------------------------------

    def on(self, event: Event, handler: Callable[..., Any]) -> None:
        """Call `handler` on "connected", "disconnected" or "error" (with the exception)."""
        if event not in self._hooks:
            raise ValueError(f"unknown event {event!r}; use one of {', '.join(EVENTS)}")
        self._hooks[event].append(handler)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Run an operation over the WebSocket and return its result."""
        ws = await self._connection()
        try:
            return await self._send(ws, method, params or {})
        except AuthenticationError as exc:
            if exc.code != "token_expired":
                raise
        # The connection was opened with an access token that has expired since: open it
        # again (the header source refreshes the session) and run the call once more.
        dropped = self._dropped
        if self._ws is ws and dropped is not None:
            await ws.close()
            async with asyncio.timeout(self._timeout):
                await dropped.wait()  # the supervisor has let go of the old connection
        return await self._send(await self._connection(), method, params or {})

    async def stream(
        self, method: str, params: dict[str, Any] | None = None
    ) -> AsyncGenerator[Any, None]:
        """Run a streamed operation over the WebSocket and yield its items in order. Leaving
        the loop early cancels it on the server.

        Example: `async for row in client.realtime.stream("database.export", {"table": "t"})`
        """
        ws = await self._connection()
        frame_id = next(self._ids)
        frames: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[frame_id] = frames
        ended = False
        try:
            self._post(ws, {"id": frame_id, "method": method, "params": params or {}})
            while True:
                frame = await frames.get()
                if isinstance(frame, RoostError):
                    ended = True
                    raise frame
                if "chunk" not in frame:
                    ended = True
                    return
                yield frame["chunk"]
        finally:
            self._streams.pop(frame_id, None)
            if not ended and self._ws is ws:
                self._post(ws, {"type": "cancel", "id": frame_id})

    async def subscribe(
        self, method: str, params: dict[str, Any], on_event: Callable[[Any], Any], room: str
    ) -> AsyncSubscription:
        """Open a subscription; `on_event` gets each pushed event (a dict), in order."""
        state = _Subscription(method, params, on_event, room)
        await self._send(await self._connection(), method, params, opening=state)
        self._subscriptions.append(state)
        state.task = asyncio.create_task(self._deliver(state))
        return AsyncSubscription(self, state)

    async def _send(
        self,
        ws: ClientConnection,
        method: str,
        params: dict[str, Any],
        opening: _Subscription | None = None,
    ) -> Any:
        """Send a call and wait for its answer. For a subscription (`opening`), the reader
        files it under its server id as the answer arrives, before any event behind it."""
        frame_id = next(self._ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = answer
        if opening is not None:
            self._opening[frame_id] = opening
        try:
            self._post(ws, {"id": frame_id, "method": method, "params": params})
            return await answer
        finally:
            self._pending.pop(frame_id, None)
            self._opening.pop(frame_id, None)

    async def close(self) -> None:
        """Close the connection; subscriptions end, pending calls fail."""
        self._closed = True
        for state in list(self._subscriptions):
            await self._stop(state)
        if self._ws is not None:
            await self._ws.close()  # before the supervisor: it forgets the socket as it ends
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        self._ws = None

    # -- connection ---------------------------------------------------------------------------

    async def _connection(self) -> ClientConnection:
        """The open connection, opening it (and waiting for it) if need be."""
        ws = self._ws
        if ws is not None and self._ready is not None and self._ready.is_set() and not self._fatal:
            return ws  # connected: the common case costs no timer
        if self._closed:
            raise ConnectionError("this realtime connection is closed")
        await self._wait_ready()
        if self._fatal is not None:
            raise self._fatal
        assert self._ws is not None
        return self._ws

    async def _wait_ready(self) -> None:
        """Start the supervisor on first use, and wait for it to connect (or give up)."""
        if self._fatal is not None:
            raise self._fatal
        if self._ready is None:
            self._ready = asyncio.Event()
            self._supervisor = asyncio.create_task(self._supervise())
        try:
            async with asyncio.timeout(self._timeout):
                await self._ready.wait()
        except TimeoutError:
            raise ConnectionError(
                f"cannot open the realtime connection to {self.url} within "
                f"{self._timeout} s: {self._fatal or self._last_error or 'no answer'}"
            ) from None

    async def _supervise(self) -> None:
        """Connect, read until the connection drops, reconnect with backoff; until closed."""
        assert self._ready is not None
        failures = 0
        while not self._closed:
            try:
                ws = await connect(
                    self.url,
                    additional_headers=await _maybe_await(self._headers()),
                    max_size=None,
                    compression=None,
                    open_timeout=self._timeout,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self._last_error = str(exc) or type(exc).__name__
                failures += 1
                await asyncio.sleep(self._backoff(failures))
                continue
            failures = 0
            self._ws, self._dropped = ws, asyncio.Event()
            reader = asyncio.create_task(self._read(ws))
            try:
                await self._resubscribe()
                if self._fatal is None:
                    self._ready.set()
                    await self._emit("connected")
                await reader
            finally:
                reader.cancel()
                self._ws = None
                self._dropped.set()
                self._ready.clear()
                # A refused connection may have been ready, and taken calls, before its refusal
                # frame was read; the reader has read it by the close: the calls get the refusal.
                self._fail_pending(
                    self._fatal or ConnectionError(f"the realtime connection to {self.url} dropped")
                )
            if self._fatal is not None:
                self._ready.set()  # let waiting calls see the fatal error
                await self._emit("error", self._fatal)
                return
            if not self._closed:
                await self._emit("disconnected")
                await asyncio.sleep(self._backoff(1))

    def _backoff(self, failures: int) -> float:
        delay: float = min(0.1 * 2.0 ** (failures - 1), self._max_backoff)
        return delay * random.uniform(0.8, 1.2)

    async def _resubscribe(self) -> None:
        """After a reconnect: each subscription again, resuming after its last offset."""
        self._by_server_id.clear()
        assert self._ws is not None
        for state in list(self._subscriptions):
            try:
                await self._send(self._ws, state.method, state.resume_params(), opening=state)
            except RoostError as exc:
                await self._emit("error", exc)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._dispatch(self._decode(raw))
        except ConnectionClosed:
            pass
        close = ws.close_code
        self.disconnect_reason = ws.close_reason or (
            f"closed with code {close}" if close is not None else "the connection was lost"
        )
        renewable = ws.close_reason == "token_expired"  # a fresh token is a reconnect away
        if close in (4401, 4403) and self._fatal is None and not renewable:
            self._fatal = AuthenticationError(
                f"the server refused the realtime connection ({ws.close_reason or close})",
                code=ws.close_reason or "authentication_failed",
            )

    def _dispatch(self, received: Any) -> None:
        # answers and events that left the server together come as an array
        for frame in received if isinstance(received, list) else (received,):
            self._dispatch_one(frame)

    def _dispatch_one(self, frame: Any) -> None:
        if not isinstance(frame, dict):
            return
        frame_id = frame.get("id")
        if "result" in frame:  # the common case: an answer
            self._answered(frame_id, frame["result"])
        elif frame_id in self._streams:
            self._streamed(self._streams[frame_id], frame)
        elif "sub" in frame:
            self._pushed(frame["sub"], frame.get("event"))
        elif "id" in frame and "error" in frame:  # a frame without an id is a pong
            self._refused(frame_id, error_from_payload(400, {"error": frame["error"]}))

    def _answered(self, frame_id: Any, result: Any) -> None:
        """A call's result: settle its future (and file a subscription it opened)."""
        answer = self._pending.get(frame_id)
        if answer is not None and not answer.done():
            if self._opening:
                self._opened(frame_id, result)
            answer.set_result(result)

    @staticmethod
    def _streamed(frames: asyncio.Queue[Any], frame: dict[str, Any]) -> None:
        """A frame of a streamed operation: an item, its end, or its error."""
        if "error" in frame:
            frames.put_nowait(error_from_payload(400, {"error": frame["error"]}))
        else:
            frames.put_nowait(frame)

    def _pushed(self, server_id: Any, event: Any) -> None:
        """An event of a subscription, queued for its callback unless it is a repeat."""
        state = self._by_server_id.get(server_id)
        if state is not None and state.accept(event):
            state.inbox.put_nowait(event)

    def _refused(self, frame_id: Any, error: RoostError) -> None:
        """An error: a call's, or (without a pending call) the connection's own."""
        answer = self._pending.get(frame_id)
        if answer is None:
            if error.code in _FATAL_CODES:
                self._fatal = error
            self._spawn(self._emit("error", error))
        elif not answer.done():
            answer.set_exception(error)

    def _opened(self, frame_id: Any, result: Any) -> None:
        """If `frame_id` opened a subscription: file it under the id the server gave it."""
        opening = self._opening.pop(frame_id, None)
        if opening is not None and isinstance(result, dict):
            opening.server_id = result.get("sub")
            self._by_server_id[str(opening.server_id)] = opening

    def _post(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        """Queue a frame; the frames queued during one event-loop turn leave together, as one
        array frame (one WebSocket frame for a hundred calls in flight)."""
        if not self._outgoing:
            self._spawn(self._flush(ws))
        self._outgoing.append(frame)

    async def _flush(self, ws: ClientConnection) -> None:
        await asyncio.sleep(0)  # let this turn's other calls join
        frames, self._outgoing = self._outgoing, []
        with contextlib.suppress(ConnectionClosed):  # the supervisor fails the calls, reconnects
            await ws.send(self._encode(frames[0] if len(frames) == 1 else frames))

    def _fail_pending(self, error: RoostError) -> None:
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(error)
        self._pending.clear()
        for frames in self._streams.values():
            frames.put_nowait(error)

    # -- subscriptions ------------------------------------------------------------------------

    async def _deliver(self, state: _Subscription) -> None:
        while True:
            event = await state.inbox.get()
            try:
                await _maybe_await(state.on_event(event))
            except Exception as exc:  # a failing callback must not end the subscription
                logger.exception("a subscription callback failed")
                await self._emit("error", exc)

    async def _unsubscribe(self, state: _Subscription) -> None:
        if state not in self._subscriptions:
            return
        server_id = state.server_id
        await self._stop(state)
        if server_id is not None and self._ws is not None:
            with contextlib.suppress(RoostError):
                await self.call("unsubscribe", {"sub": server_id})

    async def _stop(self, state: _Subscription) -> None:
        if state in self._subscriptions:
            self._subscriptions.remove(state)
        if state.server_id is not None:
            self._by_server_id.pop(state.server_id, None)
        if state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task

    # -- plumbing -----------------------------------------------------------------------------

    async def _emit(self, event: Event, *args: Any) -> None:
        for handler in list(self._hooks[event]):
            try:
                await _maybe_await(handler(*args))
            except Exception:
                logger.exception("a %r handler failed", event)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        _background.add(task)
        task.add_done_callback(_background.discard)

    def _encode(self, frame: dict[str, Any] | list[dict[str, Any]]) -> str | bytes:
        if self._binary:
            return msgspec.msgpack.encode(frame)
        return msgspec.json.encode(frame).decode()

    def _decode(self, raw: str | bytes) -> Any:
        try:
            if isinstance(raw, bytes):
                return msgspec.msgpack.decode(raw)
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            logger.warning("ignored a frame that is not JSON or MessagePack")
            return None


_background: set[asyncio.Task[None]] = set()
# errors that end the connection for good: no reconnect makes them right
_FATAL_CODES = frozenset({"invalid_credentials", "authentication_failed", "token_expired"})
