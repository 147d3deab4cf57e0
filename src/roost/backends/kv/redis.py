"""KV on Redis: native commands; releasing a lock is a Lua compare-and-delete.

Reads go through a near cache (`near.py`) when it is given room: values Redis has answered
are kept in memory until Redis reports them changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import ResponseError

from roost.backends.errors import redis_outage, translate_errors
from roost.backends.kv import NO_EXPIRY, Entry
from roost.backends.kv.near import NearCache
from roost.backends.redis_keys import glob_escape, matching_batches
from roost.backends.redis_line import RedisLine, RedisReplyError
from roost.backends.redis_pool import waiting_client

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)
# One round trip for the value and its ttl in milliseconds.
_GET = (
    "local v = redis.call('GET', KEYS[1]) if not v then return false end "
    "return {v, redis.call('PTTL', KEYS[1])}"
)
# Many at once: value and ttl (ms) of each key, flat; a ttl of -3 marks a key of another type.
_GET_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    out[2 * i - 1] = false
    out[2 * i] = -3
  elseif not value then
    out[2 * i - 1] = false
    out[2 * i] = -2
  else
    out[2 * i - 1] = value
    out[2 * i] = redis.call('PTTL', key)
  end
end
return out
"""
_WRONG_TYPE = -3
_PREFIX = "roost:kv:"
_LOCKS = "roost:lock:"


