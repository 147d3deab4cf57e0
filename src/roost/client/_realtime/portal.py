"""The realtime engine for the sync client: the same `AsyncRealtime`, on an event loop in a
daemon thread of its own; callbacks run on that thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from roost.client._realtime.engine import AsyncRealtime, AsyncSubscription, Event, HeaderSource

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread, for running the engine under the sync client."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_run_until_stopped,
                    args=(self._loop,),
                    name="roost-realtime",
                    daemon=True,
                )
                self._thread.start()
            return self._loop

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result()

    def stop(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)


async def _next(items: AsyncGenerator[Any, None]) -> Any:
    return await anext(items)


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


class Subscription:
    """A live subscription of the sync client; `unsubscribe()` ends it."""

    def __init__(self, portal: _Portal, subscription: AsyncSubscription) -> None:
        self._portal = portal
        self._subscription = subscription

    @property
    def room(self) -> str:
        """The room, table or patterns this subscription follows."""
        return self._subscription.room

    @property
    def active(self) -> bool:
        return self._subscription.active

    def unsubscribe(self) -> None:
        """Stop receiving events (safe to call twice)."""
        self._portal.run(self._subscription.unsubscribe())

    def __repr__(self) -> str:
        return repr(self._subscription)


class Realtime:
    """The engine for the sync client: the same `AsyncRealtime`, on a loop of its own."""

    def __init__(self, url: str, headers: HeaderSource, **options: Any) -> None:
        self._portal = _Portal()
        self._engine = AsyncRealtime(url, headers, **options)

    def on(self, event: Event, handler: Callable[..., Any]) -> None:
        self._engine.on(event, handler)

    @property
    def connected(self) -> bool:
        return self._engine.connected

    @property
    def disconnect_reason(self) -> str:
        """Why the last connection ended (empty before any did)."""
        return self._engine.disconnect_reason

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self._portal.run(self._engine.call(method, params))

    def stream(self, method: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Run a streamed operation and yield its items in order; leaving the loop early
        cancels it on the server."""
        items = self._engine.stream(method, params)
        try:
            while True:
                try:
                    yield self._portal.run(_next(items))
                except StopAsyncIteration:
                    return
        finally:
            self._portal.run(items.aclose())

    def subscribe(
        self, method: str, params: dict[str, Any], on_event: Callable[[Any], Any], room: str
    ) -> Subscription:
        subscription = self._portal.run(self._engine.subscribe(method, params, on_event, room))
        return Subscription(self._portal, subscription)

    def close(self) -> None:
        self._portal.run(self._engine.close())
        self._portal.stop()
