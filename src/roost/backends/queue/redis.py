"""Work queues on Redis: every move is one Lua script, so it is atomic across replicas.

Per queue (the `{...}` hash tag keeps a queue's keys on one cluster slot):
`ready` a sorted set scored by priority then publish order, `delayed` and `inflight` sorted sets
scored by the time (ms) they are due, `dead` a sorted set in publish order, `msg` a hash of
message envelopes, `seq` the publish counter and `cfg` the queue's settings. Times come from
the Redis server's clock, so replicas with skewed clocks agree on every deadline.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from roost.backends.errors import redis_outage, translate_errors
from roost.backends.queue import DEFAULT_MAX_DELIVERIES, Delivery, NackAction, QueueCounts
from roost.backends.redis_keys import glob_escape, matching_batches
from roost.backends.redis_pool import waiting_client

_NOW = (
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
)
_RANK = "local function rank(env) return (9 - env.p) * 1e12 + env.s end "

_PUBLISH = (
    _NOW
    + _RANK
    + """
local seq = redis.call('INCR', KEYS[4])
local max = tonumber(redis.call('HGET', KEYS[5], 'max_deliveries') or ARGV[6])
local env = {b = ARGV[2], p = tonumber(ARGV[3]), h = ARGV[4], d = 0, m = max, s = seq, t = now}
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(env))
local delay = tonumber(ARGV[5])
if delay > 0 then
  redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
  return redis.call('ZCARD', KEYS[1])
end
redis.call('ZADD', KEYS[1], rank(env), ARGV[1])
return redis.call('ZRANK', KEYS[1], ARGV[1])
"""
)

_CLAIM = (
    _NOW
    + _RANK
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], rank(cjson.decode(redis.call('HGET', KEYS[5], id))), id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', KEYS[3], id)
  local env = cjson.decode(redis.call('HGET', KEYS[5], id))
  if env.d >= env.m then redis.call('ZADD', KEYS[4], env.s, id)
  else redis.call('ZADD', KEYS[1], rank(env), id) end
end
local top = redis.call('ZRANGE', KEYS[1], 0, 0)
if #top == 0 then return false end
local id = top[1]
redis.call('ZREM', KEYS[1], id)
local env = cjson.decode(redis.call('HGET', KEYS[5], id))
env.d = env.d + 1
local raw = cjson.encode(env)
redis.call('HSET', KEYS[5], id, raw)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), id)
return {id, raw}
"""
)

_ACK = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

