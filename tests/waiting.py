"""Waiting for what another task, thread, process or store does (async tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(condition: Callable[[], bool], seconds: float = 15) -> None:
    """Return once `condition()` is true; fail the test if it is not within `seconds`."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not come true in time")


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    """Return once `await check()` is true (asked every 10 ms, for what a store times on its
    own clock, such as a Redis TTL); fail the test if it is not within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("the check did not come true in time")
        await asyncio.sleep(0.01)
