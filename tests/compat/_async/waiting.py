"""Waiting for what a subscription receives (copied to the sync tests by unasync)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], seconds: float = 15) -> None:
    """Return once `condition()` is true; fail the test if it is not within `seconds`."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not come true in time")
