"""The WebSocket door: every operation as RPC on one connection, streamed operations as chunk
frames, plus live subscriptions.

A plain ASGI app, and a thin one: what the frames mean (calls and their runs, cancels, streams
and their back-pressure, subscriptions, the outbox and its bound) is `server/rpc.py`'s
`RpcSession`, which never touches the socket. The door authenticates, accepts, feeds each frame
it receives to the session, writes what the session queues (text frames for JSON, binary for
MessagePack), and closes.

The connection is authenticated like an HTTP request (headers, or the `access_token` /
`api_key` query parameters for browsers, or the dashboard's session cookie with its
`csrf_token` query parameter: `server/session_cookie.py`); the session re-identifies it at
most once a second, so a revoked credential stops working on open connections too, and a
connection holding subscriptions is closed with 4401 and the reason's code once its
credential no longer holds; one opened with a running function's token, as soon as the run
ends here (`Platform.on_credential_forgotten`), or within a second of its record saying so
(a run of an embedded `roost worker`, which no bus reaches).
A client that reads so slowly that the outbox passes `ws_max_outbound_bytes` is dropped (close
code 4008, the session's decision) instead of letting the server's memory grow.

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
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from roost.errors import AuthenticationError, RateLimitError, RoostError
from roost.server.dispatch import Dispatcher, guard, header_credential, headers_of
from roost.server.eager import Starter
from roost.server.responses import request_id
from roost.server.rpc import RpcSession
from roost.services.principals import cache_key, check_run_goes_on
from roost.wire.codec import JSON, MSGPACK

PATH = "/api/v1/ws"
TENANT_GONE = 4404
TOO_MANY = 4429  # a limit of the caller's (connections) refuses the connection
_RUN_WATCH = 1.0  # seconds between checks that a running function's connection's run goes on

_ending: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly
logger = logging.getLogger("roost.server")


class WebSocketDoor:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.starter = Starter()
        self.open: dict[str, set[_Connection]] = {}  # the accepted connections, by tenant
        # the connections of running functions, by their runtime token's principal cache key
        self.of_runs: dict[str, set[_Connection]] = {}
        dispatcher.platform.on_tenant_deleted.append(self._end_tenant)
        dispatcher.platform.on_credential_forgotten.append(self._end_run)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] != PATH:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4404, "reason": f"use {PATH}"})
            return
        await _Connection(self, scope, receive, send).serve()

    def _end_tenant(self, name: str) -> None:
        for connection in list(self.open.get(name, ())):
            connection.end(TENANT_GONE, "tenant_deleted")

    def _end_run(self, key: str) -> None:
        """A runtime token ended with its run: a connection it opened (kept in a warm worker's
        globals, say) is closed now, its subscriptions with it, rather than at the next
        credential check (`ws_credential_watch_seconds`), while the next caller's run goes
        on in that worker."""
        for connection in list(self.of_runs.get(key, ())):
            connection.end(4401, "token_expired")


class _Connection:
    """One socket: accepted (or refused with the reason), its frames fed to an `RpcSession`,
    what the session queues written out, and closed when either side ends."""

    def __init__(self, door: WebSocketDoor, scope: Scope, receive: Receive, send: Send):
        self.door = door
        self.dispatcher = door.dispatcher
        self.receive, self.send = receive, send
        self.limits = self.dispatcher.limits
        headers = _headers(scope)
        self.session = RpcSession(self.dispatcher, door.starter, scope, headers, self._close_soon)

    async def serve(self) -> None:
        await self.receive()  # websocket.connect
        session = self.session
        try:
            release = self.limits.hold_connection(await session.identify())
        except Exception as exc:
            rid = request_id(session.headers.get("x-request-id"))
            await self._refuse(guard(exc, rid), rid)
            return
        await self.send({"type": "websocket.accept"})
        tenant = session.ctx.tenant if session.ctx else ""
        self.door.open.setdefault(tenant, set()).add(self)
        run, token = self._run_credential()
        if run is not None:
            self.door.of_runs.setdefault(run, set()).add(self)
        writer = asyncio.create_task(self._write())
        watcher = asyncio.create_task(self._watch(token))
        on_frame = session.receive
        try:
            while not session.closing:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    on_frame(message["bytes"], MSGPACK)
                elif message.get("text") is not None:
                    on_frame(message["text"].encode(), JSON)
        finally:
            _leave(self.door.open, tenant, self)
            if run is not None:
                _leave(self.door.of_runs, run, self)
            session.stop()
            writer.cancel()
            watcher.cancel()
            # The server may cancel this task once the client is gone: the release runs in a
            # task of its own, to its end.
            await asyncio.shield(_to_the_end(self._let_go(release)))
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _run_credential(self) -> tuple[str, str] | tuple[None, None]:
        """A running function's credential (its runtime token) and its principal cache key."""
        ctx = self.session.ctx
        if ctx is None or ctx.principal is None or ctx.principal.kind != "function":
            return None, None
        credential = header_credential(self.session.headers)
        if credential is None:
            return None, None
        return cache_key(credential), credential.token

    def end(self, code: int, reason: str) -> None:
        """Close the connection from outside, at once: nothing more is sent on it, and every
        subscription it holds is released now rather than when the client answers the close."""
        if self.session.closing:
            return
        self.session.stop()
        _to_the_end(self._end(code, reason))

    async def _end(self, code: int, reason: str) -> None:
        await self._close(code, reason)
        await self.session.close_feeds()

    async def _let_go(self, release: Callable[[], None]) -> None:
        """End the calls still running, close every subscription, release the connection."""
        try:
            await self.session.wind_down()
        finally:
            release()

    async def _refuse(self, error: RoostError, rid: str) -> None:
        """Accept only to say why, then close: 4401 unauthenticated, 4429 past a limit."""
        await self.send({"type": "websocket.accept"})
        status = error.status_code or 500
        frame = {"id": None, "error": error.to_dict(), "status": status, "request_id": rid}
        await self.send({"type": "websocket.send", "text": JSON.encode(frame).decode()})
        if isinstance(error, AuthenticationError):
            code = 4401
        else:
            code = TOO_MANY if isinstance(error, RateLimitError) else 4403
        await self.send({"type": "websocket.close", "code": code, "reason": error.code})

    async def _watch(self, run_token: str | None) -> None:
        """A connection holding subscriptions is closed with 4401 and the reason's code when
        its credential no longer holds, so the client can sign in again. A running function's
        connection (`run_token`) also once its run is over, as its record says, each second:
        its end here closes it at once (`WebSocketDoor._end_run`), but a run of an embedded
        `roost worker` ends in a process no bus reaches."""
        platform = self.dispatcher.platform
        every = platform.settings.ws_credential_watch_seconds
        if run_token is not None:
            every = min(every, _RUN_WATCH)
        while True:
            await asyncio.sleep(every)
            try:
                if run_token is not None and self.session.feeds:
                    await check_run_goes_on(platform, run_token)
                await self.session.check_credential()
            except AuthenticationError as exc:
                self.session.stop()
                await self._close(4401, exc.code)
                return
            except Exception:  # the database away for a moment: the next check decides
                logger.warning("could not check a WebSocket's credential", exc_info=True)

    def _close_soon(self, code: int, reason: str) -> None:
        """The session's request to close (a slow consumer): in a task of its own, since the
        writer may be stuck sending to that very client."""
        _to_the_end(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    async def _write(self) -> None:
        session, send = self.session, self.send
        while True:
            await session.wake.wait()
            session.wake.clear()
            while (frame := session.take()) is not None:
                data, codec = frame
                if codec is JSON:
                    await send({"type": "websocket.send", "text": data.decode()})
                else:
                    await send({"type": "websocket.send", "bytes": data})


def _to_the_end(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """`work` in a task that runs to its end, held until then (the loop holds tasks weakly)."""
    task = asyncio.create_task(work)
    _ending.add(task)
    task.add_done_callback(_ending.discard)
    return task


def _leave(index: dict[str, set[_Connection]], key: str, connection: _Connection) -> None:
    """Take `connection` out of `index[key]`, and the key out once nothing is left under it."""
    held = index.get(key)
    if held is not None:
        held.discard(connection)
        if not held:
            del index[key]


def _headers(scope: Scope) -> dict[str, str]:
    headers = headers_of(scope)
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    if "authorization" not in headers:
        if "access_token" in query:
            headers["authorization"] = f"Bearer {query['access_token']}"
        elif "api_key" in query:
            headers["authorization"] = f"Api-Key {query['api_key']}"
    if "csrf_token" in query and "x-roost-csrf" not in headers:
        headers["x-roost-csrf"] = query["csrf_token"]  # the dashboard's, with its session cookie
    if "tenant" in query and "x-roost-tenant" not in headers:
        headers["x-roost-tenant"] = query["tenant"]
    return headers
