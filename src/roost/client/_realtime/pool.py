"""The RPC pool: the WebSockets that carry `client.rpc` calls (DotDo's connection pool).

Connections are opened when a call needs one, at most `pool_size`; each carries at most
`calls_per_connection` calls at once (a stream counts while it is read). A call goes to the
oldest connection with room, so a second connection opens only when the first is full: the
calls of one event-loop turn then share a socket and leave as one array frame, which is what
makes many small calls cheap (`docs/architecture.md`, "The RPC pool"). A caller that finds
every connection full, and the pool at its size, waits for room up to `pool_timeout` seconds,
then gets `TimeoutError` (code `pool_timeout`).

A connection that drops fails its calls in flight with `ConnectionError` and leaves the pool;
the next call that needs room opens another. One that was opened with an access token that
has expired since is retired: it takes no new calls, closes when its last call ends, and the
call that found out runs once more on a fresh connection.

Like the realtime engine this runs on asyncio for both clients: the sync client drives it
through `portal.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

import msgspec

from roost.client._core.config import ClientConfig
from roost.client._core.rpc import PoolStats, call_timeout, pool_timed_out
from roost.client._realtime.connection import Connection, Route, _spawn
from roost.client._realtime.engine import HeaderSource, fresh_headers, websocket_url
from roost.errors import AuthenticationError, ConnectionError


class _Member(msgspec.Struct, eq=False):
    connection: Connection
    load: int = 0  # calls in flight on it
    retired: bool = False  # its credential expired: no new calls, closed once idle


class AsyncPool:
    """The RPC connections of one client (see the module docstring)."""

    def __init__(self, config: ClientConfig, headers: HeaderSource) -> None:
        self.url = websocket_url(config.api_url)
        self._route = Route(config.api_socket, config.api_door)
        self._headers = headers
        self._binary = config.format == "msgpack"
        self._size = config.pool_size
        self._per_connection = config.calls_per_connection
        self._pool_timeout = config.pool_timeout
        self._timeout = config.timeout  # a call's, unless it says; and opening a connection's
        self._members: list[_Member] = []
        self._opening: asyncio.Task[None] | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._waiting = 0
        self._opened = 0
        self._closed = False

    # -- calls --------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - past it the server is told to cancel the call
    ) -> Any:
        """Run `method` on a pooled connection and return its result."""
        seconds = self._timeout if timeout is None else call_timeout(timeout, self._timeout)
        params = params or {}
        member = self._take() or await self._acquire()
        try:
            return await member.connection.call(method, params, timeout=seconds)
        except AuthenticationError as exc:
            if exc.code != "token_expired":
                raise
            member.retired = True  # opened with a token that has expired since
        finally:
            self._release(member)
        member = self._take() or await self._acquire()  # a new connection, with a fresh token
        try:
            return await member.connection.call(method, params, timeout=seconds)
        finally:
            self._release(member)

    def stream(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[Any, None]:
        """Run the streamed `method` on a pooled connection and yield its items in order."""
        return self._stream(method, params or {}, call_timeout(timeout, self._timeout))

    async def _stream(
        self, method: str, params: dict[str, Any], seconds: float
    ) -> AsyncGenerator[Any, None]:
        for attempt in (1, 2):
            member = self._take() or await self._acquire()
            started = False
            try:
                items = member.connection.stream(method, params, timeout=seconds)
                async with contextlib.aclosing(items):
                    async for item in items:
                        started = True
                        yield item
                return
            except AuthenticationError as exc:
                if exc.code != "token_expired" or started or attempt == 2:
                    raise
                member.retired = True
            finally:
                self._release(member)

    def stats(self) -> PoolStats:
        """How many connections are open, calls in flight and callers waiting."""
        return PoolStats(
            size=self._size,
            calls_per_connection=self._per_connection,
            connections=sum(1 for m in self._members if m.connection.is_open),
            in_flight=sum(m.load for m in self._members),
            waiting=self._waiting,
            opened=self._opened,
        )

    async def close(self) -> None:
        """Close every connection; calls in flight fail with `ConnectionError`."""
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
        self._wake(len(self._waiters))
        members, self._members = self._members, []
        for member in members:
            await member.connection.close()

    # -- room ---------------------------------------------------------------------------------

    def _take(self) -> _Member | None:
        """A connection with room taken at once, if nobody waits for room before this caller
        (the common case: no timer, no wait)."""
        if self._waiters:
            return None
        member = self._with_room()
        if member is not None:
            member.load += 1
        return member

    async def _acquire(self) -> _Member:
        """A connection with room for one more call, counted as taken, waiting for one up to
        `pool_timeout` seconds."""
        self._waiting += 1
        try:
            async with asyncio.timeout(self._pool_timeout) as deadline:
                return await self._wait_for_room()
        except TimeoutError:
            if deadline.expired():
                opened = any(m.connection.is_open for m in self._members)
                raise pool_timed_out(
                    self._pool_timeout, self._size, self._per_connection, opened=opened
                ) from None
            raise
        finally:
            self._waiting -= 1

    async def _wait_for_room(self) -> _Member:
        while True:
            if self._closed:
                raise ConnectionError(f"the RPC pool to {self.url} is closed")
            member = self._with_room()
            if member is not None:
                member.load += 1
                return member
            if sum(1 for m in self._members if not m.retired) < self._size:
                await self._opened_one()
                continue
            await self._wait_for_release()

    async def _opened_one(self) -> None:
        """Wait for a new connection: the one being opened, else one this caller opens."""
        opening = self._opening
        if opening is None:
            opening = self._opening = asyncio.create_task(self._open())
            opening.add_done_callback(_retrieved)
        try:
            await asyncio.shield(opening)  # a caller that gives up leaves it to the others
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if opening.cancelled() and task is not None and not task.cancelling():
                raise ConnectionError(f"the RPC pool to {self.url} is closed") from None
            raise  # this caller was cancelled (or its pool_timeout ran out)

    def _with_room(self) -> _Member | None:
        """The oldest connection with room (filling one before using the next)."""
        for member in self._members:
            room = member.load < self._per_connection and not member.retired
            if room and member.connection.is_open:
                return member
        return None

    async def _wait_for_release(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            else:  # woken for room it will not take (it timed out meanwhile): pass it on
                self._wake(1)
            raise

    def _release(self, member: _Member) -> None:
        member.load -= 1
        if member.retired and member.load == 0:
            self._forget(member)  # room for a new connection, if someone waits for one
            _spawn(member.connection.close())
        if self._waiters:
            self._wake(1)

    def _wake(self, count: int) -> None:
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    # -- connections --------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            connection = await Connection.open(
                self.url,
                await fresh_headers(self._headers),
                binary=self._binary,
                timeout=self._timeout,
                route=self._route,
            )
        finally:
            self._opening = None
        if self._closed:  # closed while this one opened
            await connection.close()
            return
        member = _Member(connection)
        self._members.append(member)
        self._opened += 1
        _spawn(self._watch(member))
        self._wake(self._per_connection)

    async def _watch(self, member: _Member) -> None:
        """Forget a connection once it drops; those waiting may open its replacement."""
        await member.connection.wait_closed()
        self._forget(member)
        self._wake(len(self._waiters))

    def _forget(self, member: _Member) -> None:
        if member in self._members:
            self._members.remove(member)


def _retrieved(task: asyncio.Task[None]) -> None:
    """An opening that failed after every caller waiting for it gave up: nothing to report."""
    if not task.cancelled():
        task.exception()
