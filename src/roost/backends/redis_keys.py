"""Finding keys on Redis by pattern, for the stores that drop a whole prefix at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


def glob_escape(text: str) -> str:
    """`text` as a literal inside a SCAN/KEYS pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


async def matching_batches(redis: Any, pattern: str, size: int = 500) -> AsyncIterator[list[str]]:
    """The keys matching `pattern`, a few hundred at a time, found with SCAN (which never
    blocks Redis as KEYS does). Deleting what a batch holds while the scan goes on is safe: SCAN
    still returns every key that is present throughout."""
    batch: list[str] = []
    async for key in redis.scan_iter(match=pattern, count=size):
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
