"""Calls made at once, for the SDK tests: `AsyncBackground` runs them as tasks of the running
loop, `Background` (what `scripts/unasync.py` turns the name into for the sync tests) in
threads. Either way, leaving the block gives up the calls still running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class AsyncBackground:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Future[Any]] = []

    def start(self, call: Callable[[], Awaitable[Any]]) -> None:
        """Run `call()` alongside the test."""
        self._tasks.append(asyncio.ensure_future(call()))

    async def results(self) -> list[Any]:
        """What every call answered, in the order they were started (the first error raises)."""
        return list(await asyncio.gather(*self._tasks))

    async def __aenter__(self) -> AsyncBackground:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task


class Background:
    def __init__(self) -> None:
        self._threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="test-call")
        self._futures: list[Future[Any]] = []

    def start(self, call: Callable[[], Any]) -> None:
        """Run `call()` alongside the test, in a thread."""
        self._futures.append(self._threads.submit(call))

    def results(self) -> list[Any]:
        """What every call answered, in the order they were started (the first error raises)."""
        return [future.result(timeout=60) for future in self._futures]

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # calls still blocked end when the test's client closes (after this block)
        self._threads.shutdown(wait=False, cancel_futures=True)
