"""Waiting for what another task, thread, process or store does: `wait_until` and `wait_for`
in async tests, `eventually` in sync ones."""

from __future__ import annotations

import asyncio
import time
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


def eventually(condition: Callable[[], bool], seconds: float = 20) -> None:
    """Return once `condition()` is true (asked every 20 ms); fail the test if it is not
    within `seconds` (for sync tests)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.02)
