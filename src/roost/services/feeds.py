"""Live subscriptions (stream rooms, pub/sub patterns, table changes) as the doors hold them.

A feed pushes wire structs to its connection through `push`, which never blocks: the
WebSocket door queues them and drops a connection that does not keep up.

What a feed holds (a bus listener, interest counts, its task) must be let go of in every case,
or a server leaks a little with every closed connection: `close` finishes its release even
when the caller is cancelled meanwhile, and a feed being opened is released by `opening` when
the opening fails or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

logger = logging.getLogger("roost.feeds")

Push = Callable[[Any], None]

_releasing: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly
_RECANCEL = 1.0  # seconds before a task that was told to end is told again


class Feed:
    """A subscription with a task of its own; `close` stops it and releases what it holds."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cleanups: list[Callable[[], Any]] = []
        self._released: asyncio.Task[None] | None = None

    def run(self, work: Callable[[], Any]) -> None:
        self._task = asyncio.create_task(self._guarded(work))

    def on_close(self, cleanup: Callable[[], Any]) -> None:
        self._cleanups.append(cleanup)

    async def close(self) -> None:
        """Stop the feed and release what it holds; the release runs to its end even if the
        caller is cancelled while it waits. Closing again is a no-op."""
        if self._released is None:
            self._released = asyncio.get_running_loop().create_task(self._release())
            _releasing.add(self._released)
            self._released.add_done_callback(_releasing.discard)
        await asyncio.shield(self._released)

    async def _release(self) -> None:
        if self._task is not None:
            await end_tasks([self._task])
        await self._clean_up()

    async def _clean_up(self) -> None:
        cleanups, self._cleanups = self._cleanups[::-1], []
        for cleanup in cleanups:
            try:
                result = cleanup()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one failed release must not keep the others
                logger.warning("could not release part of a subscription", exc_info=True)

    async def _guarded(self, work: Callable[[], Any]) -> None:
        """Run the feed's work; if it fails, what it holds is let go of at once (a bus
        listener must not go on gathering events for a feed that no longer reads them)."""
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a live subscription failed")
            await self._clean_up()


async def end_tasks(tasks: list[asyncio.Task[Any]], patience: float | None = None) -> None:
    """Cancel `tasks` and wait until they have ended (or `patience` seconds have passed).
    A task whose cancellation was swallowed is cancelled again: redis-py loses one now and
    then while a command waits for a pooled connection, and the task then goes on waiting
    (a feed for its next event) for good."""
    deadline = None if patience is None else asyncio.get_running_loop().time() + patience
    running = [task for task in tasks if not task.done()]
    while running:
        for task in running:
            task.cancel()
        left = None if deadline is None else deadline - asyncio.get_running_loop().time()
        if left is not None and left <= 0:
            return
        await asyncio.wait(running, timeout=_RECANCEL if left is None else min(left, _RECANCEL))
        running = [task for task in running if not task.done()]


@contextlib.asynccontextmanager
async def opening() -> AsyncIterator[Feed]:
    """A new feed that is closed again if opening it fails or is cancelled."""
    feed = Feed()
    try:
        yield feed
    except BaseException:
        await feed.close()
        raise