@translate_errors("Redis", redis_outage)
class RedisKVStore:
    kind = "redis"

    def __init__(
        self, url: str, *, near_cache_bytes: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`near_cache_bytes`: room for values kept in memory (0: every read goes to Redis);
        `clock` (monotonic seconds) times their expiry."""
        self._redis: Any = waiting_client(url, decode_responses=True)
        self._release = self._redis.register_script(_RELEASE)
        self._line = RedisLine(url)  # the hot path: get and set
        self.near = (
            NearCache(self._line.address, _PREFIX, near_cache_bytes, clock=clock)
            if near_cache_bytes
            else None
        )

    @contextmanager
    def _changing(self, *keys: str) -> Iterator[None]:
        """Around a write: the near cache forgets the keys before and after it."""
        if self.near is None:
            yield
            return
        self.near.forget(list(keys))
        try:
            yield
        finally:
            self.near.forget(list(keys))

    async def set(
        self, key: str, value: str, *, ttl: float | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        args: list[Any] = ["SET", _PREFIX + key, value]
        if ttl is not None:
            args += ["PX", _ms(ttl)]
        if nx or xx:
            args.append("NX" if nx else "XX")
        with self._changing(args[1]):
            return await self._line.command(*args) is not None

    async def get(self, key: str) -> Entry | None:
        full = [_PREFIX + key]
        if self.near is None:
            return _entry(await self._get(full[0]))
        if (cached := self.near.lookup(full)[0]) is not None:
            return cached
        tokens, sent_at, found = self.near.reserve(full), self.near.clock(), None
        try:
            found = await self._get(full[0])
        finally:
            self.near.settle(full, tokens, [found], sent_at=sent_at)
        return _entry(found)

    async def _get(self, full_key: str) -> tuple[str, int] | None:
        """The value and its PTTL, in one round trip."""
        try:
            found = await self._line.script(_GET, [full_key], [])
        except RedisReplyError as exc:  # WRONGTYPE: the key holds a hash
            raise ValueError(str(exc)) from None
        return (found[0], found[1]) if found else None

    async def get_many(self, keys: list[str]) -> list[Entry | ValueError | None]:
        full = [_PREFIX + key for key in keys]
        near = self.near
        entries: list[Entry | ValueError | None] = [None] * len(keys)
        if near is not None:
            entries[:] = near.lookup(full)
        missing = [i for i, entry in enumerate(entries) if entry is None]
        if not missing:
            return entries
        asked = [full[i] for i in missing]
        tokens, sent_at = (near.reserve(asked), near.clock()) if near else (None, 0.0)
        found: list[tuple[str, int] | None] = [None] * len(asked)
        try:
            flat = await self._line.script(_GET_MANY, asked, [])
            for n, (i, value, ttl_ms) in enumerate(
                zip(missing, flat[::2], flat[1::2], strict=True)
            ):
                if ttl_ms == _WRONG_TYPE:
                    entries[i] = ValueError("the key holds a hash, not a string")
                elif value is not None:
                    found[n] = (value, ttl_ms)
                    entries[i] = _entry(found[n])
        finally:
            if near is not None:
                near.settle(asked, tokens, found, sent_at=sent_at)
        return entries

    async def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        full = [_PREFIX + k for k in keys]
        with self._changing(*full):
            return int(await self._redis.delete(*full))

    async def incr(self, key: str, amount: int) -> int:
        try:
            with self._changing(_PREFIX + key):
                return int(await self._redis.incrby(_PREFIX + key, amount))
        except ResponseError as exc:
            raise ValueError(str(exc)) from None

    async def scan(
        self, prefix: str, cursor: str | None, count: int
    ) -> tuple[list[str], str | None]:
        pattern = _PREFIX + glob_escape(prefix) + "*"
        position, found = int(cursor or 0), []
        # SCAN visits slots of the whole keyspace and MATCH filters after: go on until a
        # page is full (or 20 rounds), so that pages are not empty while other keys abound.
        for _ in range(20):
            position, keys = await self._redis.scan(
                cursor=position, match=pattern, count=max(count, 100)
            )
            found += keys
            if int(position) == 0 or len(found) >= count:
                break
        return [k[len(_PREFIX) :] for k in found], (None if int(position) == 0 else str(position))

    async def expire(self, key: str, ttl: float) -> bool:
        with self._changing(_PREFIX + key):
            return bool(await self._redis.pexpire(_PREFIX + key, _ms(ttl)))

    async def hset(self, key: str, fields: dict[str, str], ttl: float | None = None) -> int:
        # No near cache to tell: it holds strings only, and a hash write refuses a string key.
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(_PREFIX + key, mapping=fields)
                if ttl is not None:
                    pipe.pexpire(_PREFIX + key, _ms(ttl))
                added = (await pipe.execute())[0]
        except ResponseError as exc:
            raise ValueError(str(exc)) from None
        return int(added)

    async def hget(self, key: str, field: str) -> str | None:
        return await self._hash("hget", key, field)  # type: ignore[no-any-return]

    async def hgetall(self, key: str) -> dict[str, str]:
        return dict(await self._hash("hgetall", key))

    async def hdel(self, key: str, fields: list[str]) -> int:
        return int(await self._hash("hdel", key, *fields)) if fields else 0

    async def _hash(self, command: str, key: str, *args: str) -> Any:
        try:
            return await getattr(self._redis, command)(_PREFIX + key, *args)
        except ResponseError as exc:  # WRONGTYPE: the key holds a plain value
            raise ValueError(str(exc)) from None

    async def acquire(self, name: str, token: str, ttl: float) -> bool:
        return bool(await self._redis.set(_LOCKS + name, token, px=_ms(ttl), nx=True))

    async def release(self, name: str, token: str) -> bool:
        return bool(await self._release(keys=[_LOCKS + name], args=[token]))

    async def delete_prefix(self, prefix: str) -> int:
        gone = 0
        for space in (_PREFIX, _LOCKS):
            async for keys in matching_batches(self._redis, space + glob_escape(prefix) + "*"):
                with self._changing(*keys):
                    gone += int(await self._redis.unlink(*keys))
        return gone

    async def close(self) -> None:
        if self.near is not None:
            await self.near.close()
        await self._line.close()
        await self._redis.aclose()


def _ms(ttl: float) -> int:
    """A ttl in seconds as Redis' PX takes it (whole milliseconds, at least one)."""
    return max(round(ttl * 1000), 1)


def _entry(found: tuple[str, int] | None) -> Entry | None:
    """An entry from a value and its PTTL (rounded to seconds as Redis' TTL rounds)."""
    if found is None:
        return None
    value, ttl_ms = found
    return Entry(value, NO_EXPIRY if ttl_ms < 0 else (ttl_ms + 500) // 1000)
