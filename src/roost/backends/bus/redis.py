"""The bus across replicas: Redis pub/sub for notifications, a hash per replica for interest.

Each replica subscribes once to the pattern `roost:bus:*` and hands what arrives to its local
listeners, so it sees every notification of every tenant: simple, and fine up to what one Redis
pub/sub connection carries. Interest lives in `roost:bus:interest:<replica>`, rewritten by a
heartbeat every few seconds from this process' own counts (so it survives a Redis restart);
replicas that stop beating are left out of the sums within `_ALIVE` seconds.

Subscriptions never take a connection each: the counts they change are written by one writer,
all the keys changed meanwhile in one pipeline, and each subscriber waits for the write that
carries its key. A burst of thousands of subscriptions costs a few round trips on one
connection, and the pool stays with publishers. The pool waits (`redis_pool`) rather than
failing when every connection is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from roost.backends.bus import Listener, LocalListeners
from roost.backends.errors import redis_outage, translate_errors
from roost.backends.redis_pool import waiting_client

logger = logging.getLogger("roost.bus")

_CHANNELS = "roost:bus:"
_REPLICAS = "roost:bus:replicas"
_INTEREST = "roost:bus:interest:"
_BEAT, _ALIVE = 5.0, 20.0

_SUM_INTEREST = """
local live = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local out = {}
for _, replica in ipairs(live) do
  local fields = redis.call('HGETALL', ARGV[3] .. replica)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, #ARGV[2]) == ARGV[2] then
      table.insert(out, fields[i]); table.insert(out, fields[i + 1])
    end
  end
end
return out
"""


@translate_errors("Redis", redis_outage)
class RedisBus:
    kind = "redis"

    def __init__(self, url: str) -> None:
        self._replica = secrets.token_hex(8)
        self.name = f"roost-bus-{self._replica}"
        self._redis: Any = waiting_client(url, client_name=self.name)
        self._local = LocalListeners()
        self._sum = self._redis.register_script(_SUM_INTEREST)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._changed: set[str] = set()  # interest keys whose counts wait to be written
        self._written: asyncio.Future[None] | None = None  # resolved when they are
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._read(), name="roost-bus-reader"),
            asyncio.create_task(self._beat(), name="roost-bus-heartbeat"),
        ]
        async with asyncio.timeout(10):
            await self._subscribed.wait()

    async def publish(self, channel: str, payload: bytes) -> None:
        await self._redis.publish(_CHANNELS + channel, payload)

    def listen(self, channel: str, listener: Listener) -> Callable[[], None]:
        return self._local.listen(channel, listener)

    async def add_interest(self, key: str) -> None:
        self._local.count(key, 1)
        await self._mirror(key)

    async def drop_interest(self, key: str) -> None:
        self._local.count(key, -1)
        await self._mirror(key)

    async def _mirror(self, key: str) -> None:
        """Write this replica's count of `key` (with every count changed meanwhile) and wait
        until it is written."""
        loop = asyncio.get_running_loop()
        self._changed.add(key)
        if self._written is None:
            self._written = loop.create_future()
        written = self._written
        if self._writer is None:
            self._writer = loop.create_task(self._write_changed(), name="roost-bus-interest")
        await asyncio.shield(written)  # a subscriber that gives up must not stop the others'

    async def _write_changed(self) -> None:
        """Write the changed counts (absolute, so they race no heartbeat) until none is left."""
        try:
            while self._changed and self._written is not None:
                keys, self._changed = self._changed, set()
                written, self._written = self._written, None
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for key in keys:
                            count = self._local.interest.get(key, 0)
                            if count:
                                pipe.hset(_INTEREST + self._replica, key, count)
                            else:
                                pipe.hdel(_INTEREST + self._replica, key)
                        await pipe.execute()
                except Exception:  # the heartbeat writes every count again soon
                    logger.warning("could not write interest counts", exc_info=True)
                written.set_result(None)
        finally:
            self._writer = None

    async def interest(self, prefix: str) -> dict[str, int]:
        flat = await self._sum(keys=[_REPLICAS], args=[time.time() - _ALIVE, prefix, _INTEREST])
        total: dict[str, int] = {}
        for key, count in zip(flat[::2], flat[1::2], strict=True):
            if int(count) > 0:
                total[key.decode()] = total.get(key.decode(), 0) + int(count)
        return total

    async def close(self) -> None:
        if self._writer is not None:
            self._tasks.append(self._writer)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            async with self._redis.pipeline(transaction=True) as pipe:
                await (
                    pipe.zrem(_REPLICAS, self._replica).delete(_INTEREST + self._replica).execute()
                )
        await self._redis.aclose()

    async def _read(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.psubscribe(_CHANNELS + "*")
        self._subscribed.set()
        skip = len(_CHANNELS)
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:  # Redis went away: redis-py resubscribes when it reconnects
                logger.warning("lost the Redis bus; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is not None and message["type"] == "pmessage":
                self._local.deliver(message["channel"][skip:].decode(), message["data"])

    async def _beat(self) -> None:
        while True:
            try:
                counts = dict(self._local.interest)
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zadd(_REPLICAS, {self._replica: time.time()})
                    pipe.zremrangebyscore(_REPLICAS, "-inf", time.time() - 3 * _ALIVE)
                    pipe.delete(_INTEREST + self._replica)
                    if counts:
                        pipe.hset(_INTEREST + self._replica, mapping=counts)
                    pipe.expire(_INTEREST + self._replica, int(3 * _ALIVE))
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("could not beat on the Redis bus", exc_info=True)
            await asyncio.sleep(_BEAT)
