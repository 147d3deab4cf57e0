"""Event streams on Redis: a sorted set per room scored by offset, appended by one Lua script
(offset, retention and the event in one atomic step, timed by the Redis clock).

The reads of live feeds (a subscription's start and its catch-ups) go through a small pool
of their own that waits when all its connections are busy: a burst of thousands of
subscriptions queues there instead of taking every connection of the pool calls use (whose
exhaustion answered ordinary calls with errors).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from roost.backends.errors import redis_outage, translate_errors
from roost.backends.redis_keys import glob_escape, matching_batches
from roost.backends.redis_pool import waiting_client
from roost.backends.stream import NewEvent, Page, Retention, StoredEvent

_APPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = tonumber(ARGV[3])
local last = redis.call('INCRBY', KEYS[1], count) - 1
local out = {}
for i = 1, count do
  local base = 3 + (i - 1) * 4
  local offset = last - count + i
  local event = cjson.encode({i = ARGV[base + 1], o = offset, e = ARGV[base + 2],
                              d = ARGV[base + 3], m = ARGV[base + 4], t = now})
  redis.call('ZADD', KEYS[2], offset, event)
  out[i] = event
end
local keep = tonumber(redis.call('HGET', KEYS[3], 'max_events') or ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', last - keep)
local age = tonumber(redis.call('HGET', KEYS[3], 'max_age') or ARGV[2])
if age > 0 then
  for _ = 1, 1000 do
    local first = redis.call('ZRANGE', KEYS[2], 0, 0)
    if #first == 0 or cjson.decode(first[1]).t >= now - age * 1000 then break end
    redis.call('ZREM', KEYS[2], first[1])
  end
end
return out
"""

_LIVE_CONNECTIONS = 8

_READ = """
local newest = tonumber(redis.call('GET', KEYS[1]) or '0') - 1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local oldest = newest + 1
if #first > 0 then oldest = tonumber(first[2]) end
local from = tonumber(ARGV[1])
if from < 0 then from = math.max(newest + 1 + from, 0) end
local events = redis.call('ZRANGEBYSCORE', KEYS[2], from, ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
return {oldest, newest, events}
"""


_BASE = "roost:s:{"


def _keys(room: str) -> list[str]:
    base = f"{_BASE}{room}}}:"
    return [base + "seq", base + "events", base + "cfg"]


def _event(raw: str) -> StoredEvent:
    e = json.loads(raw)
    return StoredEvent(e["i"], int(e["o"]), e["e"], e["d"], json.loads(e["m"]), e["t"] / 1000)


@translate_errors("Redis", redis_outage)
class RedisStreamStore:
    kind = "redis"

    def __init__(self, url: str) -> None:
        self._redis: Any = waiting_client(url, decode_responses=True)
        self._live: Any = waiting_client(
            url, decode_responses=True, size=_LIVE_CONNECTIONS, wait=None
        )
        self._append = self._redis.register_script(_APPEND)
        self._read = self._redis.register_script(_READ)
        self._live_read = self._live.register_script(_READ)

    async def append(
        self, room: str, events: list[NewEvent], default_retention: Retention
    ) -> list[StoredEvent]:
        args: list[str | float] = [
            default_retention.max_events,
            default_retention.max_age or 0,
            len(events),
        ]
        for e in events:
            args += [secrets.token_hex(12), e.event_type, e.data, json.dumps(e.metadata)]
        raws = await self._append(keys=_keys(room), args=args)
        return [_event(raw) for raw in raws]

    async def read(
        self, room: str, from_offset: int, to_offset: int | None, limit: int, *, live: bool = False
    ) -> Page:
        upper = "+inf" if to_offset is None else to_offset
        script = self._live_read if live else self._read
        oldest, newest, raws = await script(keys=_keys(room), args=[from_offset, upper, limit])
        return Page([_event(raw) for raw in raws], int(oldest), int(newest))

    async def configure(self, room: str, retention: Retention) -> None:
        cfg = _keys(room)[2]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(cfg, "max_events", retention.max_events)
            if retention.whole_max_age is None:
                pipe.hdel(cfg, "max_age")
            else:
                pipe.hset(cfg, "max_age", retention.whole_max_age)
            await pipe.execute()

    async def delete_prefix(self, prefix: str) -> None:
        async for keys in matching_batches(self._redis, _BASE + glob_escape(prefix) + "*"):
            await self._redis.unlink(*keys)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._live.aclose()
