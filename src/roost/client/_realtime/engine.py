"""The realtime connection: one WebSocket per client for subscriptions and RPC calls.

`AsyncRealtime` is the engine, on asyncio. It connects on first use, hands each
subscription's events to its callback in order (plain or async callbacks), and when the
connection drops it reconnects with backoff and subscribes again. A subscription whose
events carry an `offset` (streams, table changes) resumes after the last offset it received,
so a reconnect neither loses nor repeats an event. The socket itself, with its calls and
streams, is a `Connection` (`connection.py`), which the RPC pool uses too.

The sync client runs this same engine on a loop of its own (`portal.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

import msgspec

from roost.client._core.rpc import call_timeout
from roost.client._realtime.connection import DIRECT, Connection, Route
from roost.errors import AuthenticationError, ConnectionError, RoostError

T = TypeVar("T")

logger = logging.getLogger("roost.realtime")

Event = Literal["connected", "disconnected", "error"]
EVENTS: tuple[Event, ...] = ("connected", "disconnected", "error")
HeaderSource = Callable[[], Awaitable[dict[str, str]] | dict[str, str]]


def websocket_url(api_url: str) -> str:
    """`http(s)://host` → `ws(s)://host/api/v1/ws`."""
    return api_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/api/v1/ws"


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def fresh_headers(source: HeaderSource) -> dict[str, str]:
    """The headers to open a connection with (the source may refresh a session first)."""
    headers: dict[str, str] = await _maybe_await(source())
    return headers


class _Subscription(msgspec.Struct):
    method: str
    params: dict[str, Any]
    on_event: Callable[[Any], Any]
    room: str
    server_id: str | None = None
    last_offset: int | None = None
    inbox: asyncio.Queue[Any] = msgspec.field(default_factory=asyncio.Queue)
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
        route: Route = DIRECT,
    ) -> None:
        self.url = url
        self._route = route
        self._headers = headers
        self._binary = binary
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._hooks: dict[Event, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self._subscriptions: list[_Subscription] = []
        self._by_server_id: dict[str, _Subscription] = {}
        self._conn: Connection | None = None
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
        return self._conn is not None

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - past it the server is told to cancel the call
    ) -> Any:
        """Run an operation over the WebSocket and return its result. Past `timeout` seconds
        it raises `TimeoutError` and the server cancels the call."""
        timeout = None if timeout is None else call_timeout(timeout, timeout)
        params = params or {}
        # `_with_live_token` and `_connection` written out for a call on an open connection:
        # no closure and no coroutine layer on every call
        conn, ready = self._conn, self._ready
        if conn is None or ready is None or not ready.is_set() or self._fatal:
            conn = await self._connection()
        try:
            return await conn.call(method, params, timeout=timeout)
        except AuthenticationError as exc:
            if exc.code != "token_expired":
                raise
        return await self._again_with_live_token(
            conn, lambda conn: conn.call(method, params, timeout=timeout)
        )

    async def _with_live_token(self, attempt: Callable[[Connection], Awaitable[T]]) -> T:
        """`attempt(connection)`, once more on a new connection if the one it used was opened
        with an access token that has expired since (the header source refreshes the session
        as the new one opens)."""
        conn = await self._connection()
        try:
            return await attempt(conn)
        except AuthenticationError as exc:
            if exc.code != "token_expired":
                raise
        return await self._again_with_live_token(conn, attempt)

    async def _again_with_live_token(
        self, conn: Connection, attempt: Callable[[Connection], Awaitable[T]]
    ) -> T:
        """`attempt` on a new connection, `conn` having refused it for an expired token."""
        dropped = self._dropped
        if self._conn is conn and dropped is not None:
            await conn.close()
            async with asyncio.timeout(self._timeout):
                await dropped.wait()  # the supervisor has let go of the old connection
        return await attempt(await self._connection())

    async def stream(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - past it the server is told to cancel the call
    ) -> AsyncGenerator[Any, None]:
        """Run a streamed operation over the WebSocket and yield its items in order. Leaving
        the loop early cancels it on the server; `timeout` bounds the wait for each item.

        Example: `async for row in client.realtime.stream("database.export", {"table": "t"})`
        """
        timeout = None if timeout is None else call_timeout(timeout, timeout)
        conn = await self._connection()
        async with contextlib.aclosing(conn.stream(method, params or {}, timeout=timeout)) as items:
            async for item in items:
                yield item

    async def subscribe(
        self, method: str, params: dict[str, Any], on_event: Callable[[Any], Any], room: str
    ) -> AsyncSubscription:
        """Open a subscription; `on_event` gets each pushed event (a dict), in order."""
        state = _Subscription(method, params, on_event, room)
        await self._with_live_token(lambda conn: self._open(conn, state, params))
        self._subscriptions.append(state)
        state.task = asyncio.create_task(self._deliver(state))
        return AsyncSubscription(self, state)

    async def _open(self, conn: Connection, state: _Subscription, params: dict[str, Any]) -> None:
        """Subscribe on `conn`. The subscription is filed under the id the server gave it as
        the answer arrives, before any event behind it is read."""

        def file(result: Any) -> None:
            if isinstance(result, dict):
                state.server_id = result.get("sub")
                self._by_server_id[str(state.server_id)] = state

        await conn.call(state.method, params, on_answer=file)

    async def close(self) -> None:
        """Close the connection; subscriptions end, pending calls fail."""
        self._closed = True
        for state in list(self._subscriptions):
            await self._stop(state)
        if self._conn is not None:
            await self._conn.close()  # before the supervisor: it forgets the socket as it ends
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        self._conn = None

    # -- connection ---------------------------------------------------------------------------

    async def _connection(self) -> Connection:
        """The open connection, opening it (and waiting for it) if need be."""
        conn = self._conn
        ready = self._ready is not None and self._ready.is_set()
        if conn is not None and ready and not self._fatal:
            return conn  # connected: the common case costs no timer
        if self._closed:
            raise ConnectionError("this realtime connection is closed")
        await self._wait_ready()
        if self._fatal is not None:
            raise self._fatal
        assert self._conn is not None
        return self._conn

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
                conn = await Connection.open(
                    self.url,
                    await fresh_headers(self._headers),
                    binary=self._binary,
                    timeout=self._timeout,
                    on_push=self._pushed,
                    on_error=self._refused,
                    route=self._route,
                )
            except ConnectionError as exc:
                self._last_error = exc.message
                failures += 1
                await asyncio.sleep(self._backoff(failures))
                continue
            failures = 0
            self._conn, self._dropped = conn, asyncio.Event()
            try:
                await self._resubscribe(conn)
                if self._fatal is None:
                    self._ready.set()
                    await self._emit("connected")
                await conn.wait_closed()
            finally:
                self._conn = None
                self._dropped.set()
                self._ready.clear()
            self._note_refusal(conn)
            if self._fatal is not None:
                self._ready.set()  # let waiting calls see the fatal error
                await self._emit("error", self._fatal)
                return
            if not self._closed:
                await self._emit("disconnected")
                await asyncio.sleep(self._backoff(1))

    def _note_refusal(self, conn: Connection) -> None:
        """A close that no reconnect makes right (the credential is refused) ends the engine;
        an expired access token is a reconnect (with a refreshed one) away. Also keeps why the
        connection ended, for "disconnected" hooks that take a reason."""
        code = conn.close_code
        self.disconnect_reason = conn.close_reason or (
            f"closed with code {code}" if code is not None else "the connection was lost"
        )
        renewable = conn.close_reason == "token_expired"
        if conn.close_code in (4401, 4403) and self._fatal is None and not renewable:
            why = conn.close_reason or conn.close_code
            self._fatal = AuthenticationError(
                f"the server refused the realtime connection ({why})",
                code=conn.close_reason or "authentication_failed",
            )

    def _backoff(self, failures: int) -> float:
        delay: float = min(0.1 * 2.0 ** (failures - 1), self._max_backoff)
        return delay * random.uniform(0.8, 1.2)

    async def _resubscribe(self, conn: Connection) -> None:
        """After a reconnect: each subscription again, resuming after its last offset."""
        self._by_server_id.clear()
        for state in list(self._subscriptions):
            try:
                await self._open(conn, state, state.resume_params())
            except RoostError as exc:
                await self._emit("error", exc)

    def _pushed(self, server_id: Any, event: Any) -> None:
        """An event of a subscription, queued for its callback unless it is a repeat."""
        state = self._by_server_id.get(server_id)
        if state is not None and state.accept(event):
            state.inbox.put_nowait(event)

    def _refused(self, error: RoostError) -> None:
        """An error the server sent about the connection itself."""
        if error.code in _FATAL_CODES:
            self._fatal = error
        self._spawn(self._emit("error", error))

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
        if server_id is not None and self._conn is not None:
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


_background: set[asyncio.Task[None]] = set()
# errors that end the connection for good: no reconnect makes them right
_FATAL_CODES = frozenset({"invalid_credentials", "authentication_failed", "token_expired"})
