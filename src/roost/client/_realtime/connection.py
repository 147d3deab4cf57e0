"""One WebSocket to the server's door (`/api/v1/ws`): calls answered by frame id, streamed
calls read item by item, pushed subscription events handed on.

It never reconnects: when the socket drops, every call in flight on it fails with a
`ConnectionError` and `wait_closed()` returns. What comes next is its owner's choice: the
realtime engine (`engine.py`) opens a new one and subscribes again, the RPC pool (`pool.py`)
forgets it and opens another when a call needs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import httpcore
import msgspec
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from roost.client._core.rpc import MAX_METHOD_LENGTH, call_timed_out, checked_method, dropped
from roost.client._door import door_socket
from roost.errors import ConnectionError, RoostError, error_from_payload

logger = logging.getLogger("roost.realtime")

OnPush = Callable[[Any, Any], None]
"""Called with (subscription id, event) for each event the server pushes."""
OnError = Callable[[RoostError], None]
"""Called with an error the server sent about the connection itself (no call's id)."""
OnAnswer = Callable[[Any], None]
"""Called with a call's result as it arrives, before any frame behind it is read."""

MAX_FRAMES = 1000  # calls the server takes in one array frame (`wire/ws.py`)
MAX_ARRAY_BYTES = 1 << 20  # past this, calls leave in several frames (the server caps a frame)
REFUSED = frozenset({4401, 4403, 4429})  # close codes of a server refusing the connection


class Route(msgspec.Struct, frozen=True):
    """How a socket reaches the server: a TCP connection to the URL's host (the default), or,
    inside a sandboxed function, the runtime's Unix socket (`api_socket`) or door
    (`api_door`, a file descriptor handing out connected sockets: `roost.client._door`)."""

    api_socket: str | None = None
    api_door: int | None = None


DIRECT = Route()


async def _connect(url: str, route: Route, **options: Any) -> ClientConnection:
    if route.api_socket:
        return await unix_connect(route.api_socket, url, **options)
    if route.api_door is not None:
        # the door answers at once (the runtime's relay holds the connection); it blocks as
        # the HTTP transport's does, so that no thread of the function's is left behind
        sock = door_socket(route.api_door, options.get("open_timeout"))
        return await connect(url, sock=sock, **options)
    return await connect(url, **options)


class Connection:
    """One open WebSocket. Build it with `await Connection.open(...)`."""

    def __init__(
        self,
        ws: ClientConnection,
        url: str,
        *,
        binary: bool,
        on_push: OnPush | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.url = url
        self._ws = ws
        self._binary = binary
        self._on_push = on_push
        self._on_error = on_error
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._on_answer: dict[int, OnAnswer] = {}
        self._streams: dict[int, tuple[str, asyncio.Queue[Any]]] = {}
        self._outgoing: list[msgspec.Raw] = []
        self._refusal: RoostError | None = None  # why the server refused the connection
        self._lost: RoostError | None = None  # set once the socket is gone
        self._closing = False
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        headers: dict[str, str],
        *,
        binary: bool = False,
        timeout: float = 30.0,  # noqa: ASYNC109 - the opening handshake's, for websockets
        on_push: OnPush | None = None,
        on_error: OnError | None = None,
        route: Route = DIRECT,
    ) -> Connection:
        """Open a connection, or raise `ConnectionError` saying why it could not be made."""
        try:
            ws = await _connect(
                url,
                route,
                additional_headers=headers,
                max_size=None,
                compression=None,
                open_timeout=timeout,
            )
        except (
            OSError,
            InvalidHandshake,
            TimeoutError,
            httpcore.ConnectError,  # the door's refusals
            httpcore.ConnectTimeout,
        ) as exc:
            reason = str(exc) or type(exc).__name__
            raise ConnectionError(f"cannot open a WebSocket to {url}: {reason}") from None
        return cls(ws, url, binary=binary, on_push=on_push, on_error=on_error)

    # -- state --------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._lost is None

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str:
        return self._ws.close_reason or ""

    async def wait_closed(self) -> None:
        """Return once the socket is gone (and every call in flight on it has failed)."""
        await asyncio.wait([self._reader])  # the caller's cancellation still reaches it

    async def close(self) -> None:
        """Close the socket; calls still in flight fail with `ConnectionError`."""
        self._closing = True
        await self._ws.close()
        await self.wait_closed()

    # -- calls --------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - past it the server is told to cancel the call
        on_answer: OnAnswer | None = None,
    ) -> Any:
        """Send a call and return its result (or raise its error). Past `timeout` seconds,
        or if the caller is cancelled, the server is told to cancel it."""
        # `checked_method` and `_check_open` written out for the common case: every call
        if type(method) is not str or not 0 < len(method) <= MAX_METHOD_LENGTH:
            checked_method(method)  # raises: it says why
        frame_id = next(self._ids)
        frame = self._frame({"id": frame_id, "method": method, "params": params})
        if self._lost is not None:
            raise self._lost
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending[frame_id] = (method, answer)
        if on_answer is not None:
            self._on_answer[frame_id] = on_answer
        # a timer handle rather than asyncio.timeout: about half the cost, on every call
        timer = (
            None if timeout is None else loop.call_later(timeout, self._expire, frame_id, timeout)
        )
        try:
            self._post(frame)
            return await answer
        finally:
            del self._pending[frame_id]
            if timer is not None:
                timer.cancel()
            if on_answer is not None:
                self._on_answer.pop(frame_id, None)
            if answer.cancelled():  # abandoned by its caller: the server need not go on
                self._cancel(frame_id)

    def _expire(self, frame_id: int, seconds: float) -> None:
        """A call's time is up: it fails with `TimeoutError`, and the server cancels it."""
        method, answer = self._pending[frame_id]
        if not answer.done():
            answer.set_exception(call_timed_out(method, seconds))
            self._cancel(frame_id)

    async def stream(
        self,
        method: str,
        params: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - past it the server is told to cancel the call
    ) -> AsyncGenerator[Any, None]:
        """Send a streamed call and yield its items in order. `timeout` bounds the wait for
        each item. Leaving early (break, `aclose()`, an error, the generator collected) tells
        the server to cancel it."""
        frame_id = next(self._ids)
        frame = self._frame({"id": frame_id, "method": checked_method(method), "params": params})
        self._check_open()
        frames: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[frame_id] = (method, frames)
        ended = False
        try:
            self._post(frame)
            while True:
                if timeout is None:
                    item = await frames.get()
                else:
                    try:
                        async with asyncio.timeout(timeout):
                            item = await frames.get()
                    except TimeoutError:
                        raise call_timed_out(method, timeout, streamed=True) from None
                if isinstance(item, RoostError):
                    ended = True
                    raise item
                if "chunk" not in item:
                    ended = True
                    return
                yield item["chunk"]
        finally:
            del self._streams[frame_id]
            if not ended:
                self._cancel(frame_id)

    def _check_open(self) -> None:
        if self._lost is not None:
            raise self._lost

    def _cancel(self, frame_id: int) -> None:
        if self._lost is None:
            self._post(self._frame({"type": "cancel", "id": frame_id}))

    # -- frames out ---------------------------------------------------------------------------

    def _frame(self, frame: dict[str, Any]) -> msgspec.Raw:
        """A frame, encoded now: parameters that cannot be encoded fail the call that brings
        them (as over HTTP), not the send of the calls that travel with it."""
        if self._binary:
            return msgspec.Raw(msgspec.msgpack.encode(frame))
        return msgspec.Raw(msgspec.json.encode(frame))

    def _post(self, frame: msgspec.Raw) -> None:
        """Queue a frame; the frames queued during one event-loop turn leave together, as one
        array frame (one WebSocket frame for a hundred calls in flight)."""
        if not self._outgoing:
            _spawn(self._flush())
        self._outgoing.append(frame)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let this turn's other calls join
        frames, self._outgoing = self._outgoing, []
        with contextlib.suppress(ConnectionClosed):  # the reader fails the calls
            for together in arrays_of(frames):
                await self._ws.send(self._encode(together))

    def _encode(self, frames: list[msgspec.Raw]) -> str | bytes:
        if self._binary:
            return msgspec.msgpack.encode(frames[0] if len(frames) == 1 else frames)
        return msgspec.json.encode(frames[0] if len(frames) == 1 else frames).decode()

    # -- frames in ----------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self._dispatch(_decode(raw))
        except ConnectionClosed:
            pass
        finally:
            refused = self._refusal is not None and self.close_code in REFUSED
            self._lost = self._refusal if refused else self._drop_error()
            self._fail_all()

    def _drop_error(self) -> ConnectionError:
        if self._closing:
            return ConnectionError(f"the connection to {self.url} was closed by the client")
        return dropped(self.url, self.close_code, self.close_reason)

    def _fail_all(self) -> None:
        """Every call in flight fails; the error names the call (it may have run or not)."""
        assert self._lost is not None
        for method, answer in self._pending.values():
            if not answer.done():
                answer.set_exception(_for_call(self._lost, method))
        for method, frames in self._streams.values():
            frames.put_nowait(_for_call(self._lost, method))

    def _dispatch(self, received: Any) -> None:
        # answers and events that left the server together come as an array
        for frame in received if isinstance(received, list) else (received,):
            if isinstance(frame, dict):
                self._dispatch_one(frame)

    def _dispatch_one(self, frame: dict[str, Any]) -> None:
        frame_id = frame.get("id")
        if "result" in frame:  # the common case: an answer
            self._answered(frame_id, frame["result"])
        elif frame_id in self._streams:
            _, frames = self._streams[frame_id]
            if "error" in frame:
                frames.put_nowait(_error_of(frame))
            else:
                frames.put_nowait(frame)
        elif "sub" in frame:
            if self._on_push is not None:
                self._on_push(frame["sub"], frame.get("event"))
        elif "error" in frame:
            self._refused(frame_id, _error_of(frame))
        # anything else (a pong, the answer to a call given up on) needs nothing

    def _answered(self, frame_id: Any, result: Any) -> None:
        pending = self._pending.get(frame_id)
        if pending is not None and not pending[1].done():
            if self._on_answer:
                hook = self._on_answer.pop(frame_id, None)
                if hook is not None:
                    hook(result)
            pending[1].set_result(result)

    def _refused(self, frame_id: Any, error: RoostError) -> None:
        """An error: a call's, or (without an id) the connection's own, such as the server
        refusing the credential, which it follows by closing the socket."""
        if frame_id is None:  # a refusal, or a frame the door could not read
            self._refusal = error
            if self._on_error is not None:
                self._on_error(error)
            return
        pending = self._pending.get(frame_id)
        if pending is not None and not pending[1].done():
            pending[1].set_exception(error)


