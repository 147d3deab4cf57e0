"""Live subscriptions (stream rooms, pub/sub patterns, table changes) as the doors hold them.

A feed pushes wire structs to its connection through `push`, which never blocks: the
WebSocket door queues them and drops a connection that does not keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("roost.feeds")

Push = Callable[[Any], None]


class Feed:
    """A subscription with a task of its own; `close` stops it and releases what it holds."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cleanups: list[Callable[[], Any]] = []

    def run(self, work: Callable[[], Any]) -> None:
        self._task = asyncio.create_task(self._guarded(work))

    def on_close(self, cleanup: Callable[[], Any]) -> None:
        self._cleanups.append(cleanup)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for cleanup in reversed(self._cleanups):
            result = cleanup()
            if asyncio.iscoroutine(result):
                with contextlib.suppress(Exception):
                    await result
        self._cleanups.clear()

    @staticmethod
    async def _guarded(work: Callable[[], Any]) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a live subscription failed")
