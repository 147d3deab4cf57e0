"""Transports to an ASGI app in this process, with no socket: `AsyncClient(app=...)` and
`Client(app=...)` (tests, and programs that embed Roost's app or one built on it).

The app's lifespan runs as a server runs it: startup once, before the first call (or at
`async with`), and shutdown once, when the client is closed; every client derived from it
(signed in, another tenant) shares the one transport, so the one app. Requests go through
httpx's `ASGITransport`; an exception the app raises while answering is logged and answered
500, as a server does (the SDK raises `ServerError`), and one that takes longer than the
client's timeout is cancelled (`TimeoutError`). Each request's scope carries a copy of the
state the lifespan set (`scope["state"]`), as uvicorn's does.

The sync transport runs the async one on an event loop in a daemon thread of its own (the
realtime engine's portal), which the app, its lifespan and its background work live on;
request bodies are read before they cross (a sync body cannot be iterated on that loop).

WebSockets (`client.realtime`, subscriptions, `client.rpc`) are not carried: the client
refuses them with a `ConfigurationError` naming what to do instead (`websocket_refusal`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, TypeAlias

import httpx

from roost.client._realtime.portal import Portal
from roost.errors import ConfigurationError, ConnectionError

Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Message, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: `roost.server.create_app(...)`, or any app (Starlette, FastAPI...)."""

IN_PROCESS_URL: Final = "http://roost.in-process"
"""The address requests to an in-process app name, unless the client is given an `api_url`."""

logger = logging.getLogger("roost.client")


def websocket_refusal(what: str) -> ConfigurationError:
    """The error of a WebSocket feature asked of an in-process client."""
    return ConfigurationError(
        f"{what} needs a WebSocket, which a client of an in-process app (app=...) does not "
        "open: it speaks HTTP only. Serve the app on a socket and give its address as "
        "api_url= (in tests, roost.testing's roost_server fixture or start_roost_server())",
        code="in_process_http_only",
        details={"field": "app"},
    )


class _Lifespan:
    """The app's lifespan protocol, driven as a server drives it: one task runs the app's
    lifespan call from startup to shutdown. An app that refuses the lifespan scope (it raises
    or returns before answering startup) has none, as the ASGI spec says."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._running = False  # started, and not yet shut down
        self._failure: ConnectionError | None = None

    async def start(self) -> None:
        """Run the app's startup, once; raise ConnectionError (every time) if it failed."""
        if self._task is None:
            async with self._lock:
                if self._task is None:
                    await self._startup()
        if self._failure is not None:
            raise self._failure

    async def stop(self) -> None:
        """Run the app's shutdown, once, if it started; raise ConnectionError if it failed."""
        async with self._lock:
            task, self._task = self._task, None
            if task is None:
                return
            answer: Message = {"type": "lifespan.shutdown.complete"}
            if self._running:
                self._running = False
                await self._to_app.put({"type": "lifespan.shutdown"})
                answer = await self._from_app.get()
            await task
        if answer["type"] != "lifespan.shutdown.complete":
            raise ConnectionError(
                f"the app failed to shut down: {answer.get('message') or answer['type']}",
                code="app_shutdown_failed",
            )

    async def _startup(self) -> None:
        self._task = asyncio.create_task(self._run(), name="roost-app-lifespan")
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._from_app.get()
        if answer["type"] == "lifespan.startup.complete":
            self._running = True
        elif answer["type"] == "lifespan.startup.failed":
            await self._task
            self._failure = ConnectionError(
                f"the app failed to start: {answer.get('message') or 'no reason given'}",
                code="app_startup_failed",
            )

    async def _run(self) -> None:
        scope: Message = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self._app(scope, self._to_app.get, self._from_app.put)
        except Exception:
            if self._running:
                logger.exception("the in-process app's lifespan raised")
            else:  # before answering startup (or after failing it): it has no lifespan
                logger.debug("the in-process app has no lifespan", exc_info=True)
        finally:
            await self._from_app.put({"type": "lifespan.ended"})


class AsyncASGIAppTransport(httpx.AsyncBaseTransport):
    """Requests answered by `app` in this process, with its lifespan run around them."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._lifespan = _Lifespan(app)
        self._asgi = httpx.ASGITransport(app=self._answer, raise_app_exceptions=False)

    async def start(self) -> None:
        """Run the app's startup now rather than at the first request (once either way)."""
        await self._lifespan.start()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._lifespan.start()
        seconds = request.extensions.get("timeout", {}).get("read")
        try:  # the client's timeout holds as against a server (the app's work is cancelled)
            async with asyncio.timeout(seconds):
                return await self._asgi.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"the in-process app did not answer within {seconds} s", request=request
            ) from None

    async def aclose(self) -> None:
        await self._lifespan.stop()

    async def _answer(self, scope: Message, receive: Receive, send: Send) -> None:
        scope["state"] = dict(self._lifespan.state)
        try:
            await self._app(scope, receive, send)
        except Exception:
            logger.exception(
                "the in-process app raised on %s %s", scope.get("method"), scope.get("path")
            )
            raise  # ASGITransport answers 500 (or ends the answer the app had begun)


class ASGIAppTransport(httpx.BaseTransport):
    """The sync client's: the async transport on an event loop in a thread of its own."""

    def __init__(self, app: ASGIApp) -> None:
        self._portal = Portal(name="roost-in-process-app")
        self._transport = AsyncASGIAppTransport(app)

    def start(self) -> None:
        """Run the app's startup now rather than at the first request (once either way)."""
        self._portal.run(self._transport.start())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a sync body (a file, an iterator) cannot be read on the app's loop
        return self._portal.run(self._exchange(request))

    def close(self) -> None:
        try:
            if self._portal.started:
                self._portal.run(self._transport.aclose())
        finally:
            self._portal.stop()

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])  # still encoded
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            extensions=response.extensions,
        )