def arrays_of(frames: list[msgspec.Raw]) -> list[list[msgspec.Raw]]:
    """The frames to send, in order, in arrays the server takes (a frame bigger than the
    bound goes alone, and the server says whether it takes it)."""
    if 0 < len(frames) <= MAX_FRAMES and sum(map(len, frames)) <= MAX_ARRAY_BYTES:
        return [frames]  # what a turn's calls almost always make: one array, no loop over them
    arrays: list[list[msgspec.Raw]] = []
    size = 0
    for frame in frames:
        if not arrays or len(arrays[-1]) == MAX_FRAMES or size + len(frame) > MAX_ARRAY_BYTES:
            arrays.append([])
            size = 0
        arrays[-1].append(frame)
        size += len(frame)
    return arrays


def _for_call(error: RoostError, method: str) -> RoostError:
    """The connection's error as the error of one call on it."""
    if isinstance(error, ConnectionError):
        message = f"{error.message}; {method} was in flight and may or may not have run"
        return ConnectionError(message, code=error.code, details=error.details)
    return error


def _decode(raw: str | bytes) -> Any:
    try:
        if isinstance(raw, bytes):
            return msgspec.msgpack.decode(raw)
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        logger.warning("ignored a frame that is not JSON or MessagePack")
        return None


_background: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly


def _spawn(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _error_of(frame: dict[str, Any]) -> RoostError:
    """The error an error frame describes: its class by code, else by the frame's HTTP status
    (400 from a server that sends none), as over HTTP."""
    status = frame.get("status")
    return error_from_payload(status if isinstance(status, int) else 400, {"error": frame["error"]})
