"""Counting events per key: failures over a sliding window (failed logins, abusive callers),
and calls in fixed windows (request rates, `server/limits.py`).

The embedded limiter counts in this process; the Redis one (with the messaging backends)
counts across replicas. Both follow `RateLimiter`.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol


class RateLimiter(Protocol):
    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        """Seconds until `key` may try again, or None if fewer than `limit` hits in `window`."""
        ...

    async def hit(self, key: str, window: float) -> None:
        """Count one event for `key`; events older than `window` seconds stop counting."""
        ...

    async def reset(self, key: str) -> None:
        """Forget every event of `key`. Resetting an unknown key is a no-op."""
        ...

    async def count(self, counts: Mapping[str, int], ttl: float) -> dict[str, int]:
        """Add `counts[key]` to the counter of each key and return the counters' totals (as
        every process added to them). A counter is forgotten `ttl` seconds after it starts;
        name a key after its window (`<who>:<window number>`) to count per fixed window."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Sliding windows kept in this process; bounded by `max_keys` (oldest keys dropped)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._max_keys = max_keys
        self._counters: dict[str, tuple[float, int]] = {}  # key -> (forget at, total)

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        hits = self._hits.get(key)
        if not hits:
            return None
        now = time.monotonic()
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) < limit:
            return None
        return max(hits[-limit] + window - now, 0.001)

    async def hit(self, key: str, window: float) -> None:
        now = time.monotonic()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._hits.pop(next(iter(self._hits)))
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - window:
            hits.popleft()
        hits.append(now)

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    async def count(self, counts: Mapping[str, int], ttl: float) -> dict[str, int]:
        now = time.monotonic()
        if len(self._counters) >= self._max_keys:
            self._counters = {k: v for k, v in self._counters.items() if v[0] > now}
        totals = {}
        for key, n in counts.items():
            until, total = self._counters.get(key, (now + ttl, 0))
            if until <= now:
                until, total = now + ttl, 0
            self._counters[key] = (until, total + n)
            totals[key] = total + n
        return totals

    async def close(self) -> None:
        return None


class RedisRateLimiter:
    """Sliding windows in Redis sorted sets, so every replica counts the same events."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        name, now = _PREFIX + key, time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - window)
            pipe.zrevrange(name, limit - 1, limit - 1, withscores=True)
            _, nth_newest = await pipe.execute()
        if not nth_newest:
            return None
        return max(float(nth_newest[0][1]) + window - now, 0.001)

    async def hit(self, key: str, window: float) -> None:
        name, now = _PREFIX + key, time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - window)
            pipe.zadd(name, {f"{now}:{uuid.uuid4().hex}": now})
            pipe.expire(name, int(window) + 1)
            await pipe.execute()

    async def reset(self, key: str) -> None:
        await self._redis.delete(_PREFIX + key)

    async def count(self, counts: Mapping[str, int], ttl: float) -> dict[str, int]:
        keys = list(counts)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incrby(_PREFIX + key, counts[key])
                pipe.expire(_PREFIX + key, max(int(ttl + 0.999), 1))
            replies = await pipe.execute()
        return {key: int(total) for key, total in zip(keys, replies[::2], strict=True)}

    async def close(self) -> None:
        await self._redis.aclose()


_PREFIX = "roost:limit:"
