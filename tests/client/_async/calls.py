"""Helpers shared by the SDK tests (`scripts/unasync.py` copies them to the sync tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeAlias

# A call a test makes later to see it refused: SDK calls answer different types, and a list of
# such lambdas needs one type that fits them all (and that the sync tests can call too).
Call: TypeAlias = Callable[[], Awaitable[object]]


async def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Return once `condition()` is true (the client's own threads or tasks make it so)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not come true in time")