_NACK = (
    _RANK
    + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
local env = cjson.decode(redis.call('HGET', KEYS[4], ARGV[1]))
if ARGV[2] == '1' and env.d < env.m then
  redis.call('ZADD', KEYS[2], rank(env), ARGV[1])
  return 'requeued'
end
redis.call('ZADD', KEYS[3], env.s, ARGV[1])
return 'dead_lettered'
"""
)

_EXTEND = (
    _NOW
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

_PURGE = """
local batch, n, more = tonumber(ARGV[1]), 0, 0
for i = 1, 2 do
  local ids = redis.call('ZRANGE', KEYS[i], 0, batch - 1)
  if #ids > 0 then
    redis.call('HDEL', KEYS[3], unpack(ids))
    redis.call('ZREM', KEYS[i], unpack(ids))
  end
  n = n + #ids
  if #ids == batch then more = 1 end
end
return {n, more}
"""
"""At most ARGV[1] ready and as many delayed messages dropped: {how many, whether more are
left}. A script holds the whole Redis server while it runs, so a large queue is purged by
many short scripts, not one long one."""

_DEAD_NAMED = """
local function dead(named)
  if #named == 0 then return redis.call('ZRANGE', KEYS[1], 0, -1) end
  local found, seen = {}, {}
  for _, id in ipairs(named) do
    local score = not seen[id] and redis.call('ZSCORE', KEYS[1], id)
    seen[id] = true
    if score then found[#found + 1] = {tonumber(score), id} end
  end
  table.sort(found, function(a, b) return a[1] < b[1] end)
  local ids = {}
  for i, pair in ipairs(found) do ids[i] = pair[2] end
  return ids
end
"""
"""`dead(named)`: the ids of `named` in the dead set KEYS[1], oldest first and each once; with
none named, every dead id."""

_REPLAY = (
    _RANK
    + _DEAD_NAMED
    + """
local limit = tonumber(ARGV[1])
local ids = {}
if #ARGV == 1 then ids = redis.call('ZRANGE', KEYS[1], 0, limit - 1)
else ids = dead({unpack(ARGV, 2)}) end
local n = 0
for _, id in ipairs(ids) do
  if n >= limit then break end
  local raw = redis.call('HGET', KEYS[3], id)
  redis.call('ZREM', KEYS[1], id)
  if raw then
    local env = cjson.decode(raw)
    env.d = 0
    redis.call('HSET', KEYS[3], id, cjson.encode(env))
    redis.call('ZADD', KEYS[2], rank(env), id)
    n = n + 1
  end
end
return n
"""
)

_DELETE_DEAD = (
    _DEAD_NAMED
    + """
local batch = tonumber(ARGV[1])
local ids
if #ARGV == 1 then ids = redis.call('ZRANGE', KEYS[1], 0, batch - 1)
else ids = dead({unpack(ARGV, 2)}) end
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ids
"""
)
"""The named dead letters dropped, or with none named the oldest ARGV[1] (in batches, as
`_PURGE`)."""
_BATCH = 100


_BASE = "roost:q:{"


class _Keys:
    def __init__(self, queue: str) -> None:
        base = f"{_BASE}{queue}}}:"
        self.ready, self.delayed, self.inflight = (
            base + "ready",
            base + "delayed",
            base + "inflight",
        )
        self.dead, self.msg, self.seq, self.cfg = (
            base + "dead",
            base + "msg",
            base + "seq",
            base + "cfg",
        )


def _delivery(message_id: str, raw: str) -> Delivery:
    env = json.loads(raw)
    return Delivery(
        id=message_id,
        body=env["b"],
        priority=int(env["p"]),
        headers=json.loads(env["h"]),
        retry_count=max(int(env["d"]) - 1, 0),
        published_at=env["t"] / 1000,
    )


@translate_errors("Redis", redis_outage)
class RedisQueueStore:
    kind = "redis"

    def __init__(self, url: str) -> None:
        self._redis: Any = waiting_client(url, decode_responses=True)
        script = self._redis.register_script
        self._publish, self._claim, self._ack = script(_PUBLISH), script(_CLAIM), script(_ACK)
        self._nack, self._extend, self._purge = script(_NACK), script(_EXTEND), script(_PURGE)
        self._replay, self._delete_dead = script(_REPLAY), script(_DELETE_DEAD)

    async def publish(
        self, queue: str, body: str, *, priority: int, headers: dict[str, str], delay: float
    ) -> tuple[str, int]:
        k, message_id = _Keys(queue), secrets.token_hex(12)
        ahead = await self._publish(
            keys=[k.ready, k.delayed, k.msg, k.seq, k.cfg],
            args=[
                message_id,
                body,
                priority,
                json.dumps(headers),
                int(delay * 1000),
                DEFAULT_MAX_DELIVERIES,
            ],
        )
        return message_id, int(ahead)

    async def claim(self, queue: str, ack_deadline: float) -> Delivery | None:
        k = _Keys(queue)
        found = await self._claim(
            keys=[k.ready, k.delayed, k.inflight, k.dead, k.msg], args=[int(ack_deadline * 1000)]
        )
        return None if not found else _delivery(found[0], found[1])

    async def ack(self, queue: str, message_id: str) -> bool:
        k = _Keys(queue)
        return bool(await self._ack(keys=[k.inflight, k.msg], args=[message_id]))

    async def nack(self, queue: str, message_id: str, *, requeue: bool) -> NackAction | None:
        k = _Keys(queue)
        action = await self._nack(
            keys=[k.inflight, k.ready, k.dead, k.msg], args=[message_id, int(requeue)]
        )
        return action or None

    async def extend(self, queue: str, message_id: str, seconds: float) -> bool:
        k = _Keys(queue)
        return bool(await self._extend(keys=[k.inflight], args=[message_id, int(seconds * 1000)]))

    async def counts(self, queue: str) -> QueueCounts:
        k = _Keys(queue)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in (k.ready, k.delayed, k.inflight, k.dead):
                pipe.zcard(key)
            ready, delayed, in_flight, dead = await pipe.execute()
        return QueueCounts(ready=ready, delayed=delayed, in_flight=in_flight, dead=dead)

    async def purge(self, queue: str) -> int:
        k = _Keys(queue)
        total, more = 0, 1
        while more:
            n, more = await self._purge(keys=[k.ready, k.delayed, k.msg], args=[_BATCH])
            total += int(n)
        return total

    async def dead_letters(self, queue: str, limit: int) -> list[Delivery]:
        k = _Keys(queue)
        ids = await self._redis.zrange(k.dead, 0, limit - 1)
        if not ids:
            return []
        raws = await self._redis.hmget(k.msg, ids)
        return [_delivery(i, raw) for i, raw in zip(ids, raws, strict=True) if raw is not None]

    async def replay(self, queue: str, message_ids: list[str] | None, limit: int) -> int:
        if message_ids == []:
            return 0  # to the script, no id named means every one
        k = _Keys(queue)
        keys = [k.dead, k.ready, k.msg]
        return int(await self._replay(keys=keys, args=[limit, *(message_ids or [])]))

    async def delete_dead_letters(self, queue: str, message_ids: list[str] | None) -> int:
        if message_ids == []:
            return 0
        k = _Keys(queue)
        if message_ids is not None:  # at most 1000 (the wire type's bound): one script
            return int(await self._delete_dead(keys=[k.dead, k.msg], args=[_BATCH, *message_ids]))
        total, n = 0, _BATCH
        while n == _BATCH:
            n = int(await self._delete_dead(keys=[k.dead, k.msg], args=[_BATCH]))
            total += n
        return total

    async def configure(self, queue: str, max_deliveries: int) -> None:
        await self._redis.hset(_Keys(queue).cfg, "max_deliveries", max_deliveries)

    async def delete_prefix(self, prefix: str) -> None:
        async for keys in matching_batches(self._redis, _BASE + glob_escape(prefix) + "*"):
            await self._redis.unlink(*keys)

    async def close(self) -> None:
        await self._redis.aclose()
