"""Counting events per key: failures over a sliding window (sign-in attempts, abusive callers),
and calls in fixed windows (request rates, `server/limits.py`).

The embedded limiter counts in this process; the Redis one (with the messaging backends)
counts across replicas. Both follow `RateLimiter`.

`take` counts and checks in one atomic step, so that of many concurrent callers at most
`limit` are let through: checking first and counting afterwards lets every caller that
checked before the first one counted through.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from roost.backends import messaging_backend
from roost.backends.errors import redis_outage, translate_errors
from roost.clock import Clock


class RateLimiter(Protocol):
    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        """Seconds until `key` may try again, or None if fewer than `limit` hits in `window`."""
        ...

    async def hit(self, key: str, window: float) -> None:
        """Count one event for `key`; events older than `window` seconds stop counting."""
        ...

    async def take(self, key: str, limit: int, window: float, event: str) -> float | None:
        """Count the event named `event` for `key` unless `limit` events already count in
        `window`: None when it was counted, else the seconds until one may be (and nothing is
        counted). Atomic: of concurrent calls, at most `limit` are counted."""
        ...

    async def release(self, key: str, event: str) -> None:
        """Stop counting one event `take` counted (a success that should not use up a
        limit). Releasing an event that is not counted is a no-op."""
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
    """Sliding windows kept in this process; bounded by `max_keys` (oldest keys dropped).
    `clock`: monotonic seconds."""

    def __init__(
        self, max_keys: int = 100_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._hits: dict[str, deque[tuple[float, str]]] = {}
        self._max_keys = max_keys
        self._counters: dict[str, tuple[float, int]] = {}  # key -> (forget at, total)

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        hits = self._hits.get(key)
        if not hits:
            return None
        return self._wait(hits, limit, window, self._clock())

    async def hit(self, key: str, window: float) -> None:
        now = self._clock()
        self._live(key, window, now).append((now, ""))

    async def take(self, key: str, limit: int, window: float, event: str) -> float | None:
        # no await between the check and the append: atomic on the event loop
        now = self._clock()
        hits = self._live(key, window, now)
        wait = self._wait(hits, limit, window, now)
        if wait is None:
            hits.append((now, event))
        return wait

    async def release(self, key: str, event: str) -> None:
        hits = self._hits.get(key, deque())
        for hit in hits:
            if hit[1] == event:
                hits.remove(hit)
                return

    def _live(self, key: str, window: float, now: float) -> deque[tuple[float, str]]:
        """The events of `key` still inside `window` (older ones dropped)."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._hits.pop(next(iter(self._hits)))
            hits = self._hits[key] = deque()
        while hits and hits[0][0] <= now - window:
            hits.popleft()
        return hits

    @staticmethod
    def _wait(
        hits: deque[tuple[float, str]], limit: int, window: float, now: float
    ) -> float | None:
        while hits and hits[0][0] <= now - window:
            hits.popleft()
        if len(hits) < limit:
            return None
        return max(hits[-limit][0] + window - now, 0.001)

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    async def count(self, counts: Mapping[str, int], ttl: float) -> dict[str, int]:
        now = self._clock()
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


@translate_errors("Redis", redis_outage)
class RedisRateLimiter:
    """Sliding windows in Redis sorted sets, so every replica counts the same events, timed
    by `clock` (wall time: replicas share the windows). Counters expire by Redis' clock."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        from roost.backends.redis_pool import waiting_client

        self._clock = clock
        self._redis: Any = waiting_client(url)
        self._take: Any = self._redis.register_script(_TAKE)
        self._count: Any = self._redis.register_script(_COUNT)

    async def blocked_for(self, key: str, limit: int, window: float) -> float | None:
        name, now = _PREFIX + key, self._clock()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - window)
            pipe.zrevrange(name, limit - 1, limit - 1, withscores=True)
            _, nth_newest = await pipe.execute()
        if not nth_newest:
            return None
        return max(float(nth_newest[0][1]) + window - now, 0.001)

    async def hit(self, key: str, window: float) -> None:
        name, now = _PREFIX + key, self._clock()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - window)
            pipe.zadd(name, {f"{now}:{uuid.uuid4().hex}": now})
            pipe.expire(name, int(window) + 1)
            await pipe.execute()

    async def take(self, key: str, limit: int, window: float, event: str) -> float | None:
        wait = await self._take(keys=[_PREFIX + key], args=[self._clock(), window, limit, event])
        return None if wait is None else float(wait)

    async def release(self, key: str, event: str) -> None:
        await self._redis.zrem(_PREFIX + key, event)

    async def reset(self, key: str) -> None:
        await self._redis.delete(_PREFIX + key)

    async def count(self, counts: Mapping[str, int], ttl: float) -> dict[str, int]:
        keys, ttl_ms = list(counts), max(round(ttl * 1000), 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                await self._count(keys=[_PREFIX + key], args=[counts[key], ttl_ms], client=pipe)
            replies = await pipe.execute()
        return {key: int(total) for key, total in zip(keys, replies, strict=True)}

    async def close(self) -> None:
        await self._redis.aclose()


def open_limiter(url: str | None, *, clock: Clock | None = None) -> RateLimiter:
    """The rate limiter of a `redis_url`: counts shared in Redis, or without one this
    process' own. Its windows are timed by `clock` (the machine's by default)."""
    clock = clock or Clock()
    if url is not None and messaging_backend(url) == "redis":
        return RedisRateLimiter(url, clock=clock.time)
    return MemoryRateLimiter(clock=clock.monotonic)


_PREFIX = "roost:limit:"

# One script so the check and the count are one step for every replica. The event is the
# member (scored by time); the answer is the wait as a string (Lua numbers come back as
# integers), or nil when the event was counted. Concurrent callers' clocks are read before
# their scripts run, in any order: a wait is never longer than the window.
_TAKE = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local nth = redis.call('ZREVRANGE', KEYS[1], limit - 1, limit - 1, 'WITHSCORES')
if #nth > 0 then
  return tostring(math.min(math.max(tonumber(nth[2]) + window - now, 0.001), window))
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.floor(window) + 1)
return false
"""

# A counter's expiry is set when it starts, never pushed back by later counts. A script: the
# key cannot expire between the two calls (it would then live on without one).
_COUNT = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""
