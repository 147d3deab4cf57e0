"""KV on Redis: native commands; releasing a lock is a Lua compare-and-delete."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from roost.backends.kv import NO_EXPIRY, Entry
from roost.backends.redis_line import RedisLine, RedisReplyError

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)
# One round trip for the value and its ttl.
_GET = (
    "local v = redis.call('GET', KEYS[1]) if not v then return false end "
    "return {v, redis.call('TTL', KEYS[1])}"
)
# Many at once: value and ttl of each key, flat; a ttl of -3 marks a key of another type.
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
    out[2 * i] = redis.call('TTL', key)
  end
end
return out
"""
_WRONG_TYPE = -3
_PREFIX = "roost:kv:"
_LOCKS = "roost:lock:"


class RedisKVStore:
    kind = "redis"

    def __init__(self, url: str) -> None:
        self._redis: Any = Redis.from_url(url, decode_responses=True)
        self._release = self._redis.register_script(_RELEASE)
        self._line = RedisLine(url)  # the hot path: get and set

    async def set(
        self, key: str, value: str, *, ttl: int | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        args: list[Any] = ["SET", _PREFIX + key, value]
        if ttl is not None:
            args += ["EX", ttl]
        if nx or xx:
            args.append("NX" if nx else "XX")
        return await self._line.command(*args) is not None

    async def get(self, key: str) -> Entry | None:
        try:
            found = await self._line.script(_GET, [_PREFIX + key], [])
        except RedisReplyError as exc:  # WRONGTYPE: the key holds a hash
            raise ValueError(str(exc)) from None
        if not found:
            return None
        value, ttl = found
        return Entry(value, NO_EXPIRY if ttl < 0 else int(ttl))

    async def get_many(self, keys: list[str]) -> list[Entry | ValueError | None]:
        if not keys:
            return []
        flat = await self._line.script(_GET_MANY, [_PREFIX + key for key in keys], [])
        found: list[Entry | ValueError | None] = []
        for value, ttl in zip(flat[::2], flat[1::2], strict=True):
            if ttl == _WRONG_TYPE:
                found.append(ValueError("the key holds a hash, not a string"))
            elif value is None:
                found.append(None)
            else:
                found.append(Entry(value, NO_EXPIRY if ttl < 0 else int(ttl)))
        return found

    async def delete(self, keys: list[str]) -> int:
        return int(await self._redis.delete(*[_PREFIX + k for k in keys])) if keys else 0

    async def incr(self, key: str, amount: int) -> int:
        try:
            return int(await self._redis.incrby(_PREFIX + key, amount))
        except ResponseError as exc:
            raise ValueError(str(exc)) from None

    async def scan(
        self, prefix: str, cursor: str | None, count: int
    ) -> tuple[list[str], str | None]:
        pattern = _PREFIX + _glob_escape(prefix) + "*"
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

    async def expire(self, key: str, ttl: int) -> bool:
        return bool(await self._redis.expire(_PREFIX + key, ttl))

    async def hset(self, key: str, fields: dict[str, str], ttl: int | None = None) -> int:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(_PREFIX + key, mapping=fields)
                if ttl is not None:
                    pipe.expire(_PREFIX + key, ttl)
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

    async def acquire(self, name: str, token: str, ttl: int) -> bool:
        return bool(await self._redis.set(_LOCKS + name, token, ex=ttl, nx=True))

    async def release(self, name: str, token: str) -> bool:
        return bool(await self._release(keys=[_LOCKS + name], args=[token]))

    async def close(self) -> None:
        await self._line.close()
        await self._redis.aclose()


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
