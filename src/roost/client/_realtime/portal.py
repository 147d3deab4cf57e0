"""The realtime engine and the RPC pool for the sync client: the same `AsyncRealtime` and
`AsyncPool`, each on an event loop in a daemon thread of its own; callbacks run on that
thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Generator
from concurrent.futures import Future
from typing import Any, TypeVar

from roost.client._core.config import ClientConfig
from roost.client._core.rpc import PoolStats
from roost.client._realtime.engine import AsyncRealtime, AsyncSubscription, Event, HeaderSource
from roost.client._realtime.pool import AsyncPool

T = TypeVar("T")


class Portal:
    """An event loop in a daemon thread, started by its first use: the sync client runs the
    realtime engine, the RPC pool and an in-process app (`client/_asgi.py`) on one each."""

    def __init__(self, name: str = "roost-realtime") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_run_until_stopped,
                    args=(self._loop,),
                    name=self._name,
                    daemon=True,
                )
                self._thread.start()
            return self._loop

    @property
    def started(self) -> bool:
        """Whether its loop runs (it starts at the first `run`)."""
        return self._loop is not None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result()

    def iterate(self, items: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        """Yield what `items` (an async generator run on the loop) yields. Leaving early
        (break, `close()`, the generator collected) closes `items` on the loop."""
        try:
            while True:
                try:
                    yield self.run(_next(items))
                except StopAsyncIteration:
                    return
        finally:
            if not self._stopped:  # a closed client has closed it already
                self.run(items.aclose())

    def stop(self) -> None:
        """Stop the loop, once the calls a close has just ended have told their threads."""
        loop = self._loop
        if loop is not None:
            settled = asyncio.run_coroutine_threadsafe(_settle(), loop)
            with contextlib.suppress(TimeoutError):  # a loop too busy to settle still stops
                settled.result(timeout=_PATIENCE * 3)
        with self._lock:
            self._stopped = True
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)


_PATIENCE = 1.0  # seconds a stopping loop gives its other tasks, then as long once cancelled


async def _settle() -> None:
    """Let the loop's other tasks end before it stops: a caller woken by a close (its call
    failed, its wait for room ended) must still hand its error to its thread, which would
    otherwise wait forever. What has not ended in time is cancelled."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if not others:
        return
    _, pending = await asyncio.wait(others, timeout=_PATIENCE)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=_PATIENCE)


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


class Subscription:
    """A live subscription of the sync client; `unsubscribe()` ends it."""

    def __init__(self, portal: Portal, subscription: AsyncSubscription) -> None:
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
        self._portal = Portal()
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

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        return self._portal.run(self._engine.call(method, params, timeout=timeout))

    def stream(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Generator[Any, None, None]:
        """Run a streamed operation and yield its items in order; leaving the loop early
        cancels it on the server."""
        return self._portal.iterate(self._engine.stream(method, params, timeout=timeout))

    def subscribe(
        self, method: str, params: dict[str, Any], on_event: Callable[[Any], Any], room: str
    ) -> Subscription:
        subscription = self._portal.run(self._engine.subscribe(method, params, on_event, room))
        return Subscription(self._portal, subscription)

    def close(self) -> None:
        self._portal.run(self._engine.close())
        self._portal.stop()


class Pool:
    """The RPC pool for the sync client: the same `AsyncPool`, on a loop of its own."""

    def __init__(self, config: ClientConfig, headers: HeaderSource) -> None:
        self._portal = Portal()
        self._pool = AsyncPool(config, headers)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        return self._portal.run(self._pool.call(method, params, timeout=timeout))

    def stream(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Generator[Any, None, None]:
        return self._portal.iterate(self._pool.stream(method, params, timeout=timeout))

    def stats(self) -> PoolStats:
        return self._pool.stats()

    def close(self) -> None:
        self._portal.run(self._pool.close())
        self._portal.stop()
